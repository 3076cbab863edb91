"""An admin takes an order in hand: answer for a late one (no automatic refund), retry one
that needs attention, or record how it was settled outside the system."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from django.utils.translation import gettext as _

from ..conf import smi_settings
from ..models import EventCode, JobStatus, PurchaseJob
from ..upscalers import FAILED
from ..workflow import locked_job, record_event, transition, update_job
from .common import Actor, JobId, process_later
from .errors import InvalidInput, NotAllowed

S = JobStatus
DELIVERED_BY_HAND = "delivered"
REFUNDED_OUTSIDE = "refunded_outside"
# Paid and not delivered yet: what the automatic refund applies to.
UNDELIVERED = frozenset({S.PAID, S.PROCESSING, S.NEEDS_ATTENTION})


def take_in_hand(job_id: JobId, actor: Actor = None) -> PurchaseJob:
    """An admin answers for a paid order that is not delivered yet: it is no longer
    refunded automatically after ``AUTO_REFUND_AFTER_HOURS`` (the admin delivers it or
    refunds it). Recorded on the order (who and when, and in its log); taking an order in
    hand twice changes nothing. Refused (``NotAllowed``) for an order that is not paid, or
    already delivered or refunded."""
    with locked_job(job_id) as job:
        if job.status not in UNDELIVERED:
            raise NotAllowed(_("Only a paid order that is not delivered yet can be taken in hand."))
        if job.taken_in_hand_at:
            return job
        job = update_job(job, taken_in_hand_at=timezone.now(), taken_in_hand_by=actor)
        record_event(job, EventCode.TAKEN_IN_HAND, {}, actor=actor)
    return job


def retry(job_id: JobId, *, actor: Actor = None) -> PurchaseJob:
    """needs_attention → paid, and processed again.

    If the upscaler still has a live job for it, that job is polled rather than paid for
    twice; a submission whose answer was lost is submitted again (the admin has checked
    the upscaler's dashboard). The original payment time is kept (reports count revenue
    by it).
    """
    job = PurchaseJob.objects.get(pk=job_id)
    keep_remote = bool(job.upscaler_job_id) and job.upscaler_status not in {"", FAILED}
    job = transition(
        job,
        S.PAID,
        code=EventCode.RETRIED,
        only_from={S.NEEDS_ATTENTION},
        actor=actor,
        attempts=0,
        next_attempt_at=None,
        last_error="",
        deadline_at=timezone.now() + timedelta(minutes=smi_settings.JOB_DEADLINE_MINUTES),
        upscaler_job_id=job.upscaler_job_id if keep_remote else "",
        upscaler_status=job.upscaler_status if keep_remote else "",
        upscaler_submitted_at=job.upscaler_submitted_at if keep_remote else None,
    )
    process_later(job.pk)
    return job


def resolve_by_hand(
    job_id: JobId,
    *,
    outcome: str,
    details: str,
    amount_cents: int | None = None,
    actor: Actor = None,
) -> PurchaseJob:
    """Record how an order that needs attention was settled outside the system: delivered
    by hand (→ completed) or refunded elsewhere (→ refunded, with the amount, by default
    what was paid)."""
    if outcome not in (DELIVERED_BY_HAND, REFUNDED_OUTSIDE):
        raise InvalidInput(
            _("Choose what happened: delivered by hand, or refunded outside the system."),
            field="outcome",
        )
    job = PurchaseJob.objects.get(pk=job_id)
    if outcome == DELIVERED_BY_HAND:
        return transition(
            job,
            S.COMPLETED,
            code=EventCode.RESOLVED_DELIVERED,
            data={"details": details},
            actor=actor,
            only_from=[S.NEEDS_ATTENTION],
        )
    amount = job.paid_amount_cents if amount_cents is None else int(amount_cents)
    return transition(
        job,
        S.REFUNDED,
        code=EventCode.RESOLVED_REFUNDED,
        data={"details": details, "amount_cents": amount, "currency": job.currency},
        actor=actor,
        only_from=[S.NEEDS_ATTENTION],
        refund_amount_cents=amount,
        refund_reason=details,
    )
