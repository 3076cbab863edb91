"""Giving money back: refunds the shop makes, and refunds the provider reports.

``refund`` asks the order's payment provider for the money (idempotent per order, amount
and refusals so far, so a retry after a crash replays instead of repeating).
``record_provider_refund`` and ``record_refund_failure`` take what the provider reports
about refunds made elsewhere (its dashboard) or refunds that failed later.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import emails
from ..models import EventCode, JobStatus, PurchaseJob
from ..models.states import IN_PIPELINE, UNPAID
from ..payments import PaymentProviderError, get_payment_provider
from ..workflow import events_of, locked_job, record_event, transition
from .common import Actor, JobId, after_commit, alert_admins
from .errors import NotAllowed

logger = logging.getLogger(__name__)

S = JobStatus
# Refunds are made from these states; paid/processing orders are moved to failed first.
REFUNDABLE = (S.COMPLETED, S.FAILED, S.NEEDS_ATTENTION)


class RefundNotPossible(NotAllowed):
    """The order has nothing (or less than asked) to refund."""

    code = "refund_not_possible"


class NotPaidYet(Exception):
    """A refund was reported for an order whose payment has not been recorded yet."""


def refund_idempotency_key(job: PurchaseJob, amount_cents: int) -> str:
    """Same order, amount, money already back and refusals so far → same key.

    A retry after a crash (the provider refunded, we never recorded it) replays the first
    refund; an admin retry after a recorded refusal gets a fresh key.
    """
    refusals = events_of(job, EventCode.REFUND_REFUSED).count()
    return f"wagtail-smi-refund-{job.pk}-{job.refund_amount_cents}-{amount_cents}-{refusals}"


def _leave_pipeline(job_id, reason: str, actor=None) -> None:
    """Paid and processing orders leave the pipeline before their money goes back."""
    with locked_job(job_id) as current:
        if current.status in IN_PIPELINE:
            transition(
                current,
                S.FAILED,
                code=EventCode.REFUND_STARTED,
                data={"reason": reason},
                actor=actor,
                only_from=IN_PIPELINE,
            )


def _refunded(
    current: PurchaseJob,
    *,
    total_cents: int,
    refund_id: str,
    reason: str,
    code: str = EventCode.REFUNDED,
    data: dict | None = None,
    actor=None,
) -> PurchaseJob:
    """Move a locked order to refunded (revoking a delivered download), email on commit."""
    fields = {
        "refund_amount_cents": min(total_cents, current.paid_amount_cents),
        "refund_id": refund_id,
        "refund_reason": reason,
        "last_error": "",
    }
    if current.status == S.COMPLETED and current.access_revoked_at is None:
        fields["access_revoked_at"] = timezone.now()
    event_data = {
        "amount_cents": fields["refund_amount_cents"],
        "currency": current.currency,
        "refund_id": refund_id,
        "reason": reason,
        **(data or {}),
    }
    job = transition(
        current, S.REFUNDED, code=code, data=event_data, actor=actor, only_from=REFUNDABLE, **fields
    )
    after_commit(lambda: emails.send_refund_notice(job))
    return job


def refund(
    job_id: JobId, *, reason: str, amount_cents: int | None = None, actor: Actor = None
) -> PurchaseJob:
    """Refund a paid order through its provider: in full by default, or ``amount_cents``.

    Already refunded: nothing is sent. Paid or processing: moved to failed first (the
    pipeline stops). Success → refunded, with the amount, id and reason recorded, a
    delivered download revoked and the customer emailed. Refused (or ended failed) →
    needs_attention with the error where the state machine allows it, and the admins are
    alerted. Raises ``RefundNotPossible`` for an unpaid order or an amount out of range.
    """
    job = PurchaseJob.objects.get(pk=getattr(job_id, "pk", job_id))
    if job.status == S.REFUNDED:
        logger.info("job %s: already refunded; no second refund sent", job.pk)
        return job
    if job.status in UNPAID or not job.is_paid:
        raise RefundNotPossible(_("This order was never paid."))
    amount = job.refundable_cents if amount_cents is None else int(amount_cents)
    if amount <= 0 or amount > job.refundable_cents:
        raise RefundNotPossible(
            _("Refund amount must be between 1 and %(max)s minor units.")
            % {"max": job.refundable_cents}
        )

    _leave_pipeline(job.pk, reason, actor)
    job.refresh_from_db()
    if job.status == S.REFUNDED:
        return job

    provider = get_payment_provider(job.payment_provider or None)
    key = refund_idempotency_key(job, amount)
    refunded_before = job.refund_amount_cents
    try:
        result = provider.refund(job, amount_cents=amount, reason=reason, idempotency_key=key)
    except PaymentProviderError as exc:
        return _refund_refused(job.pk, str(exc), actor=actor)
    if not result.went_through:
        return _refund_refused(
            job.pk,
            _("Refund %(id)s ended %(status)s.")
            % {"id": result.refund_id, "status": result.status},
            actor=actor,
        )

    with locked_job(job.pk) as current:
        if current.status == S.REFUNDED:  # a webhook for this very refund got there first
            return current
        # The provider's webhook for this very refund may have recorded it meanwhile:
        # count it once.
        return _refunded(
            current,
            total_cents=max(current.refund_amount_cents, refunded_before + result.amount_cents),
            refund_id=result.refund_id,
            reason=reason,
            actor=actor,
        )


def refund_failed_job(job_id: JobId, reason: str) -> None:
    """Refund an order whose processing failed (``reason`` is the failure's code, which
    the refund email explains). Safe to run again: only a failed order is refunded."""
    job = PurchaseJob.objects.filter(pk=job_id).only("status").first()
    if job is None or job.status != S.FAILED:
        return
    refund(job_id, reason=reason)


def _refund_refused(
    job_id,
    message: str,
    *,
    actor=None,
    refund_id: str = "",
    failed_amount_cents: int | None = None,
    details: dict | None = None,
) -> PurchaseJob:
    """Leave the order for an admin: needs_attention where the state machine allows it.

    ``message`` goes to ``last_error`` (what the admin reads on the order); the event gets
    ``details`` (the provider's own words and codes), or the message when there are none.
    """
    with locked_job(job_id) as current:
        data = {"refund_id": refund_id, **(details or {"error": message})}
        if current.status in (S.FAILED, S.REFUNDED):
            # A failed order whose refund was refused, or a refund that later failed: the
            # customer's money is still with us, so an admin must act (and may refund again
            # from the admin, which is why a failed refund no longer counts).
            extra = {}
            if current.status == S.REFUNDED:
                # Only the failed refund is taken back; earlier successful ones still count.
                back = (
                    current.refund_amount_cents
                    if failed_amount_cents is None
                    else failed_amount_cents
                )
                extra["refund_amount_cents"] = max(current.refund_amount_cents - back, 0)
                if not refund_id or current.refund_id == refund_id:
                    extra["refund_id"] = ""
            current = transition(
                current,
                S.NEEDS_ATTENTION,
                code=EventCode.REFUND_REFUSED,
                data=data,
                actor=actor,
                only_from=[S.FAILED, S.REFUNDED],
                last_error=message,
                **extra,
            )
        else:
            # A completed order stays completed (the customer keeps the file): the error,
            # the event and the alert tell the admin.
            current.last_error = message
            current.save(update_fields=["last_error", "updated_at"])
            record_event(current, EventCode.REFUND_REFUSED, data, actor=actor)
        job = current
        alert_admins(job, _("Refund failed: %(error)s") % {"error": message})
    logger.warning("job %s: refund refused: %s", job.pk, message)
    return job


def record_provider_refund(
    job_id: JobId,
    *,
    provider: str,
    reference: str,
    refunded_total_cents: int,
    refund_id: str,
    full: bool,
) -> PurchaseJob:
    """A refund made outside ``refund`` (e.g. in the Stripe dashboard).

    Full refunds end the order (a delivered download is revoked); partial refunds are
    recorded on the order and in its log, nothing else changes. Raises ``NotPaidYet`` when
    the payment itself has not been recorded yet, so the provider redelivers later.
    """
    reason = _("Refunded in %(provider)s") % {"provider": provider.capitalize()}
    with transaction.atomic(), locked_job(job_id) as current:
        if current.status in UNPAID:
            raise NotPaidYet(f"job {current.pk} is {current.status}")
        if current.status == S.REFUNDED or not full:
            if refunded_total_cents > current.refund_amount_cents:
                current.refund_amount_cents = min(refunded_total_cents, current.paid_amount_cents)
                current.save(update_fields=["refund_amount_cents", "updated_at"])
                record_event(
                    current,
                    EventCode.PARTIAL_REFUND,
                    {
                        "provider": provider,
                        "reference": reference,
                        "total_cents": refunded_total_cents,
                        "currency": current.currency,
                    },
                )
            return current
        if current.status in IN_PIPELINE:
            current = transition(
                current,
                S.FAILED,
                code=EventCode.REFUND_STARTED,
                data={"provider": provider, "reference": reference},
                only_from=IN_PIPELINE,
            )
        return _refunded(
            current,
            total_cents=refunded_total_cents,
            refund_id=refund_id,
            reason=reason,
            data={"provider": provider, "reference": reference},
        )


def record_refund_failure(
    job_id: JobId,
    *,
    refund_id: str,
    message: str,
    amount_cents: int | None = None,
    details: dict | None = None,
) -> PurchaseJob:
    """A refund that the provider first accepted ended failed or canceled."""
    return _refund_refused(
        job_id, message, refund_id=refund_id, failed_amount_cents=amount_cents, details=details
    )
