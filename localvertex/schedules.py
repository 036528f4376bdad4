"""Vertex AI's schedules on one machine, as `aiplatform.PipelineJobSchedule` uses them: cron-started PipelineJobs.

croniter reads the cron expressions (with Vertex AI's `TZ=` / `CRON_TZ=` prefix). Schedules live in the emulator's
SQLite state, so they go on after a restart; fire times missed while the emulator was down, or while a schedule
was paused, are not made up, unless a resume asks for `catchUp`, as on Vertex AI.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import zoneinfo

from croniter import croniter
from google.cloud.aiplatform_v1 import types
from google.longrunning import operations_pb2
from google.protobuf import empty_pb2

from localvertex import query
from localvertex.api import finished, location, resource
from localvertex.errors import VertexError, not_found
from localvertex.pipeline_jobs import PipelineJobs, State
from localvertex.rpc import Call, mask_paths, rpc
from localvertex.store import Store

log = logging.getLogger("localvertex")
ScheduleState = types.Schedule.State
_TZ = re.compile(r"^(?:CRON_TZ|TZ)=(\S+)\s+(.*)$")
_UPDATABLE = {
    "display_name",
    "cron",
    "start_time",
    "end_time",
    "max_run_count",
    "max_concurrent_run_count",
    "max_concurrent_active_run_count",
    "allow_queueing",
}


def parse_cron(cron: str) -> tuple[str, zoneinfo.ZoneInfo]:
    """The expression and its time zone (UTC unless prefixed); an invalid one is refused naming `cron`."""
    found = _TZ.match(cron.strip())
    expression, zone = (found[2], found[1]) if found else (cron.strip(), "UTC")
    try:
        tz = zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise VertexError("INVALID_ARGUMENT", f"cron {cron!r} names an unknown time zone {zone!r}") from None
    if not expression or not croniter.is_valid(expression):
        raise VertexError("INVALID_ARGUMENT", f"cron {cron!r} is not a valid cron expression: {expression!r}")
    return expression, tz


def next_fire(cron: str, after: dt.datetime) -> dt.datetime:
    """The first fire time strictly after `after` (UTC), computed in the cron's own time zone."""
    expression, tz = parse_cron(cron)
    return croniter(expression, after.astimezone(tz)).get_next(dt.datetime).astimezone(dt.UTC)


def fires_between(cron: str, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """Every fire time in (start, end]: the runs a paused schedule missed."""
    found, current = [], start
    while (current := next_fire(cron, current)) <= end:
        found.append(current)
    return found


class Schedules:
    """The schedules handlers, and the clock that starts their runs."""

    def __init__(self, store: Store, pipeline_jobs: PipelineJobs) -> None:
        self.store, self.pipeline_jobs = store, pipeline_jobs

    # The methods ---------------------------------------------------------------------------------------------

    @rpc("ScheduleService")
    async def create_schedule(self, request: types.CreateScheduleRequest, call: Call) -> types.Schedule:
        schedule, parent = request.schedule, location(request.parent)
        if not schedule.display_name:
            raise VertexError("INVALID_ARGUMENT", "displayName is required")
        if not schedule.cron:
            raise VertexError("INVALID_ARGUMENT", "cron is required: a schedule starts its runs on a cron expression")
        parse_cron(schedule.cron)
        if "create_pipeline_job_request" not in schedule:
            raise VertexError("INVALID_ARGUMENT", "createPipelineJobRequest is required")
        _check_limits(schedule)
        runs = schedule.create_pipeline_job_request
        runs.parent = runs.parent or parent
        self.pipeline_jobs.check(runs.pipeline_job)  # the runs' own refusals, at create, as Vertex AI does
        with self.store.transaction():
            name = f"{parent}/schedules/{self.store.next_id('schedule', 1000)}"
            schedule.name, schedule.state = name, ScheduleState.ACTIVE
            schedule.create_time = schedule.update_time = _stamp(_now())
            schedule.started_run_count = 0
            schedule.next_run_time = _stamp(self._first_fire(schedule, _now()))
            self.store.put("schedule", name, schedule)
        log.info("Schedule %s created: %s, next run %s", name, schedule.cron, schedule.next_run_time)
        return schedule

    @rpc("ScheduleService")
    async def get_schedule(self, request: types.GetScheduleRequest, call: Call) -> types.Schedule:
        return self._schedule(request.name)

    @rpc("ScheduleService")
    async def list_schedules(self, request: types.ListSchedulesRequest, call: Call) -> types.ListSchedulesResponse:
        query.compile_filter(request.filter, query.SCHEDULES)  # refused before the store is read
        items, token = query.listing(
            self.store.list("schedule", f"{location(request.parent)}/schedules/"), request, query.SCHEDULES, _summary
        )
        return types.ListSchedulesResponse(schedules=items, next_page_token=token)

    @rpc("ScheduleService")
    async def update_schedule(self, request: types.UpdateScheduleRequest, call: Call) -> types.Schedule:
        changes, paths = request.schedule, mask_paths(request.update_mask, _UPDATABLE)
        if "cron" in paths:
            parse_cron(changes.cron)
        with self.store.transaction():
            schedule = self._schedule(changes.name)
            for path in paths:
                setattr(schedule, path, getattr(changes, path))
            _check_limits(schedule)
            if schedule.state == ScheduleState.COMPLETED and not self._finished(schedule, _now()):
                schedule.state = ScheduleState.ACTIVE  # new limits leave room for more runs
            schedule.next_run_time = _stamp(self._first_fire(schedule, _now()))
            schedule.update_time = _stamp(_now())
            self.store.put("schedule", schedule.name, schedule)
        return schedule

    @rpc("ScheduleService")
    async def delete_schedule(self, request: types.DeleteScheduleRequest, call: Call) -> operations_pb2.Operation:
        """The schedule goes; the runs it started stay, as on Vertex AI."""
        schedule = self._schedule(request.name)
        self.store.delete(schedule.name)
        self.store.delete(_backlog_key(schedule.name))
        stamp = _stamp(_now())
        metadata = types.DeleteOperationMetadata(generic_metadata={"create_time": stamp, "update_time": stamp})
        return finished(self.store, schedule.name.split("/schedules/")[0], None, metadata)

    @rpc("ScheduleService")
    async def pause_schedule(self, request: types.PauseScheduleRequest, call: Call) -> empty_pb2.Empty:
        with self.store.transaction():
            schedule = self._schedule(request.name)
            if schedule.state != ScheduleState.ACTIVE:
                raise VertexError(
                    "FAILED_PRECONDITION",
                    f"Schedule {schedule.name} is {schedule.state.name}: only an ACTIVE one pauses",
                )
            schedule.state, schedule.last_pause_time = ScheduleState.PAUSED, _stamp(_now())
            schedule.update_time = _stamp(_now())
            self.store.put("schedule", schedule.name, schedule)
        return empty_pb2.Empty()

    @rpc("ScheduleService")
    async def resume_schedule(self, request: types.ResumeScheduleRequest, call: Call) -> empty_pb2.Empty:
        catch_up = request.catch_up
        with self.store.transaction():
            schedule = self._schedule(request.name)
            if schedule.state != ScheduleState.PAUSED:
                raise VertexError(
                    "FAILED_PRECONDITION",
                    f"Schedule {schedule.name} is {schedule.state.name}: only a PAUSED one resumes",
                )
            now = _now()
            if catch_up and schedule.last_pause_time:
                missed = fires_between(schedule.cron, schedule.last_pause_time.astimezone(dt.UTC), now)
                self._add_backlog(schedule.name, missed)
            schedule.state, schedule.catch_up = ScheduleState.ACTIVE, catch_up
            schedule.last_resume_time = schedule.update_time = _stamp(now)
            schedule.next_run_time = _stamp(self._first_fire(schedule, now))
            self.store.put("schedule", schedule.name, schedule)
        return empty_pb2.Empty()

    # The clock -----------------------------------------------------------------------------------------------

    def recover(self) -> None:
        """After a restart: fire times missed while the emulator was down are skipped, not made up."""
        now = _now()
        with self.store.transaction():
            for schedule in self.store.list("schedule", "projects/"):
                if schedule.state == ScheduleState.ACTIVE and schedule.next_run_time < now:
                    schedule.next_run_time = _stamp(self._first_fire(schedule, now))
                    self.store.put("schedule", schedule.name, schedule)

    async def serve(self) -> None:
        while True:
            try:
                await self.tick(_now())
            except Exception:  # one broken schedule must not stop the others
                log.exception("schedules")
            await asyncio.sleep(0.5)

    async def tick(self, now: dt.datetime) -> None:
        """Starts every run that is due: on its cron time, or from the backlog once there is room."""
        for schedule in self.store.list("schedule", "projects/"):
            if schedule.state != ScheduleState.ACTIVE:
                continue
            backlog = self._backlog(schedule.name)
            if schedule.next_run_time > now and not backlog and not self._finished(schedule, now):
                continue  # nothing due: the common case costs no look at the runs
            if schedule.next_run_time <= now:
                due = schedule.next_run_time.astimezone(dt.UTC)
                schedule.next_run_time = _stamp(next_fire(schedule.cron, max(due, now - dt.timedelta(seconds=1))))
                if self._active_runs(schedule) < schedule.max_concurrent_run_count:
                    await self._start(schedule, due)
                elif schedule.allow_queueing:
                    backlog.append(due)
                else:
                    schedule.last_scheduled_run_response = types.Schedule.RunResponse(
                        scheduled_run_time=_stamp(due),
                        run_response=f"skipped: {schedule.max_concurrent_run_count} runs were still active",
                    )
            while backlog and self._active_runs(schedule) < schedule.max_concurrent_run_count:
                if self._finished(schedule, now):
                    backlog.clear()
                    break
                await self._start(schedule, backlog.pop(0))
            self._set_backlog(schedule.name, backlog)
            if self._finished(schedule, now):
                schedule.state = ScheduleState.COMPLETED
            schedule.update_time = _stamp(now)
            self.store.put("schedule", schedule.name, schedule)

    async def _start(self, schedule: types.Schedule, due: dt.datetime) -> None:
        if self._finished(schedule, _now()):
            return
        job = types.PipelineJob(schedule.create_pipeline_job_request.pipeline_job)
        job.schedule_name = schedule.name
        job.display_name = schedule.display_name
        slug = re.sub(r"[^a-z0-9-]+", "-", schedule.display_name.lower()).strip("-")[:90] or "schedule"
        job_id = f"{slug}-{due:%Y%m%d%H%M%S}-{self.store.next_id('scheduled_run', 1)}"
        parent = schedule.create_pipeline_job_request.parent or schedule.name.split("/schedules/")[0]
        try:
            created = await self.pipeline_jobs.enqueue(parent, job, job_id)
            response = created.name
        except VertexError as e:  # the run could not be created: the schedule says why and goes on
            response = f"failed to create the run: {e.message}"
        schedule.started_run_count += 1
        schedule.last_scheduled_run_response = types.Schedule.RunResponse(
            scheduled_run_time=_stamp(due), run_response=response
        )
        log.info("Schedule %s started %s", schedule.name, response)

    def _active_runs(self, schedule: types.Schedule) -> int:
        done = {State.PIPELINE_STATE_SUCCEEDED, State.PIPELINE_STATE_FAILED, State.PIPELINE_STATE_CANCELLED}
        return sum(
            1
            for job in self.store.list("pipeline_job", "projects/")
            if job.schedule_name == schedule.name and job.state not in done
        )

    def _first_fire(self, schedule: types.Schedule, now: dt.datetime) -> dt.datetime:
        start = schedule.start_time.astimezone(dt.UTC) if schedule.start_time else now
        return next_fire(schedule.cron, max(start - dt.timedelta(microseconds=1), now))

    @staticmethod
    def _finished(schedule: types.Schedule, now: dt.datetime) -> bool:
        if schedule.max_run_count and schedule.started_run_count >= schedule.max_run_count:
            return True
        return bool(schedule.end_time) and now >= schedule.end_time.astimezone(dt.UTC)

    def _backlog(self, name: str) -> list[dt.datetime]:
        stored = self.store.get("operation", _backlog_key(name)) or {}
        return [dt.datetime.fromisoformat(t) for t in stored.get("times", [])]

    def _set_backlog(self, name: str, times: list[dt.datetime]) -> None:
        if times:
            self.store.put("operation", _backlog_key(name), {"times": [t.isoformat() for t in times]})
        else:
            self.store.delete(_backlog_key(name))

    def _add_backlog(self, name: str, times: list[dt.datetime]) -> None:
        self._set_backlog(name, self._backlog(name) + times)

    def _schedule(self, name: str) -> types.Schedule:
        resource(name, "schedules")
        found = self.store.get("schedule", name)
        if found is None:
            raise not_found("Schedule", name)
        return found


def _check_limits(schedule: types.Schedule) -> None:
    if schedule.max_concurrent_run_count < 1:
        raise VertexError("INVALID_ARGUMENT", "maxConcurrentRunCount must be at least 1")
    if schedule.max_run_count < 0:
        raise VertexError("INVALID_ARGUMENT", "maxRunCount must not be negative")
    if schedule.start_time and schedule.end_time and schedule.end_time <= schedule.start_time:
        raise VertexError("INVALID_ARGUMENT", "endTime must be after startTime")


def _summary(schedule: types.Schedule) -> dict:
    """The fields list filters and order_by read."""
    return {
        "display_name": schedule.display_name,
        "state": ScheduleState(schedule.state).name,
        "create_pipeline_job_request": "*" if "create_pipeline_job_request" in schedule else "",
        "create_time": query.stamp(schedule.create_time),
        "start_time": query.stamp(schedule.start_time),
        "end_time": query.stamp(schedule.end_time),
        "next_run_time": query.stamp(schedule.next_run_time),
    }


def _backlog_key(name: str) -> str:
    """Queued fire times (allow_queueing, or a catch-up) are kept beside the schedule, so a restart keeps them."""
    return f"{name}#backlog"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _stamp(moment: dt.datetime) -> dt.datetime:
    """An aware UTC datetime, as proto-plus timestamps take them."""
    return moment.astimezone(dt.UTC)
