"""PipelineJobs on localvertex through the unmodified SDK: submit, follow, list, cancel, delete, refusals, restart.

The pipelines here are small and need no TensorFlow, so the job machinery is tested on its own; the deploy
pipeline itself runs as a PipelineJob in the end-to-end tests.
"""

import os
import time
from pathlib import Path

import pytest
from google.api_core import exceptions
from google.cloud import aiplatform, storage
from google.cloud.aiplatform_v1 import types
from kfp import compiler, dsl

from tests.integration.localvertex_fixtures import LOCATION, PROJECT, Emulator

pytestmark = pytest.mark.integration
SERVICE_ACCOUNT = f"runner@{PROJECT}.iam.gserviceaccount.com"
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def add(a: int, b: int, total: dsl.Output[dsl.Markdown]) -> int:
    with open(total.path, "w") as f:
        f.write(f"# {a} + {b} = {a + b}\n")
    total.metadata["sum"] = a + b
    return a + b


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def check(value: int, limit: int):
    if value > limit:
        raise ValueError(f"sum {value} is over the limit {limit}")


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def wait(seconds: float, pid_file: str):
    import os
    import time

    with open(pid_file, "w") as f:
        f.write(str(os.getpid()))
    time.sleep(seconds)


@dsl.pipeline(name="adder")
def adder(a: int, b: int = 2, limit: int = 100, label: str = "x") -> dsl.Markdown:
    summed = add(a=a, b=b)
    check(value=summed.outputs["Output"], limit=limit)
    return summed.outputs["total"]


@dsl.pipeline(name="waiter")
def waiter(seconds: float, pid_file: str):
    wait(seconds=seconds, pid_file=pid_file)


@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("templates")
    found = {}
    for pipeline in (adder, waiter):
        path = folder / f"{pipeline.name}.yaml"
        compiler.Compiler().compile(pipeline, str(path))
        found[pipeline.name] = str(path)
    return found


def new_root() -> str:
    """A pipeline root in a bucket that does not exist yet: with a service account, the SDK creates it."""
    return f"gs://runs-{time.time_ns()}/root"


def submit(template: str, wait_for_it: bool = True, display_name: str = "adder-run", **values):
    job = aiplatform.PipelineJob(
        display_name=display_name,
        template_path=template,
        pipeline_root=new_root(),
        parameter_values=values,
        labels={"team": "serving"},
        enable_caching=False,
        job_id=f"job-{time.time_ns()}",  # the SDK's default id has whole seconds: two submits in one would clash
    )
    job.submit(service_account=SERVICE_ACCOUNT)
    if wait_for_it:
        job.wait()
    return job


def until(condition, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_a_run_succeeds_with_task_details_and_downloadable_artifacts(emulator, templates):
    job = submit(templates["adder"], a=3)
    assert job.state == aiplatform.gapic.PipelineState.PIPELINE_STATE_SUCCEEDED
    tasks = {t.task_name: t for t in job.task_details}
    assert set(tasks) == {"adder", "add", "check"}
    assert all(t.state.name == "SUCCEEDED" and t.start_time <= t.end_time for t in tasks.values())
    (artifact,) = tasks["add"].outputs["total"].artifacts
    assert (
        artifact.uri.startswith(job.runtime_config.gcs_output_directory) and artifact.schema_title == "system.Markdown"
    )
    assert dict(artifact.metadata)["sum"] == 5
    bucket, _, name = artifact.uri.removeprefix("gs://").partition("/")
    assert storage.Client().bucket(bucket).blob(name).download_as_text() == "# 3 + 2 = 5\n"
    assert job.labels == {"team": "serving"} and job.gca_resource.service_account == SERVICE_ACCOUNT
    assert job.gca_resource.runtime_config.parameter_values["a"] == 3


def test_run_blocks_until_the_end(emulator, templates):
    job = aiplatform.PipelineJob(
        display_name="adder-run",
        template_path=templates["adder"],
        pipeline_root=new_root(),
        parameter_values={"a": 1},
    )
    job.run(service_account=SERVICE_ACCOUNT, sync=True)
    assert job.state == aiplatform.gapic.PipelineState.PIPELINE_STATE_SUCCEEDED


def test_a_job_without_an_id_is_named_by_the_service(emulator, templates):
    template = aiplatform.PipelineJob(
        display_name="no-id",
        template_path=templates["adder"],
        pipeline_root="gs://localvertex-staging/runs",
        parameter_values={"a": 1},
    )
    created = template.api_client.create_pipeline_job(parent=PARENT, pipeline_job=template._gca_resource)
    assert created.name.startswith(f"{PARENT}/pipelineJobs/") and created.name.rsplit("/", 1)[-1].isdigit()
    assert created.state == types.PipelineState.PIPELINE_STATE_PENDING
    until(lambda: aiplatform.PipelineJob.get(created.name).state.name == "PIPELINE_STATE_SUCCEEDED")


def test_a_failed_task_fails_the_run_naming_the_task_and_its_error(emulator, templates):
    with pytest.raises(RuntimeError) as e:
        submit(templates["adder"], a=200)
    assert "The failed tasks are: [check]" in str(e.value) and "sum 202 is over the limit 100" in str(e.value)
    job = aiplatform.PipelineJob.list(filter='display_name="adder-run"', order_by="create_time desc")[0]
    failed = {t.task_name: t for t in job.task_details}["check"]
    assert failed.state.name == "FAILED" and "ValueError: sum 202 is over the limit 100" in failed.error.message


def test_list_filters_orders_and_pages(emulator, templates):
    first = submit(templates["adder"], a=1, display_name="listed")
    second = submit(templates["adder"], a=2, display_name="listed")
    newest_first = aiplatform.PipelineJob.list(filter='display_name="listed"', order_by="create_time desc")
    assert [j.resource_name for j in newest_first] == [second.resource_name, first.resource_name]
    client = first.api_client
    pages = client.list_pipeline_jobs(
        request={"parent": PARENT, "filter": 'display_name="listed"', "order_by": "create_time", "page_size": 1}
    ).pages
    assert [[j.name for j in page.pipeline_jobs] for page in pages] == [[first.resource_name], [second.resource_name]]
    by_label = aiplatform.PipelineJob.list(filter='labels.team="serving" AND display_name="listed"')
    assert len(by_label) == 2


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"runtime_config": {"parameter_values": {"a": 1}}}, "gcsOutputDirectory"),
        ({"runtime_config": {"gcs_output_directory": "gs://b/r", "parameter_values": {"a": 1, "zz": 2}}}, "'zz'"),
        ({"runtime_config": {"gcs_output_directory": "gs://b/r", "parameter_values": {"a": "one"}}}, "'a'"),
        ({"runtime_config": {"gcs_output_directory": "gs://b/r", "parameter_values": {"a": 1.5}}}, "NUMBER_INTEGER"),
        ({"runtime_config": {"gcs_output_directory": "gs://b/r", "parameter_values": {}}}, "'a' is required"),
        ({"runtime_config": {"gcs_output_directory": "b/r", "parameter_values": {"a": 1}}}, "not a Cloud Storage"),
    ],
)
def test_submissions_vertex_would_refuse_are_refused_naming_the_field(emulator, templates, change, needle):
    job = aiplatform.PipelineJob(
        display_name="bad", template_path=templates["adder"], pipeline_root=new_root(), parameter_values={"a": 1}
    )
    request = types.PipelineJob(job._gca_resource)
    request.runtime_config = types.PipelineJob.RuntimeConfig(**change["runtime_config"])
    with pytest.raises(exceptions.BadRequest) as e:
        job.api_client.create_pipeline_job(parent=PARENT, pipeline_job=request, pipeline_job_id=f"bad-{time.time_ns()}")
    assert needle in str(e.value)


def test_a_pipeline_root_in_a_bucket_that_does_not_exist_is_refused(emulator, templates):
    job = aiplatform.PipelineJob(
        display_name="nb", template_path=templates["adder"], pipeline_root=new_root(), parameter_values={"a": 1}
    )
    with pytest.raises(exceptions.BadRequest, match="does not exist"):
        job.api_client.create_pipeline_job(parent=PARENT, pipeline_job=job._gca_resource, pipeline_job_id="nb")


def test_a_duplicate_job_id_is_refused(emulator, templates):
    job = aiplatform.PipelineJob(
        display_name="dup",
        template_path=templates["adder"],
        pipeline_root=new_root(),
        parameter_values={"a": 1},
        job_id=f"dup-{time.time_ns()}",
    )
    job.submit(service_account=SERVICE_ACCOUNT)
    again = aiplatform.PipelineJob(
        display_name="dup",
        template_path=templates["adder"],
        pipeline_root=new_root(),
        parameter_values={"a": 1},
        job_id=job.job_id,
    )
    with pytest.raises(exceptions.Conflict):
        again.submit(service_account=SERVICE_ACCOUNT)
    job.wait()


def test_cancel_stops_the_running_task_and_ends_cancelled(emulator, templates, tmp_path):
    pid_file = tmp_path / "pid"
    job = submit(templates["waiter"], wait_for_it=False, seconds=120.0, pid_file=str(pid_file))
    pid = int(until(lambda: pid_file.exists() and pid_file.read_text()))
    job.cancel()
    until(lambda: aiplatform.PipelineJob.get(job.resource_name).state.name == "PIPELINE_STATE_CANCELLED", 60)
    assert not _alive(pid)
    tasks = {t.task_name: t for t in aiplatform.PipelineJob.get(job.resource_name).task_details}
    assert tasks["wait"].state.name == "CANCELLED"
    with pytest.raises(exceptions.BadRequest):
        job.cancel()


def test_jobs_queue_one_at_a_time_and_delete_waits_for_the_end(emulator, templates, tmp_path):
    first = submit(templates["waiter"], wait_for_it=False, seconds=3.0, pid_file=str(tmp_path / "1"))
    second = submit(templates["waiter"], wait_for_it=False, seconds=0.1, pid_file=str(tmp_path / "2"))
    until(lambda: aiplatform.PipelineJob.get(first.resource_name).state.name == "PIPELINE_STATE_RUNNING")
    assert aiplatform.PipelineJob.get(second.resource_name).state.name == "PIPELINE_STATE_PENDING"
    with pytest.raises(exceptions.BadRequest):
        first.delete()
    second.wait()
    assert (tmp_path / "1").stat().st_mtime <= (tmp_path / "2").stat().st_mtime
    first.wait()
    first.delete()
    with pytest.raises(exceptions.NotFound):
        aiplatform.PipelineJob.get(first.resource_name)


def test_a_restart_fails_the_running_job_with_a_reason_and_keeps_the_rest(templates, tmp_path):
    restarted = Emulator(tmp_path / "localvertex", tpu_cores=0).start()
    try:
        restarted.init_sdk()
        done = submit(templates["adder"], a=1)
        running = submit(templates["waiter"], wait_for_it=False, seconds=120.0, pid_file=str(tmp_path / "pid"))
        queued = submit(templates["adder"], wait_for_it=False, a=2)
        pid = int(until(lambda: (tmp_path / "pid").exists() and (tmp_path / "pid").read_text()))
        restarted.kill()
        until(lambda: not _alive(pid), 30)  # the runner and its task went with the emulator
        restarted.start()
        restarted.init_sdk()
        lost = aiplatform.PipelineJob.get(running.resource_name)
        assert lost.state.name == "PIPELINE_STATE_FAILED" and "localvertex stopped while this job ran" in (
            lost.gca_resource.error.message
        )
        assert aiplatform.PipelineJob.get(done.resource_name).state.name == "PIPELINE_STATE_SUCCEEDED"
        until(lambda: aiplatform.PipelineJob.get(queued.resource_name).state.name == "PIPELINE_STATE_SUCCEEDED")
    finally:
        restarted.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")
