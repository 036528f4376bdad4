"""Schedules on localvertex through the unmodified SDK: cron-started PipelineJobs, pause, resume, update, delete."""

import datetime as dt
import time

import pytest
from google.api_core import exceptions
from google.cloud import aiplatform
from kfp import compiler, dsl

from localvertex.schedules import fires_between, next_fire
from tests.integration.localvertex_fixtures import Emulator

pytestmark = pytest.mark.integration
ROOT = "gs://localvertex-staging/scheduled"


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def stamp(note: str) -> str:
    return note


@dsl.pipeline(name="stamper")
def stamper(note: str = "hello"):
    stamp(note=note)


@pytest.fixture(scope="module")
def job(emulator, tmp_path_factory) -> aiplatform.PipelineJob:
    path = tmp_path_factory.mktemp("schedules") / "stamper.yaml"
    compiler.Compiler().compile(stamper, str(path))
    return aiplatform.PipelineJob(display_name="stamper", template_path=str(path), pipeline_root=ROOT)


def schedule(job, name: str, **create) -> aiplatform.PipelineJobSchedule:
    created = aiplatform.PipelineJobSchedule(pipeline_job=job, display_name=name)
    created.create(**{"max_concurrent_run_count": 1, **create})
    return created


def test_runs_start_on_minute_boundaries_until_max_run_count_and_a_paused_schedule_starts_none(job):
    every_minute = schedule(job, "every-minute", cron="* * * * *", max_run_count=2)
    paused = schedule(job, "paused", cron="* * * * *")
    paused.pause()
    assert every_minute.state.name == "ACTIVE" and every_minute.gca_resource.next_run_time.second == 0
    deadline = time.monotonic() + 200
    while time.monotonic() < deadline:
        every_minute = aiplatform.PipelineJobSchedule.get(every_minute.resource_name)
        if every_minute.state.name == "COMPLETED":
            break
        time.sleep(2)
    assert every_minute.state.name == "COMPLETED" and every_minute.gca_resource.started_run_count == 2
    runs = every_minute.list_jobs()
    assert len(runs) == 2 and {r.gca_resource.schedule_name for r in runs} == {every_minute.resource_name}
    scheduled = every_minute.gca_resource.last_scheduled_run_response.scheduled_run_time
    assert scheduled.second == 0 and scheduled.microsecond == 0
    assert aiplatform.PipelineJobSchedule.get(paused.resource_name).gca_resource.started_run_count == 0
    for run in runs:
        run.wait()
    every_minute.delete()
    remaining = aiplatform.PipelineJob.list(filter=f'schedule_name="{every_minute.resource_name}"')
    assert len(remaining) == 2  # deleting a schedule leaves its runs listed
    with pytest.raises(exceptions.NotFound):
        aiplatform.PipelineJobSchedule.get(every_minute.resource_name)
    paused.delete()


def test_a_time_zone_prefix_is_honoured_and_update_moves_the_next_run(job):
    kolkata = schedule(job, "kolkata", cron="TZ=Asia/Kolkata 30 9 * * *")
    assert (kolkata.gca_resource.next_run_time.hour, kolkata.gca_resource.next_run_time.minute) == (
        4,
        0,
    )  # 09:30 IST is 04:00 UTC
    kolkata.update(cron="CRON_TZ=Europe/Berlin 0 3 * * 1")
    updated = aiplatform.PipelineJobSchedule.get(kolkata.resource_name)
    assert updated.cron == "CRON_TZ=Europe/Berlin 0 3 * * 1" and updated.gca_resource.next_run_time.weekday() in (0, 6)
    assert updated.gca_resource.next_run_time.hour in (1, 2)  # 03:00 in Berlin is 01:00 or 02:00 UTC
    listed = aiplatform.PipelineJobSchedule.list(filter='display_name="kolkata"')
    assert [s.resource_name for s in listed] == [kolkata.resource_name]
    kolkata.delete()


@pytest.mark.parametrize(
    ("cron", "needle"), [("61 * * * *", "not a valid cron"), ("TZ=Mars/Olympus * * * * *", "unknown time zone")]
)
def test_an_invalid_cron_or_time_zone_is_refused_naming_cron(job, cron, needle):
    with pytest.raises(exceptions.BadRequest, match=needle) as e:
        schedule(job, "bad", cron=cron)
    assert "cron" in str(e.value)


def test_pause_and_resume_move_between_states(job):
    daily = schedule(job, "daily", cron="0 3 * * *")
    daily.pause()
    assert aiplatform.PipelineJobSchedule.get(daily.resource_name).state.name == "PAUSED"
    with pytest.raises(exceptions.BadRequest):
        daily.pause()
    daily.resume(catch_up=False)
    resumed = aiplatform.PipelineJobSchedule.get(daily.resource_name)
    assert resumed.state.name == "ACTIVE" and resumed.gca_resource.started_run_count == 0
    daily.delete()


def test_schedules_persist_across_a_restart_without_making_up_missed_runs(job, tmp_path):
    restarted = Emulator(tmp_path / "localvertex", tpu_cores=0).start()
    try:
        restarted.init_sdk()
        kept = aiplatform.PipelineJobSchedule(pipeline_job=job, display_name="kept")
        kept.create(cron="0 0 1 1 *", max_concurrent_run_count=1)
        restarted.kill()
        restarted.start()
        restarted.init_sdk()
        again = aiplatform.PipelineJobSchedule.get(kept.resource_name)
        assert again.state.name == "ACTIVE" and again.gca_resource.started_run_count == 0
        assert again.gca_resource.next_run_time > dt.datetime.now(dt.UTC)
    finally:
        restarted.stop()


def test_missed_fire_times_are_the_ones_a_catch_up_makes_up():
    start = dt.datetime(2026, 1, 1, 10, 0, 30, tzinfo=dt.UTC)
    missed = fires_between("*/15 * * * *", start, start + dt.timedelta(hours=1))
    assert [m.minute for m in missed] == [15, 30, 45, 0]
    assert next_fire("TZ=America/New_York 0 9 * * *", start).hour == 14  # 09:00 EST is 14:00 UTC
