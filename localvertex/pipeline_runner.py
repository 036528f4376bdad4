"""`python -m localvertex.pipeline_runner JOB_DIR`: runs one submitted PipelineJob's spec with kfp.local.

The job runs the pipeline spec that was submitted (the compiled YAML, loaded as a component), not any Python
function of this package. Each task's state, times, error and output artifacts go to `JOB_DIR/status.json` as they
happen; each output artifact is copied to `gs://` under the job's pipeline root, where Vertex AI keeps it. A
SIGTERM (cancel, or the emulator going away) stops the running task's whole process tree.
"""

from __future__ import annotations

import collections
import datetime as dt
import io
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path

_TASK = re.compile(r"(Executing task|Task) '([^']+)'(?: finished with status (\w+))?")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ERROR = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Failed|Config|Exit|Interrupt)\w*)(?::\s*(.*))?$")
STATUS_FILE = "status.json"
CANCEL_GRACE = 20.0  # seconds a cancelled task gets to undo what it started (restore traffic, undeploy)


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Status:
    """What the emulator reads back: the job's state and each task's, written atomically after every change."""

    def __init__(self, path: Path, spec: dict, root: str, job_id: str) -> None:
        self.path, self.root, self.job_id = path, root.rstrip("/"), job_id
        self.schemas = _artifact_schemas(spec)
        self.state, self.error, self.tasks = "RUNNING", "", {}
        self.cancelled = False
        self.lines: collections.deque[str] = collections.deque(maxlen=200)  # the running task's last output lines
        self.write()

    def started(self, task: str) -> None:
        self.lines.clear()
        self.tasks[task] = {"name": task, "state": "RUNNING", "start": now(), "outputs": {}}
        self.write()

    def finished(self, task: str, succeeded: bool, local_root: Path) -> None:
        detail = self.tasks.setdefault(task, {"name": task, "start": now(), "outputs": {}})
        state = "SUCCEEDED" if succeeded else "CANCELLED" if self.cancelled else "FAILED"
        detail |= {"state": state, "end": now()}
        folder = local_root / self.job_id / task
        if folder.is_dir():  # a failed task's files are kept too, as files written to a mounted gs:// path are
            try:
                detail["outputs"] = self._upload(task, folder)
            except Exception as e:  # the run goes on; the task says what could not be kept
                detail["error"] = f"its outputs could not be copied to {self.root}: {e}"
        if state == "FAILED":
            detail["error"] = error_message(self.lines) or f"task {task} failed: see the job's log"
        self.write()

    def ended(self, state: str, error: str = "") -> None:
        self.state, self.error = state, error
        for detail in self.tasks.values():
            if detail["state"] == "RUNNING":
                detail |= {"state": "CANCELLED" if state == "CANCELLED" else "FAILED", "end": now()}
        self.write()

    def write(self) -> None:
        body = {"state": self.state, "error": self.error, "tasks": list(self.tasks.values())}
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(body))
        temporary.replace(self.path)

    def _upload(self, task: str, folder: Path) -> dict:
        """Copies the task's output artifacts to the pipeline root; returns them as Vertex lists them."""
        from google.cloud import storage

        written = folder / "executor_output.json"
        produced = json.loads(written.read_text()).get("artifacts", {}) if written.exists() else {}
        for owner, key in self.schemas:  # declared outputs the task wrote before it failed
            if owner == task and key not in produced and (folder / key).exists():
                produced[key] = {"artifacts": [{"uri": str(folder / key), "metadata": {}}]}
        bucket_name, _, prefix = self.root.removeprefix("gs://").partition("/")
        bucket = storage.Client().bucket(bucket_name)
        base = "/".join(p for p in (prefix, self.job_id, task) if p)
        outputs = {}
        for key, listed in produced.items():
            artifacts = []
            for artifact in listed.get("artifacts", []):
                local = Path(artifact.get("uri", ""))
                uri = f"gs://{bucket_name}/{base}/{key}"
                for path in sorted(local.rglob("*")) if local.is_dir() else [local] if local.is_file() else []:
                    relative = path.relative_to(local).as_posix() if local.is_dir() else ""
                    if path.is_file():
                        bucket.blob(f"{base}/{key}" + (f"/{relative}" if relative else "")).upload_from_filename(path)
                artifacts.append(
                    {
                        "name": f"{self.job_id}/{task}/{key}",
                        "displayName": key,
                        "uri": uri,
                        "schemaTitle": self.schemas.get((task, key), "system.Artifact"),
                        "metadata": artifact.get("metadata", {}),
                    }
                )
            outputs[key] = {"artifacts": artifacts}
        return outputs


class TaskWatch(logging.Filter):
    """Follows kfp.local's own task lines (a filter: kfp.local replaces the root handlers)."""

    def __init__(self, status: Status, local_root: Path) -> None:
        super().__init__()
        self.status, self.local_root = status, local_root

    def filter(self, record: logging.LogRecord) -> bool:
        found = _TASK.search(_ANSI.sub("", str(record.msg)))
        if found and found[1] == "Executing task":
            if self.status.cancelled:  # no new task after a cancel
                _end_cancelled(self.status)
            self.status.started(found[2])
        elif found and found[3]:
            self.status.finished(found[2], found[3] == "SUCCESS", self.local_root)
        return True


class Tee(io.TextIOBase):
    """Keeps the last lines a task printed, so a failure can be reported with the task's own error."""

    def __init__(self, sink, status: Status) -> None:
        self.sink, self.status = sink, status

    def write(self, text: str) -> int:
        self.sink.write(text)
        self.status.lines.extend(line for line in text.splitlines() if line.strip())
        return len(text)

    def flush(self) -> None:
        self.sink.flush()


def error_message(lines) -> str:
    """The last exception a task raised, without its module path: `InvalidConfig: model_dir=...`."""
    lines = [_ANSI.sub("", line).strip() for line in lines]
    for index in range(len(lines) - 1, -1, -1):
        found = _ERROR.match(lines[index])
        if found and any(line.startswith("Traceback") for line in lines[:index]):
            kind = found[1].rsplit(".", 1)[-1]
            rest = [line for line in lines[index + 1 :] if not line.startswith(("---", "Task ", "Pipeline "))]
            text = "; ".join([found[2] or "", *rest]).strip("; ")
            return f"{kind}: {text}" if text else kind
    return ""


def parameter_values(spec: dict, values: dict) -> dict:
    """Run-time values in the types the pipeline declares (JSON numbers arrive as doubles)."""
    declared = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    typed = {}
    for name, value in values.items():
        kind = declared.get(name, {}).get("parameterType")
        typed[name] = int(value) if kind == "NUMBER_INTEGER" and isinstance(value, float) else value
    return typed


def run(job_dir: Path) -> int:
    import kfp.local
    import yaml
    from kfp import components
    from kfp.local import executor_input_utils

    job = json.loads((job_dir / "job.json").read_text())
    spec, job_id = job["pipelineSpec"], job["jobId"]
    local_root = job_dir / "root"
    status = Status(job_dir / STATUS_FILE, spec, job["pipelineRoot"], job_id)
    # Vertex AI's {{$.pipeline_job_name}} is the job's id; kfp.local would name the run after the clock.
    executor_input_utils.get_local_pipeline_resource_name = lambda name: job_id

    def stop(signum, frame):
        """The running task gets SIGTERM to clean up (as a cancelled task does on Vertex AI), then a deadline."""
        status.cancelled = True
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the group signal below reaches this process too
        os.killpg(0, signal.SIGTERM)
        deadline = threading.Timer(CANCEL_GRACE, lambda: _end_cancelled(status))
        deadline.daemon = True  # a task that stops in time ends the run sooner
        deadline.start()

    signal.signal(signal.SIGTERM, stop)
    pipeline = components.load_component_from_text(yaml.safe_dump(spec))
    kfp.local.init(
        runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(local_root), raise_on_error=False
    )
    watch = TaskWatch(status, local_root)
    logging.getLogger().addFilter(watch)
    sys.stdout = Tee(sys.stdout, status)
    try:
        pipeline(**parameter_values(spec, job.get("parameterValues", {})))
    except Exception as e:  # the spec itself cannot run: the job fails with the reason
        status.ended("FAILED", f"The pipeline spec could not run: {type(e).__name__}: {e}")
        return 1
    finally:
        logging.getLogger().removeFilter(watch)
    if status.cancelled:
        status.ended("CANCELLED", "The job was cancelled")
        return 1
    failed = [t for t in status.tasks.values() if t["state"] == "FAILED"]
    if failed:
        names = ", ".join(t["name"] for t in failed)
        reasons = "; ".join(f"{t['name']}: {t.get('error', '')}" for t in failed)
        status.ended("FAILED", f"The DAG failed because some tasks failed. The failed tasks are: [{names}]. {reasons}")
        return 1
    status.ended("SUCCEEDED")
    return 0


def _end_cancelled(status: Status) -> None:
    status.ended("CANCELLED", "The job was cancelled")
    os.killpg(0, signal.SIGKILL)  # whatever the grace left running, this process too


def _artifact_schemas(spec: dict) -> dict[tuple[str, str], str]:
    """(task, output) -> the artifact's schema title, for every task in every DAG of the spec."""
    components = spec.get("components", {})
    found = {}
    dags = [spec.get("root", {})] + list(components.values())
    for dag in dags:
        for task, task_spec in dag.get("dag", {}).get("tasks", {}).items():
            component = components.get(task_spec.get("componentRef", {}).get("name", ""), {})
            for key, artifact in component.get("outputDefinitions", {}).get("artifacts", {}).items():
                found[(task, key)] = artifact.get("artifactType", {}).get("schemaTitle", "system.Artifact")
    return found


def main() -> int:
    job_dir = Path(sys.argv[1])
    started = time.monotonic()
    code = run(job_dir)
    print(f"pipeline runner: done in {time.monotonic() - started:.1f}s with exit code {code}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
