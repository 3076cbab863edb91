"""The job state machine (SPEC §2): the only code that changes ``PurchaseJob.status``.

Every transition runs in a transaction holding the job's row lock, is checked against
``ALLOWED_TRANSITIONS``, stamps the state's timestamp and appends a ``JobEvent`` carrying
an event code and its data (``models.EventCode``; ``timeline`` turns them into sentences).
A refused move raises ``TransitionNotAllowed``, is logged, and changes nothing.

Side effects (enqueueing tasks, sending email) belong in ``transaction.on_commit``
callbacks registered by the caller, so they never run for a rolled-back change.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import transaction
from django.utils import timezone

from .models import EventCode, JobEvent, JobStatus, PurchaseJob

logger = logging.getLogger(__name__)

S = JobStatus

ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    S.AWAITING_PAYMENT: frozenset({S.PAID, S.ABANDONED}),
    # A payment that arrives after the job was abandoned must still be honoured.
    S.ABANDONED: frozenset({S.PAID}),
    S.PAID: frozenset({S.PROCESSING, S.FAILED, S.NEEDS_ATTENTION}),
    S.PROCESSING: frozenset({S.COMPLETED, S.FAILED, S.NEEDS_ATTENTION}),
    S.COMPLETED: frozenset({S.REFUNDED}),
    S.FAILED: frozenset({S.REFUNDED, S.NEEDS_ATTENTION}),
    # Admin: retry (paid), refund, or record a delivery made by hand (completed).
    S.NEEDS_ATTENTION: frozenset({S.PAID, S.REFUNDED, S.COMPLETED}),
    # A refund the provider accepted and later reported failed: money was not returned.
    S.REFUNDED: frozenset({S.NEEDS_ATTENTION}),
}

# The timestamp field stamped when a state is reached.
STATE_TIMESTAMPS: dict[str, str] = {
    S.PAID: "paid_at",
    S.PROCESSING: "processing_at",
    S.COMPLETED: "completed_at",
    S.ABANDONED: "abandoned_at",
    S.FAILED: "failed_at",
    S.REFUNDED: "refunded_at",
    S.NEEDS_ATTENTION: "needs_attention_at",
}
# Stamped only the first time: revenue is dated by the payment, not by an admin's retry.
KEEP_FIRST_TIMESTAMP = frozenset({"paid_at"})


class TransitionNotAllowed(Exception):
    def __init__(self, job_id: Any, from_status: str, to_status: str, detail: str = ""):
        self.job_id, self.from_status, self.to_status = job_id, from_status, to_status
        message = f"job {job_id}: {from_status} → {to_status} is not allowed"
        super().__init__(f"{message} ({detail})" if detail else message)


def is_allowed(from_status: str, to_status: str) -> bool:
    return to_status in ALLOWED_TRANSITIONS.get(from_status, frozenset())


def _job_id(job: PurchaseJob | uuid.UUID | str) -> uuid.UUID | str:
    return job.pk if isinstance(job, PurchaseJob) else job


@contextmanager
def locked_job(job: PurchaseJob | uuid.UUID | str) -> Iterator[PurchaseJob]:
    """Yield a fresh copy of the job with its row locked, inside a transaction."""
    with transaction.atomic():
        yield PurchaseJob.objects.select_for_update().get(pk=_job_id(job))


def transition(
    job: PurchaseJob | uuid.UUID | str,
    to_status: str,
    *,
    code: str,
    data: dict[str, Any] | None = None,
    actor=None,
    only_from: Iterable[str] | None = None,
    **fields: Any,
) -> PurchaseJob:
    """Move a job to ``to_status`` and save ``fields`` with it, atomically; log ``code``
    (an ``EventCode``) with ``data``.

    ``only_from`` narrows the allowed source states for this caller (a webhook that may
    only mark an unpaid job paid, say): a job in any other state is refused, which makes
    replays and races harmless. Returns the updated job.
    """
    job_id = _job_id(job)
    refused: TransitionNotAllowed | None = None
    with transaction.atomic():
        current = PurchaseJob.objects.select_for_update().get(pk=job_id)
        from_status = current.status
        if not is_allowed(from_status, to_status):
            refused = TransitionNotAllowed(job_id, from_status, to_status)
        elif only_from is not None and from_status not in set(only_from):
            refused = TransitionNotAllowed(
                job_id, from_status, to_status, f"this step expects {', '.join(sorted(only_from))}"
            )
        else:
            now = timezone.now()
            current.status = to_status
            stamp = STATE_TIMESTAMPS.get(to_status)
            if stamp in KEEP_FIRST_TIMESTAMP and getattr(current, stamp):
                stamp = None  # a retried order keeps the time it was paid
            if stamp:
                setattr(current, stamp, now)
            for name, value in fields.items():
                setattr(current, name, value)
            update_fields = ["status", "updated_at", *fields]
            if stamp:
                update_fields.append(stamp)
            current.save(update_fields=sorted(set(update_fields)))
            JobEvent.objects.create(
                job=current,
                kind=JobEvent.Kind.TRANSITION,
                code=code,
                data=data or {},
                from_status=from_status,
                to_status=to_status,
                actor=actor,
            )
            logger.info("job %s: %s → %s (%s)", job_id, from_status, to_status, code)
    if refused is not None:
        logger.warning("refused: %s (%s)", refused, code)
        _record_refusal(job_id, refused, code, data, actor)
        raise refused
    return current


def _record_refusal(job_id, refused: TransitionNotAllowed, code: str, data, actor) -> None:
    # Outside the lock's transaction: the refusal itself changed nothing.
    try:
        JobEvent.objects.create(
            job_id=job_id,
            kind=JobEvent.Kind.REFUSED,
            code=code,
            data=data or {},
            from_status=refused.from_status,
            to_status=refused.to_status,
            actor=actor,
        )
    except Exception:  # the log must never turn a refusal into a crash
        logger.exception("could not record refused transition for job %s", job_id)


def record_event(
    job: PurchaseJob | uuid.UUID | str,
    code: str,
    data: dict[str, Any] | None = None,
    *,
    actor=None,
) -> JobEvent:
    """Append an event that is not a transition (a submission, a resent link, an email)."""
    return JobEvent.objects.create(
        job_id=_job_id(job), kind=JobEvent.Kind.NOTE, code=code, data=data or {}, actor=actor
    )


def events_of(job: PurchaseJob | uuid.UUID | str, code: str):
    """The job's events with this code (for rules such as "one refusal, one fresh key")."""
    return JobEvent.objects.filter(job_id=_job_id(job), code=code)


__all__ = [
    "ALLOWED_TRANSITIONS",
    "EventCode",
    "TransitionNotAllowed",
    "events_of",
    "is_allowed",
    "locked_job",
    "record_event",
    "transition",
    "update_job",
]


def update_job(job: PurchaseJob | uuid.UUID | str, **fields: Any) -> PurchaseJob:
    """Save non-status fields under the row lock (attempt counters, provider ids...)."""
    if "status" in fields:
        raise ValueError("use transition() to change a job's status")
    with locked_job(job) as current:
        for name, value in fields.items():
            setattr(current, name, value)
        current.save(update_fields=sorted({*fields, "updated_at"}))
    return current
