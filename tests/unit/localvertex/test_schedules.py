"""The schedule clock: runs on cron times, the concurrency limit with and without queueing, and completion."""

import asyncio
import datetime as dt

from google.cloud.aiplatform_v1 import types

from localvertex.schedules import Schedules
from localvertex.store import Store

PARENT = "projects/p/locations/us-central1"
START = dt.datetime(2026, 1, 1, 10, 0, 0, tzinfo=dt.UTC)


class Jobs:
    """Stands in for the pipeline job queue: every run it is given stays RUNNING."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def enqueue(self, parent: str, job: types.PipelineJob, job_id: str) -> types.PipelineJob:
        job.name, job.state = f"{parent}/pipelineJobs/{job_id}", types.PipelineState.PIPELINE_STATE_RUNNING
        self.store.put("pipeline_job", job.name, job)
        return job


def clock(tmp_path, **fields) -> tuple[Schedules, Store, str]:
    store = Store(tmp_path / "state.sqlite")
    schedules = Schedules(store, Jobs(store))
    name = f"{PARENT}/schedules/1"
    schedule = types.Schedule(
        name=name,
        display_name="every minute",
        cron="* * * * *",
        state=types.Schedule.State.ACTIVE,
        next_run_time=START,
        create_pipeline_job_request=types.CreatePipelineJobRequest(parent=PARENT, pipeline_job=types.PipelineJob()),
        **{"max_concurrent_run_count": 1, **fields},
    )
    store.put("schedule", name, schedule)
    return schedules, store, name


def minutes(schedules: Schedules, count: int) -> None:
    for minute in range(count):
        asyncio.run(schedules.tick(START + dt.timedelta(minutes=minute, seconds=1)))


def runs(store: Store) -> list[types.PipelineJob]:
    return store.list("pipeline_job", f"{PARENT}/pipelineJobs/")


def test_a_run_still_active_makes_the_next_one_skip(tmp_path):
    schedules, store, name = clock(tmp_path)
    minutes(schedules, 3)
    schedule = store.get("schedule", name)
    assert len(runs(store)) == 1 and schedule.started_run_count == 1
    assert schedule.last_scheduled_run_response.run_response.startswith("skipped")
    assert schedule.next_run_time == START + dt.timedelta(minutes=3)


def test_with_queueing_the_waiting_runs_start_once_there_is_room(tmp_path):
    schedules, store, name = clock(tmp_path, allow_queueing=True)
    minutes(schedules, 3)
    assert len(runs(store)) == 1
    for job in runs(store):
        job.state = types.PipelineState.PIPELINE_STATE_SUCCEEDED
        store.put("pipeline_job", job.name, job)
    minutes(schedules, 1)  # the backlog's first run starts in the next tick
    assert len(runs(store)) == 2 and all(r.schedule_name == name for r in runs(store))


def test_the_last_allowed_run_completes_the_schedule(tmp_path):
    schedules, store, name = clock(tmp_path, max_run_count=2, max_concurrent_run_count=5)
    minutes(schedules, 4)
    schedule = store.get("schedule", name)
    assert len(runs(store)) == 2 and schedule.state == types.Schedule.State.COMPLETED
