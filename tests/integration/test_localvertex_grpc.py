"""The gapic clients over gRPC, as the seed documents' own samples use them, against a real localvertex: the same
services as over REST, long-running operations polled through google.longrunning, and the same refusals."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import grpc
import pytest
from google.api import httpbody_pb2
from google.api_core import exceptions
from google.cloud.aiplatform import gapic as aip
from google.cloud.aiplatform_v1.services.endpoint_service.transports import EndpointServiceGrpcTransport
from google.cloud.aiplatform_v1.services.model_service.transports import ModelServiceGrpcTransport
from google.cloud.aiplatform_v1.services.pipeline_service.transports import PipelineServiceGrpcTransport
from google.cloud.aiplatform_v1.services.prediction_service.transports import PredictionServiceGrpcTransport
from google.cloud.aiplatform_v1.services.schedule_service.transports import ScheduleServiceGrpcTransport
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import json_format, struct_pb2

from localvertex.control import print_pointers
from tests.integration.localvertex_fixtures import LOCATION, PROJECT, rest_client, stage
from tests.models import tagged_sum

pytestmark = pytest.mark.integration
PROJECT_ID, REGION = PROJECT, LOCATION
PARENT = f"projects/{PROJECT_ID}/locations/{REGION}"
TF_OPT_CPU = "us-docker.pkg.dev/vertex-ai-restricted/prediction/tf_opt-cpu.nightly:latest"
ROW = {"a": [1.0, 2.0, 3.0], "tag": "x"}  # sum 14


@pytest.fixture(scope="module")
def model_uri(emulator, tmp_path_factory):
    return stage(tagged_sum(tmp_path_factory.mktemp("models") / "tagged"), "grpc-tagged")


@pytest.fixture(scope="module")
def channel(emulator):
    with grpc.insecure_channel(emulator.state["grpc_endpoint"]) as opened:
        yield opened


@pytest.fixture(scope="module")
def clients(channel):
    return {
        "model": aip.ModelServiceClient(transport=ModelServiceGrpcTransport(channel=channel)),
        "endpoint": aip.EndpointServiceClient(transport=EndpointServiceGrpcTransport(channel=channel)),
        "prediction": aip.PredictionServiceClient(transport=PredictionServiceGrpcTransport(channel=channel)),
        "pipeline": aip.PipelineServiceClient(transport=PipelineServiceGrpcTransport(channel=channel)),
        "schedule": aip.ScheduleServiceClient(transport=ScheduleServiceGrpcTransport(channel=channel)),
    }


def seed_sample(model_service_client, model_uri: str) -> str:
    """The optimized runtime document's sample, as written but for the client's endpoint and credentials."""
    tf_opt_model_dict = {
        "display_name": "DISPLAY_NAME",
        "metadata_schema_uri": "",
        "artifact_uri": model_uri,
        "container_spec": {
            "image_uri": "us-docker.pkg.dev/vertex-ai-restricted/prediction/tf_opt-cpu.nightly:latest",
            "args": [
                # The optimized TensorFlow runtime includes the following
                # options that can be set here.
                # "--allow_precompilation=true" - enable XLA precompilation
                # "--allow_compression=true" - enable
                # model compression optimization
            ],
        },
    }
    tf_opt_model = model_service_client.upload_model(parent=PARENT, model=tf_opt_model_dict).result(timeout=180).model
    return tf_opt_model


def test_the_seed_sample_uploads_over_grpc(clients, model_uri):
    model_service_client = clients["model"]
    tf_opt_model = seed_sample(model_service_client, model_uri)
    assert tf_opt_model.startswith(f"{PARENT}/models/")
    found = model_service_client.get_model(name=tf_opt_model)
    assert (found.display_name, found.container_spec.image_uri, found.version_id) == ("DISPLAY_NAME", TF_OPT_CPU, "1")


def test_the_seed_sample_uploads_over_rest(emulator, model_uri):
    model_service_client = rest_client(aip.ModelServiceClient, emulator)
    tf_opt_model = seed_sample(model_service_client, model_uri)
    assert model_service_client.get_model(name=tf_opt_model).display_name == "DISPLAY_NAME"


def test_deploy_predict_raw_predict_and_undeploy_over_grpc(clients, channel, model_uri):
    model = (
        clients["model"]
        .upload_model(
            parent=PARENT,
            model={
                "display_name": "grpc-served",
                "artifact_uri": model_uri,
                "container_spec": {"image_uri": TF_OPT_CPU},
            },
        )
        .result(timeout=180)
    )
    endpoint = clients["endpoint"].create_endpoint(parent=PARENT, endpoint={"display_name": "grpc"}).result(timeout=60)
    deployed = (
        clients["endpoint"]
        .deploy_model(
            endpoint=endpoint.name,
            deployed_model={
                "model": f"{model.model}@{model.model_version_id}",
                "dedicated_resources": {"machine_spec": {"machine_type": "n1-standard-4"}, "min_replica_count": 1},
            },
            traffic_split={"0": 100},
        )
        .result(timeout=300)
        .deployed_model
    )
    try:
        instance = json_format.ParseDict(ROW, struct_pb2.Value())
        prediction = clients["prediction"].predict(endpoint=endpoint.name, instances=[instance])
        assert prediction.predictions[0]["sum"] == 14.0 and prediction.deployed_model_id == deployed.id
        assert prediction.model_display_name == "grpc-served"
        raw = clients["prediction"].raw_predict(
            endpoint=endpoint.name,
            http_body=httpbody_pb2.HttpBody(
                content_type="application/json", data=json.dumps({"instances": [ROW]}).encode()
            ),
        )
        assert json.loads(raw.data)["predictions"][0]["sum"] == 14.0
        listed = clients["endpoint"].get_endpoint(name=endpoint.name)
        assert [d.id for d in listed.deployed_models] == [deployed.id] and dict(listed.traffic_split) == {
            deployed.id: 100
        }
    finally:
        clients["endpoint"].undeploy_model(endpoint=endpoint.name, deployed_model_id=deployed.id).result(timeout=60)
    operations = clients["endpoint"].list_operations(request=operations_pb2.ListOperationsRequest(name=endpoint.name))
    kinds = [o.metadata.type_url.rsplit(".", 1)[-1] for o in operations.operations]
    assert kinds == [
        "CreateEndpointOperationMetadata",
        "DeployModelOperationMetadata",
        "UndeployModelOperationMetadata",
    ]
    # The gapic clients' own wait_operation over gRPC hands back undecoded bytes: use google.longrunning's stub.
    waiting = operations_pb2.WaitOperationRequest(name=operations.operations[1].name)
    waited = operations_pb2_grpc.OperationsStub(channel).WaitOperation(waiting)
    assert waited.done and waited.response.type_url.endswith("DeployModelResponse")
    clients["endpoint"].delete_endpoint(name=endpoint.name).result(timeout=60)
    with pytest.raises(exceptions.NotFound):
        clients["endpoint"].get_endpoint(name=endpoint.name)


def test_refusals_arrive_as_grpc_status_codes(clients, model_uri):
    with pytest.raises(exceptions.NotFound, match="Model"):
        clients["model"].get_model(name=f"{PARENT}/models/424242")
    with pytest.raises(exceptions.InvalidArgument, match="filters on"):
        clients["model"].list_models(request={"parent": PARENT, "filter": 'state="ACTIVE"'})
    model = (
        clients["model"]
        .upload_model(
            parent=PARENT,
            model={"display_name": "grpc-typo", "artifact_uri": model_uri, "container_spec": {"image_uri": TF_OPT_CPU}},
        )
        .result(timeout=180)
    )
    endpoint = clients["endpoint"].create_endpoint(parent=PARENT, endpoint={"display_name": "grpc-typo"}).result()
    with pytest.raises(exceptions.InvalidArgument, match='Machine type "n1-standrd-4" is not supported'):
        clients["endpoint"].deploy_model(
            endpoint=endpoint.name,
            deployed_model={
                "model": model.model,
                "dedicated_resources": {"machine_spec": {"machine_type": "n1-standrd-4"}, "min_replica_count": 1},
            },
        )
    with pytest.raises(exceptions.InvalidArgument, match="not projects/PROJECT/locations/LOCATION"):
        clients["endpoint"].get_endpoint(name="endpoints/1")


def test_the_pipeline_and_schedule_services_answer_over_grpc(clients):
    jobs = clients["pipeline"].list_pipeline_jobs(request={"parent": PARENT, "filter": 'display_name="nothing-yet"'})
    assert list(jobs) == []
    with pytest.raises(exceptions.NotFound, match="PipelineJob"):
        clients["pipeline"].get_pipeline_job(name=f"{PARENT}/pipelineJobs/missing")
    with pytest.raises(exceptions.InvalidArgument, match="pipelineSpec is required"):
        clients["pipeline"].create_pipeline_job(parent=PARENT, pipeline_job={"display_name": "empty"})
    assert list(clients["schedule"].list_schedules(parent=PARENT)) == []
    with pytest.raises(exceptions.NotFound, match="Schedule"):
        clients["schedule"].pause_schedule(name=f"{PARENT}/schedules/missing")


def test_the_lines_vsp_emulator_up_prints_make_a_working_grpc_client(emulator, clients):
    printed = io.StringIO()
    print_pointers(emulator.state, printed)
    lines = printed.getvalue().splitlines()
    assert f"export LOCALVERTEX_GRPC_ENDPOINT={emulator.state['grpc_endpoint']}" in lines
    start = next(i for i, line in enumerate(lines) if "gapic client over gRPC" in line)
    end = next(i for i, line in enumerate(lines) if i > start and line.startswith("# or "))
    namespace: dict = {}
    exec("\n".join(line.removeprefix("#   ") for line in lines[start + 1 : end]), namespace)
    client = namespace["model_service_client"]
    assert [m.name for m in client.list_models(parent=PARENT)] == [
        m.name for m in clients["model"].list_models(parent=PARENT)
    ]


AS_WRITTEN = """
import json
from google.auth.credentials import AnonymousCredentials
from google.cloud import aiplatform
from google.cloud.aiplatform import gapic as aip

PROJECT_ID = "@PROJECT@"
REGION = "@REGION@"
API_ENDPOINT = "@ENDPOINT@"
PARENT = f"projects/{PROJECT_ID}/locations/{REGION}"
client_options = {"api_endpoint": API_ENDPOINT}
model_service_client = aip.ModelServiceClient(client_options=client_options, credentials=AnonymousCredentials())
tf_opt_model_dict = {
    "display_name": "DISPLAY_NAME",
    "metadata_schema_uri": "",
    "artifact_uri": "@MODEL_URI@",
    "container_spec": {"image_uri": "us-docker.pkg.dev/vertex-ai-restricted/prediction/tf_opt-cpu.nightly:latest", "args": []},
}
tf_opt_model = model_service_client.upload_model(parent=PARENT, model=tf_opt_model_dict).result(timeout=180).model

aiplatform.init(project=PROJECT_ID, location=REGION, api_endpoint=API_ENDPOINT, credentials=AnonymousCredentials())
endpoint = aiplatform.Endpoint.create(display_name="over-tls")
print(json.dumps({"model": aiplatform.Model(tf_opt_model).display_name, "endpoint": endpoint.resource_name}))
"""


def test_gapic_clients_and_the_sdk_open_grpc_with_tls_from_an_api_endpoint(emulator, model_uri, clients):
    """The sample as written but for its endpoint and credentials, in a process whose gRPC trusts the printed bundle."""
    code = AS_WRITTEN
    for token, value in {
        "@PROJECT@": PROJECT_ID,
        "@REGION@": REGION,
        "@ENDPOINT@": emulator.state["grpc_tls_endpoint"],
        "@MODEL_URI@": model_uri,
    }.items():
        code = code.replace(token, value)
    env = os.environ | {"GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": emulator.state["ca_bundle"]}
    ran = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stderr[-3000:]
    answer = json.loads(ran.stdout.strip().splitlines()[-1])
    assert answer["model"] == "DISPLAY_NAME"
    assert clients["endpoint"].get_endpoint(name=answer["endpoint"]).display_name == "over-tls"
