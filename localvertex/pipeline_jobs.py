"""Vertex AI's pipelineJobs on one machine: create, get, list, cancel and delete, as `aiplatform.PipelineJob` uses them.

A created job waits in a queue; a bounded number run at once, each as its own `localvertex.pipeline_runner`
process that runs the submitted pipeline spec with kfp.local. Jobs live in the emulator's SQLite state: a restart
fails the jobs that were running (their runner died with the emulator) and runs the queued ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from google.cloud.aiplatform_v1 import types
from google.longrunning import operations_pb2
from google.protobuf import empty_pb2, struct_pb2

from localvertex import query
from localvertex.api import finished, location, resource
from localvertex.deployer import now
from localvertex.errors import VertexError, not_found
from localvertex.modelserver.launch import end_with_parent
from localvertex.pipeline_runner import CANCEL_GRACE as RUNNER_GRACE
from localvertex.pipeline_runner import STATUS_FILE
from localvertex.rpc import Call, rpc, to_dict
from localvertex.store import Store

log = logging.getLogger("localvertex")
State = types.PipelineState
TaskState = types.PipelineTaskDetail.State
_ID = re.compile(r"[a-z][-a-z0-9]{0,127}")
_LABEL = re.compile(r"[a-z0-9_-]{0,63}")
_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_DONE = {State.PIPELINE_STATE_SUCCEEDED, State.PIPELINE_STATE_FAILED, State.PIPELINE_STATE_CANCELLED}
_PYTHON_TYPES = {
    "STRING": (str,),
    "NUMBER_INTEGER": (int, float),
    "NUMBER_DOUBLE": (int, float),
    "BOOLEAN": (bool,),
    "LIST": (list,),
    "STRUCT": (dict,),
}
CANCEL_GRACE = RUNNER_GRACE + 10.0  # the runner's own grace for its task, then this one's for the runner


class PipelineJobs:
    """The PipelineService handlers and the queue that runs them."""

    def __init__(self, store: Store, data_dir: Path, storage_emulator_host: str, max_running: int = 1) -> None:
        self.store, self.data_dir, self.max_running = store, data_dir, max(1, max_running)
        self.storage_emulator_host = storage_emulator_host
        self.running: dict[str, subprocess.Popen] = {}
        self.cancel_deadlines: dict[str, float] = {}
        self.seen: dict[str, float] = {}  # when each running job's status file last changed
        self.look_for_queued = True  # set when a job is queued or a slot frees: a scan parses every stored job
        self.wake = asyncio.Event()

    # The methods ---------------------------------------------------------------------------------------------

    @rpc("PipelineService")
    async def create_pipeline_job(self, request: types.CreatePipelineJobRequest, call: Call) -> types.PipelineJob:
        job_id = request.pipeline_job_id or self.store.next_id("pipeline_job", 1000)
        if request.pipeline_job_id and not _ID.fullmatch(job_id):
            raise VertexError(
                "INVALID_ARGUMENT",
                f"pipelineJobId {job_id!r} is invalid: use 1 to 128 lowercase letters, digits or hyphens, "
                "starting with a letter",
            )
        return await self.enqueue(location(request.parent), request.pipeline_job, job_id)

    def check(self, job: types.PipelineJob) -> str:
        """Vertex AI's refusals of a submission, before anything is stored; returns the pipeline root."""
        spec = to_dict(job)["pipelineSpec"] if "pipeline_spec" in job else {}
        check_submission(job, spec)
        return pipeline_root(job, spec)

    async def enqueue(self, parent: str, job: types.PipelineJob, job_id: str) -> types.PipelineJob:
        """Stores the checked job as PENDING; the queue starts it when there is room."""
        root = self.check(job)
        await asyncio.get_running_loop().run_in_executor(None, _check_bucket, root)
        name = f"{parent}/pipelineJobs/{job_id}"
        with self.store.transaction():
            if self.store.get("pipeline_job", name):
                raise VertexError("ALREADY_EXISTS", f"PipelineJob {name} already exists")
            job.name, job.state = name, State.PIPELINE_STATE_PENDING
            job.display_name = job.display_name or job_id
            job.create_time = job.update_time = now()
            job.runtime_config.gcs_output_directory = root
            self.store.put("pipeline_job", name, job)
        self.look_for_queued = True
        self.wake.set()
        return job

    @rpc("PipelineService")
    async def get_pipeline_job(self, request: types.GetPipelineJobRequest, call: Call) -> types.PipelineJob:
        return self._job(request.name)

    @rpc("PipelineService")
    async def list_pipeline_jobs(
        self, request: types.ListPipelineJobsRequest, call: Call
    ) -> types.ListPipelineJobsResponse:
        query.compile_filter(request.filter, query.PIPELINE_JOBS)  # refused before the store is read
        items, token = query.listing(
            self.store.list("pipeline_job", f"{location(request.parent)}/pipelineJobs/"),
            request,
            query.PIPELINE_JOBS,
            _summary,
        )
        return types.ListPipelineJobsResponse(pipeline_jobs=items, next_page_token=token)

    @rpc("PipelineService")
    async def cancel_pipeline_job(self, request: types.CancelPipelineJobRequest, call: Call) -> empty_pb2.Empty:
        with self.store.transaction():
            job = self._job(request.name)
            if job.state in _DONE:
                raise VertexError(
                    "FAILED_PRECONDITION",
                    f"PipelineJob {job.name} is in state {State(job.state).name} and cannot be cancelled",
                )
            if job.name in self.running:
                job.state = State.PIPELINE_STATE_CANCELLING
                self.cancel_deadlines[job.name] = time.monotonic() + CANCEL_GRACE
                _signal(self.running[job.name], signal.SIGTERM)
            else:
                job.state, job.end_time = State.PIPELINE_STATE_CANCELLED, now()
                job.error = {"code": 1, "message": "The job was cancelled before it started"}
            job.update_time = now()
            self.store.put("pipeline_job", job.name, job)
        self.wake.set()
        return empty_pb2.Empty()

    @rpc("PipelineService")
    async def delete_pipeline_job(
        self, request: types.DeletePipelineJobRequest, call: Call
    ) -> operations_pb2.Operation:
        with self.store.transaction():
            job = self._job(request.name)
            if job.state not in _DONE:
                raise VertexError(
                    "FAILED_PRECONDITION",
                    f"PipelineJob {job.name} is in state {State(job.state).name}: cancel it and wait until it ends",
                )
            self.store.delete(job.name)
        shutil.rmtree(self._job_dir(job.name), ignore_errors=True)
        metadata = types.DeleteOperationMetadata(generic_metadata={"create_time": now(), "update_time": now()})
        return finished(self.store, job.name.split("/pipelineJobs/")[0], None, metadata)

    # The queue ------------------------------------------------------------------------------------------------

    def recover(self) -> None:
        """After a restart: the jobs that were running lost their runner with the emulator, and say so."""
        with self.store.transaction():
            for job in self.store.list("pipeline_job", "projects/"):
                if job.state in (State.PIPELINE_STATE_RUNNING, State.PIPELINE_STATE_CANCELLING):
                    status = self._read_status(job.name)
                    _apply(job, status)
                    for task in job.job_detail.task_details:
                        if task.state in (TaskState.RUNNING, TaskState.PENDING, TaskState.CANCELLING):
                            task.state, task.end_time = TaskState.FAILED, now()
                    job.state, job.end_time, job.update_time = State.PIPELINE_STATE_FAILED, now(), now()
                    job.error = {
                        "code": 14,
                        "message": "localvertex stopped while this job ran, and its runner stopped with it: "
                        "submit the job again",
                    }
                    self.store.put("pipeline_job", job.name, job)

    async def serve(self) -> None:
        """Starts queued jobs while there is room, follows the running ones, and ends each exactly once."""
        while True:
            try:
                self._reap()
                self._start_queued()
            except Exception:  # one broken job must not stop the queue
                log.exception("pipeline job queue")
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=0.5)

    def stop_all(self) -> None:
        for process in self.running.values():
            _signal(process, signal.SIGTERM)
        for process in self.running.values():
            try:
                process.wait(CANCEL_GRACE)
            except subprocess.TimeoutExpired:
                _signal(process, signal.SIGKILL)

    def _start_queued(self) -> None:
        if len(self.running) >= self.max_running or not self.look_for_queued:
            return
        self.look_for_queued = False
        queued = [j for j in self.store.list("pipeline_job", "projects/") if j.state == State.PIPELINE_STATE_PENDING]
        for job in queued[: self.max_running - len(self.running)]:
            folder = self._job_dir(job.name)
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            spec = to_dict(job)["pipelineSpec"]
            (folder / "job.json").write_text(
                json.dumps(
                    {
                        "jobId": job.name.rsplit("/", 1)[-1],
                        "pipelineSpec": spec,
                        "pipelineRoot": job.runtime_config.gcs_output_directory,
                        "parameterValues": parameter_values(job),
                    }
                )
            )
            (folder / STATUS_FILE).unlink(missing_ok=True)
            with (folder / "log.txt").open("ab") as sink:
                self.running[job.name] = subprocess.Popen(
                    [sys.executable, "-m", "localvertex.pipeline_runner", str(folder)],
                    env=self._runner_env(),
                    cwd=folder,
                    stdin=subprocess.DEVNULL,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=end_with_parent(signal.SIGTERM) if sys.platform == "linux" else None,
                )
            job.state, job.start_time, job.update_time = State.PIPELINE_STATE_RUNNING, now(), now()
            self.store.put("pipeline_job", job.name, job)
            log.info("PipelineJob %s started (log %s)", job.name, folder / "log.txt")

    def _reap(self) -> None:
        for name, process in list(self.running.items()):
            job = self.store.get("pipeline_job", name)
            code = process.poll()
            if code is None:
                if job is not None:
                    self._refresh(job)
                if name in self.cancel_deadlines and time.monotonic() > self.cancel_deadlines[name]:
                    _signal(process, signal.SIGKILL)
                continue
            self.running.pop(name)
            self.seen.pop(name, None)
            self.look_for_queued = True
            cancelled = self.cancel_deadlines.pop(name, None) is not None
            if job is None:  # deleted meanwhile
                continue
            status = self._read_status(name)
            _apply(job, status)
            job.end_time = job.update_time = now()
            if cancelled or (job.state == State.PIPELINE_STATE_CANCELLING):
                job.state = State.PIPELINE_STATE_CANCELLED
                job.error = {"code": 1, "message": "The job was cancelled"}
                for task in job.job_detail.task_details:
                    if task.state in (TaskState.RUNNING, TaskState.PENDING):
                        task.state, task.end_time = TaskState.CANCELLED, now()
            elif status.get("state") == "SUCCEEDED" and code == 0:
                job.state = State.PIPELINE_STATE_SUCCEEDED
            else:
                job.state = State.PIPELINE_STATE_FAILED
                message = status.get("error") or (
                    f"The job's runner exited with code {code}: see {self._job_dir(name) / 'log.txt'}"
                )
                job.error = {"code": 9, "message": message}
            self.store.put("pipeline_job", name, job)
            log.info("PipelineJob %s ended %s", name, State(job.state).name)

    def _refresh(self, job: types.PipelineJob) -> None:
        """Copies the runner's task progress into the job while it runs, so `task_details` is live."""
        try:
            changed = (self._job_dir(job.name) / STATUS_FILE).stat().st_mtime_ns
        except OSError:
            return
        if self.seen.get(job.name) == changed:
            return
        self.seen[job.name] = changed
        status = self._read_status(job.name)
        if status.get("tasks"):
            _apply(job, status)
            job.update_time = now()
            self.store.put("pipeline_job", job.name, job)

    def _read_status(self, name: str) -> dict:
        try:
            return json.loads((self._job_dir(name) / STATUS_FILE).read_text())
        except (OSError, json.JSONDecodeError):
            return {}

    def _job_dir(self, name: str) -> Path:
        return self.data_dir / "pipeline-jobs" / name.rsplit("/", 1)[-1]

    def _runner_env(self) -> dict[str, str]:
        """What a pipeline task may see: where Cloud Storage is, and the basics a Python process needs."""
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "VIRTUAL_ENV")
        env = {k: os.environ[k] for k in keep if k in os.environ}
        return env | {"STORAGE_EMULATOR_HOST": self.storage_emulator_host, "PYTHONUNBUFFERED": "1"}

    def _job(self, name: str) -> types.PipelineJob:
        resource(name, "pipelineJobs")
        found = self.store.get("pipeline_job", name)
        if found is None:
            raise not_found("PipelineJob", name)
        return found


def check_submission(job: types.PipelineJob, spec: dict) -> dict:
    """Vertex AI's refusals at create: a spec, a pipeline root, and parameters the spec declares, of their types."""
    if not spec:
        raise VertexError("INVALID_ARGUMENT", "pipelineSpec is required: submit the compiled pipeline")
    pipeline_root(job, spec)
    for key, value in job.labels.items():
        if not _LABEL_KEY.fullmatch(key) or not _LABEL.fullmatch(value):
            raise VertexError(
                "INVALID_ARGUMENT",
                f"labels.{key}={value!r} is invalid: keys and values are lowercase letters, digits, - and _, "
                "at most 63 characters, keys starting with a letter",
            )
    declared = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    values = parameter_values(job)
    for name, value in values.items():
        if name not in declared:
            raise VertexError(
                "INVALID_ARGUMENT",
                f"The pipeline parameter {name!r} is not defined by the pipeline: it takes {', '.join(sorted(declared))}",
            )
        kind = declared[name].get("parameterType", "STRING")
        if not _has_type(value, kind):
            raise VertexError(
                "INVALID_ARGUMENT",
                f"The pipeline parameter {name!r} must be of type {kind}, but {value!r} was given",
            )
    for name, definition in declared.items():
        if name not in values and not definition.get("isOptional") and "defaultValue" not in definition:
            raise VertexError("INVALID_ARGUMENT", f"The pipeline parameter {name!r} is required but was not given")


def parameter_values(job: types.PipelineJob) -> dict:
    """The run's parameter values, from `parameterValues` or the deprecated typed `parameters`."""
    runtime = to_dict(job).get("runtimeConfig", {})
    values = dict(runtime.get("parameterValues", {}))
    for name, legacy in runtime.get("parameters", {}).items():
        values.setdefault(name, next(iter(legacy.values()), None))
    return values


def pipeline_root(job: types.PipelineJob, spec: dict) -> str:
    root = job.runtime_config.gcs_output_directory or spec.get("defaultPipelineRoot", "")
    if not root:
        raise VertexError(
            "INVALID_ARGUMENT",
            "runtimeConfig.gcsOutputDirectory (the pipeline root) is required: pass pipeline_root='gs://BUCKET/PATH'",
        )
    if not root.startswith("gs://") or not root.removeprefix("gs://").strip("/"):
        raise VertexError(
            "INVALID_ARGUMENT",
            f"runtimeConfig.gcsOutputDirectory {root!r} is not a Cloud Storage URI (gs://BUCKET/...)",
        )
    return root


def _check_bucket(root: str) -> None:
    """The run writes its artifacts under the root: its bucket must exist, as Vertex AI checks at create."""
    from google.cloud import storage

    bucket = root.removeprefix("gs://").split("/", 1)[0]
    if not storage.Client().bucket(bucket).exists():
        raise VertexError(
            "FAILED_PRECONDITION",
            f"Failed to create pipeline job: the bucket of the pipeline root {root} does not exist: create it, or "
            "let aiplatform.PipelineJob.submit() create it (a root in a new bucket, with a service account)",
        )


def _has_type(value, kind: str) -> bool:
    if kind in ("NUMBER_INTEGER", "NUMBER_DOUBLE") and isinstance(value, bool):
        return False
    if kind == "NUMBER_INTEGER" and isinstance(value, float) and not value.is_integer():
        return False
    return isinstance(value, _PYTHON_TYPES.get(kind, (object,)))


def _apply(job: types.PipelineJob, status: dict) -> None:
    """The runner's task progress as Vertex AI's task details: the root DAG first, then each task."""
    tasks = status.get("tasks", [])
    if not tasks:
        return
    root_name = to_dict(job).get("pipelineSpec", {}).get("pipelineInfo", {}).get("name", "pipeline")
    details = [
        types.PipelineTaskDetail(
            task_id=1,
            task_name=root_name,
            create_time=job.start_time or job.create_time,
            start_time=job.start_time or job.create_time,
            state=TaskState.RUNNING,
        )
    ]
    for index, task in enumerate(tasks, 2):
        detail = types.PipelineTaskDetail(
            task_id=index,
            parent_task_id=1,
            task_name=task["name"],
            task_unique_name=task["name"],
            create_time=task.get("start"),
            start_time=task.get("start"),
            state=TaskState[task["state"]],
        )
        if task.get("end"):
            detail.end_time = task["end"]
        if task.get("error"):
            detail.error = {"code": 2, "message": task["error"]}
        for key, listed in task.get("outputs", {}).items():
            detail.outputs[key] = types.PipelineTaskDetail.ArtifactList(
                artifacts=[_artifact(a) for a in listed.get("artifacts", [])]
            )
        details.append(detail)
    ended = status.get("state") in ("SUCCEEDED", "FAILED", "CANCELLED")
    if ended:
        details[0].state = TaskState[status["state"]]
        details[0].end_time = now()
    job.job_detail = types.PipelineJobDetail(task_details=details)


def _artifact(found: dict) -> types.Artifact:
    metadata = struct_pb2.Struct()
    metadata.update(found.get("metadata", {}))
    return types.Artifact(
        name=found["name"],
        display_name=found.get("displayName", ""),
        uri=found.get("uri", ""),
        schema_title=found.get("schemaTitle", "system.Artifact"),
        metadata=metadata,
        state=types.Artifact.State.LIVE,
    )


def _summary(job: types.PipelineJob) -> dict:
    """The fields list filters and order_by read (without converting the large spec)."""
    info = types.PipelineJob.pb(job).pipeline_spec.fields["pipelineInfo"].struct_value.fields
    return {
        "pipeline_name": info["name"].string_value if "name" in info else "",
        "display_name": job.display_name,
        "pipeline_job_user_id": job.name.rsplit("/", 1)[-1],
        "state": State(job.state).name,
        "create_time": query.stamp(job.create_time),
        "update_time": query.stamp(job.update_time),
        "start_time": query.stamp(job.start_time),
        "end_time": query.stamp(job.end_time),
        "labels": dict(job.labels),
        "template_uri": job.template_uri,
        "template_metadata.version": job.template_metadata.version,
        "schedule_name": job.schedule_name,
    }


def _signal(process: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)
