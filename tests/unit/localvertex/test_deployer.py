"""The deployer expands container args as Vertex AI does and reads its machine facts from the catalog."""

import pytest
from google.cloud.aiplatform_v1 import types

from localvertex.deployer import Deployer, Settings, expand
from localvertex.errors import VertexError
from vertex_serving.catalog import load_catalog

TPU_IMAGE = "us-docker.pkg.dev/vertex-ai-restricted/prediction/tf_opt-tpu.nightly:latest"


def test_container_args_expand_vertex_variables():
    env = {"AIP_STORAGE_URI": "gs://b/m"}
    assert expand("--model=$(AIP_STORAGE_URI)", env) == "--model=gs://b/m"
    assert expand("$$(AIP_STORAGE_URI) $(UNKNOWN)", env) == "$(AIP_STORAGE_URI) $(UNKNOWN)"


def check(tmp_path, machine_type, accelerator_type=None, replicas=1):
    deployer = Deployer(Settings(tmp_path, load_catalog(), "http://127.0.0.1:1", tpu_v5e_cores=8))
    model = types.Model(container_spec=types.ModelContainerSpec(image_uri=TPU_IMAGE))
    spec = types.MachineSpec(machine_type=machine_type)
    if accelerator_type:
        spec.accelerator_type, spec.accelerator_count = types.AcceleratorType[accelerator_type], 1
    return deployer.check(model, types.DedicatedResources(machine_spec=spec, min_replica_count=replicas))


def test_tpu_v5e_cores_come_from_the_catalog(tmp_path):
    assert check(tmp_path, "ct5lp-hightpu-4t", replicas=2) == 8


def test_an_unknown_machine_type_is_refused_as_vertex_refuses_it(tmp_path):
    with pytest.raises(VertexError) as e:
        check(tmp_path, "n1-bogus-7")
    assert e.value.status == "INVALID_ARGUMENT" and 'Machine type "n1-bogus-7" is not supported' in str(e.value)


@pytest.mark.parametrize(("machine_type", "accelerator"), [("ct5p-hightpu-4t", None), ("n1-standard-4", "TPU_V3")])
def test_tpu_generations_vertex_does_not_serve_on_are_refused(tmp_path, machine_type, accelerator):
    with pytest.raises(VertexError) as e:
        check(tmp_path, machine_type, accelerator)
    assert e.value.status == "INVALID_ARGUMENT" and "Only Cloud TPU v5e" in str(e.value)
