"""Vertex AI's schedules on one machine, as `aiplatform.PipelineJobSchedule` uses them: cron-started PipelineJobs.

croniter reads the cron expressions (with Vertex AI's `TZ=` / `CRON_TZ=` prefix). Schedules live in the emulator's
SQLite state, so they go on after a restart; fire times missed while the emulator was down, or while a schedule
was paused, are not made up, unless a resume asks for `catchUp`, as on Vertex AI.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
import zoneinfo

from croniter import croniter
from google.cloud.aiplatform_v1 import types

from localvertex import traffic
from localvertex.api import _PARENT, _dict, _page, _parent, _raise, done_operation
from localvertex.errors import VertexError, not_found
from localvertex.pipeline_jobs import PipelineJobs, State
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
ROUTES = [
    ("POST", rf"{_PARENT}/schedules", "create_schedule"),
    ("GET", rf"{_PARENT}/schedules", "list_schedules"),
    ("GET", rf"{_PARENT}/schedules/(?P<id>[^/:]+)", "get_schedule"),
    ("PATCH", rf"{_PARENT}/schedules/(?P<id>[^/:]+)", "update_schedule"),
    ("DELETE", rf"{_PARENT}/schedules/(?P<id>[^/:]+)", "delete_schedule"),
    ("POST", rf"{_PARENT}/schedules/(?P<id>[^/:]+):pause", "pause_schedule"),
    ("POST", rf"{_PARENT}/schedules/(?P<id>[^/:]+):resume", "resume_schedule"),
]


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

    ROUTES = ROUTES

    def __init__(self, store: Store, pipeline_jobs: PipelineJobs) -> None:
        self.store, self.pipeline_jobs = store, pipeline_jobs

    # The REST methods ----------------------------------------------------------------------------------------

    async def create_schedule(self, p: dict, body: dict, query) -> dict:
        schedule = types.Schedule.from_json(json.dumps(body))
        parent = _parent(p)
        if not schedule.display_name:
            raise VertexError("INVALID_ARGUMENT", "displayName is required")
        if not schedule.cron:
            raise VertexError("INVALID_ARGUMENT", "cron is required: a schedule starts its runs on a cron expression")
        parse_cron(schedule.cron)
        if "create_pipeline_job_request" not in schedule:
            raise VertexError("INVALID_ARGUMENT", "createPipelineJobRequest is required")
        _check_limits(schedule)
        request = schedule.create_pipeline_job_request
        request.parent = request.parent or parent
        self.pipeline_jobs.check(request.pipeline_job)  # the runs' own refusals, at create, as Vertex AI does
        with self.store.transaction():
            name = f"{parent}/schedules/{self.store.next_id('schedule', 1000)}"
            schedule.name, schedule.state = name, ScheduleState.ACTIVE
            schedule.create_time = schedule.update_time = _stamp(_now())
            schedule.started_run_count = 0
            schedule.next_run_time = _stamp(self._first_fire(schedule, _now()))
            self.store.put("schedule", name, schedule)
        log.info("Schedule %s created: %s, next run %s", name, schedule.cron, schedule.next_run_time)
        return _dict(schedule)

    async def get_schedule(self, p: dict, body: dict, query) -> dict:
        return _dict(self._schedule(p))

    async def list_schedules(self, p: dict, body: dict, query) -> dict:
        schedules = self.store.list("schedule", f"{_parent(p)}/schedules/")
        found = [s for s in schedules if traffic.matches(_summary(s), query.get("filter", ""))]
        return _page("schedules", traffic.order(found, query.get("orderBy", ""), _summary), query)

    async def update_schedule(self, p: dict, body: dict, query) -> dict:
        changes = types.Schedule.from_json(json.dumps(body))
        paths = [re.sub(r"(?<!^)(?=[A-Z])", "_", f.strip()).lower() for f in query.get("updateMask", "").split(",")]
        paths = [f for f in paths if f]
        if not paths:
            raise VertexError("INVALID_ARGUMENT", "updateMask is required: name the fields to update")
        if unknown := sorted(set(paths) - _UPDATABLE):
            raise VertexError("INVALID_ARGUMENT", f"updateMask names fields that cannot be updated: {unknown}")
        if "cron" in paths:
            parse_cron(changes.cron)
        with self.store.transaction():
            schedule = self._schedule(p)
            for path in paths:
                setattr(schedule, path, getattr(changes, path))
            _check_limits(schedule)
            if schedule.state == ScheduleState.COMPLETED and not self._finished(schedule, _now()):
                schedule.state = ScheduleState.ACTIVE  # new limits leave room for more runs
            schedule.next_run_time = _stamp(self._first_fire(schedule, _now()))
            schedule.update_time = _stamp(_now())
            self.store.put("schedule", schedule.name, schedule)
        return _dict(schedule)

    async def delete_schedule(self, p: dict, body: dict, query) -> dict:
        """The schedule goes; the runs it started stay, as on Vertex AI."""
        schedule = self._schedule(p)
        self.store.delete(schedule.name)
        self.store.delete(_backlog_key(schedule.name))
        return done_operation(self.store, _parent(p))

    async def pause_schedule(self, p: dict, body: dict, query) -> dict:
        with self.store.transaction():
            schedule = self._schedule(p)
            if schedule.state != ScheduleState.ACTIVE:
                raise VertexError(
                    "FAILED_PRECONDITION",
                    f"Schedule {schedule.name} is {schedule.state.name}: only an ACTIVE one pauses",
                )
            schedule.state, schedule.last_pause_time = ScheduleState.PAUSED, _stamp(_now())
            schedule.update_time = _stamp(_now())
            self.store.put("schedule", schedule.name, schedule)
        return {}

    async def resume_schedule(self, p: dict, body: dict, query) -> dict:
        catch_up = bool(body.get("catchUp", False))
        with self.store.transaction():
            schedule = self._schedule(p)
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
        return {}

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

    def _schedule(self, p: dict) -> types.Schedule:
        name = f"{_parent(p)}/schedules/{p['id']}"
        return self.store.get("schedule", name) or _raise(not_found("Schedule", name))


def _check_limits(schedule: types.Schedule) -> None:
    if schedule.max_concurrent_run_count < 1:
        raise VertexError("INVALID_ARGUMENT", "maxConcurrentRunCount must be at least 1")
    if schedule.max_run_count < 0:
        raise VertexError("INVALID_ARGUMENT", "maxRunCount must not be negative")
    if schedule.start_time and schedule.end_time and schedule.end_time <= schedule.start_time:
        raise VertexError("INVALID_ARGUMENT", "endTime must be after startTime")


def _summary(schedule: types.Schedule) -> dict:
    return {
        "displayName": schedule.display_name,
        "state": ScheduleState(schedule.state).name,
        "createTime": schedule.create_time.isoformat() if schedule.create_time else "",
        "nextRunTime": schedule.next_run_time.isoformat() if schedule.next_run_time else "",
        "name": schedule.name,
    }


def _backlog_key(name: str) -> str:
    """Queued fire times (allow_queueing, or a catch-up) are kept beside the schedule, so a restart keeps them."""
    return f"{name}#backlog"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _stamp(moment: dt.datetime) -> dt.datetime:
    """An aware UTC datetime, as proto-plus timestamps take them."""
    return moment.astimezone(dt.UTC)
