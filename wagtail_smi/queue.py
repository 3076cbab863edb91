"""Handing work to the django-q2 workers, now or at a given time, and the schedules.

Tasks are named by their dotted path (``wagtail_smi.tasks.*``, the thin entry points), so
nothing here imports them. Arguments are plain strings so any broker can carry them.
Business retries live in the job, not in broker redelivery: a task that is lost is found
again by the sweeper, which the job table, not the queue, drives. Call these from
``transaction.on_commit`` so a rolled-back change never enqueues anything.

Two kinds of django-q2 ``Schedule`` rows belong to the package:

- the periodic ones (``SCHEDULES``: the sweeper every minute, the cleanup daily), created
  or repaired by ``ensure_schedules`` after every ``migrate`` (and by ``smi_schedules``);
- one ``ONCE`` row per job waiting for its next poll or retry (``schedule_processing``),
  so the first poll comes when it is due rather than at the sweeper's next round. django-q2
  deletes a ``ONCE`` row when it runs it; ``forget_schedule`` removes one whose job moved
  on, and the sweeper removes any left behind (``stale_job_schedules``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import DEFAULT_DB_ALIAS, connections, router
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task

Q_GROUP = "wagtail_smi"
PROCESS_TASK = "wagtail_smi.tasks.process_job"
# A job's own schedule is named after it (django-q2 schedule names are at most 100 chars).
JOB_SCHEDULE_PREFIX = "wagtail_smi job "


@dataclass(frozen=True)
class Periodic:
    name: str
    func: str
    schedule_type: str
    minutes: int | None = None


SWEEPER = Periodic("wagtail_smi sweeper", "wagtail_smi.tasks.sweep", Schedule.MINUTES, 1)
CLEANUP = Periodic("wagtail_smi cleanup", "wagtail_smi.tasks.cleanup", Schedule.DAILY)
SCHEDULES = (SWEEPER, CLEANUP)


def enqueue_processing(job_id) -> None:
    """Move a paid or processing job forward in a worker."""
    async_task(PROCESS_TASK, str(job_id), group=Q_GROUP)


def enqueue_refund(job_id, reason: str) -> None:
    """Refund a failed job in a worker (``reason`` is a failure code)."""
    async_task("wagtail_smi.tasks.refund_failed_job", str(job_id), reason, group=Q_GROUP)


def enqueue_auto_refund(job_id) -> None:
    """Refund a paid order that was not delivered in time, in a worker."""
    async_task("wagtail_smi.tasks.auto_refund", str(job_id), group=Q_GROUP)


# Periodic schedules ------------------------------------------------------------------------


def schedules_table_exists(using: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether django-q2's schedules live in this database and their table is there yet
    (not after a ``migrate`` of our app alone, say)."""
    if not router.allow_migrate_model(using, Schedule):
        return False
    return Schedule._meta.db_table in connections[using].introspection.table_names()


def ensure_schedules(using: str | None = None) -> list[tuple[str, str]]:
    """Create the periodic schedules, or put them right (function, interval, repeats, a
    duplicate row): safe to run at any time. Returns ``(name, what was done)`` pairs, the
    outcome ``"created"``, ``"repaired"`` or ``"up to date"``."""
    using = using or router.db_for_write(Schedule)
    done = []
    for periodic in SCHEDULES:
        wanted = {
            "func": periodic.func,
            "schedule_type": periodic.schedule_type,
            "minutes": periodic.minutes,
            "repeats": -1,
            "args": None,
            "kwargs": None,
        }
        rows = list(Schedule.objects.using(using).filter(name=periodic.name).order_by("pk"))
        if not rows:
            Schedule.objects.using(using).create(
                name=periodic.name, next_run=timezone.now(), **wanted
            )
            done.append((periodic.name, "created"))
            continue
        keep, extra = rows[0], rows[1:]
        changed = [field for field, value in wanted.items() if getattr(keep, field) != value]
        for field in changed:
            setattr(keep, field, wanted[field])
        if keep.next_run is None:
            keep.next_run = timezone.now()
            changed.append("next_run")
        if changed:
            keep.save(using=using, update_fields=changed)
        for row in extra:
            row.delete()
        done.append((periodic.name, "repaired" if changed or extra else "up to date"))
    return done


def missing_schedules(using: str | None = None) -> list[Periodic]:
    """The periodic schedules that are absent or would not run as they should."""
    using = using or router.db_for_read(Schedule)
    missing = []
    for periodic in SCHEDULES:
        ok = (
            Schedule.objects.using(using)
            .filter(
                name=periodic.name,
                func=periodic.func,
                schedule_type=periodic.schedule_type,
                minutes=periodic.minutes,
            )
            .exclude(repeats=0)
            .exists()
        )
        if not ok:
            missing.append(periodic)
    return missing


# One job's next poll or retry ---------------------------------------------------------------


def job_schedule_name(job_id) -> str:
    return f"{JOB_SCHEDULE_PREFIX}{job_id}"


def schedule_processing(job_id, at: datetime) -> None:
    """Run ``process_job`` for this job at ``at`` (give or take django-q2's scheduler,
    which looks every 30 seconds). One schedule per job: a later call moves it."""
    name = job_schedule_name(job_id)
    moved = Schedule.objects.filter(name=name).update(next_run=at, repeats=-1)
    if not moved:
        Schedule.objects.create(
            name=name,
            func=PROCESS_TASK,
            args=repr(str(job_id)),
            schedule_type=Schedule.ONCE,
            repeats=-1,
            next_run=at,
        )


def forget_schedule(job_id) -> None:
    """The job moved on (delivered, failed, waiting for an admin): drop its schedule."""
    Schedule.objects.filter(name=job_schedule_name(job_id)).delete()


def job_schedules() -> dict[uuid.UUID, int]:
    """The jobs that have a schedule of their own, with the schedule's id."""
    found = {}
    rows = Schedule.objects.filter(name__startswith=JOB_SCHEDULE_PREFIX).values_list("pk", "name")
    for pk, name in rows:
        try:
            found[uuid.UUID(name.removeprefix(JOB_SCHEDULE_PREFIX))] = pk
        except ValueError:
            continue
    return found


def drop_schedules(schedule_ids: Iterable[int]) -> int:
    return Schedule.objects.filter(pk__in=list(schedule_ids)).delete()[0]
