"""What a payment event does to a job. Every provider (Stripe's webhooks, the dummy
checkout page, the admin, processing's automatic refunds) goes through these functions,
so a payment is applied the same way whoever reports it.

Status changes go through ``workflow.transition``; emails and enqueued tasks are
registered with ``transaction.on_commit`` so a rolled-back change never sends anything.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import emails, tasks
from ..models import JobEvent, JobStatus, PurchaseJob
from ..pricing import format_price
from ..workflow import record_note, transition
from .base import PaymentProviderError

logger = logging.getLogger(__name__)

S = JobStatus
UNPAID = (S.AWAITING_PAYMENT, S.ABANDONED)
# Refunds are made from these states; paid/processing jobs are moved to failed first.
REFUNDABLE = (S.COMPLETED, S.FAILED, S.NEEDS_ATTENTION)
# Notes starting with this mark a refund the provider refused: each one gives the next
# attempt a fresh idempotency key (a replayed key would replay the refusal).
REFUND_REFUSED_NOTE = "Refund refused"


class RefundNotPossible(ValueError):
    """The job has nothing (or less than asked) to refund."""


class NotPaidYet(Exception):
    """A refund was reported for a job whose payment has not been recorded yet."""


def _lock(job_id) -> PurchaseJob:
    return PurchaseJob.objects.select_for_update().get(pk=getattr(job_id, "pk", job_id))


def mark_paid(
    job_id, *, email: str = "", payment_intent_id: str = "", discount_cents: int = 0, reason: str
):
    """awaiting_payment/abandoned → paid, backfill the email, enqueue processing on commit.

    ``discount_cents``: a promotion code the provider applied (the customer paid the quote
    less this); it is stored and noted in the job's log, so refunds stop at what was paid.
    Returns None, changing nothing, when the job is already paid (or later): a replayed
    payment never enqueues twice nor sends a second download email.
    """
    with transaction.atomic():
        current = _lock(job_id)
        if current.status not in UNPAID:
            logger.info("job %s: payment reported again while %s; ignored", current.pk, current.status)
            return None
        if current.status == S.ABANDONED:
            logger.warning("job %s: payment arrived after the checkout was abandoned; honoured", current.pk)
        fields = {"last_error": ""}
        if email and not current.email:
            fields["email"] = email
        if payment_intent_id and not current.payment_intent_id:
            fields["payment_intent_id"] = payment_intent_id
        discount = min(max(int(discount_cents or 0), 0), current.amount_cents)
        if discount:
            fields["discount_cents"] = discount
        job = transition(current, S.PAID, reason=reason, only_from=UNPAID, **fields)
        if discount:
            money = {
                "off": format_price(discount, job.currency),
                "quote": format_price(job.amount_cents, job.currency),
                "paid": format_price(job.paid_amount_cents, job.currency),
            }
            record_note(job, "Promotion code: {off} off {quote}, paid {paid}".format(**money))
        transaction.on_commit(lambda: tasks.enqueue_processing(job.pk), robust=True)
    return job


def refuse_payment(job_id, *, reason: str, detail: str):
    """The provider reported a payment on the job's own checkout that does not match the
    order (amount, currency, kind of checkout). It does not count: the job is left as it is,
    and an admin is told, since money may have been taken that has to be sorted out."""
    with transaction.atomic():
        job = PurchaseJob.objects.get(pk=getattr(job_id, "pk", job_id))
        record_note(job, f"{reason} not applied: {detail}")
        message = _(
            "A payment reported for this order's own checkout does not match the order "
            "(%(detail)s), so it was not applied. Check the payment with the provider and "
            "refund it if money was taken."
        ) % {"detail": detail}
        transaction.on_commit(lambda: emails.send_admin_alert(job, message), robust=True)
    logger.error("job %s: %s not applied: %s", job.pk, reason, detail)
    return job


def mark_payment_failed(job_id, *, reason: str, message: str = "", confirmed_email: str = ""):
    """A payment attempt failed; the job stays unpaid so the customer can retry.

    The customer is emailed at most once per order (``payment_failed_emailed_at``, stamped
    under the row lock), and only at an address the payment provider confirmed
    (``confirmed_email``, e.g. the one the buyer gave Stripe Checkout): an address typed into
    our own forms may be anyone's, and every declined attempt would mail it again. An order
    without an email takes the confirmed one.

    Returns None when the job was paid meanwhile (a late failure for an earlier attempt).
    """
    with transaction.atomic():
        current = _lock(job_id)
        if current.status not in UNPAID:
            logger.info("job %s: payment failure reported while %s; ignored", current.pk, current.status)
            return None
        current.last_error = message or _("The payment failed.")
        pending = current.payment_intent_id
        # Nothing is on its way any more: cleanup may abandon the checkout in due course.
        current.payment_intent_id = ""
        fields = ["last_error", "payment_intent_id", "updated_at"]
        if confirmed_email and not current.email:
            current.email = confirmed_email
            fields.append("email")
        notify = (
            bool(confirmed_email)
            and current.email.casefold() == confirmed_email.casefold()
            and current.payment_failed_emailed_at is None
        )
        if notify:
            current.payment_failed_emailed_at = timezone.now()
            fields.append("payment_failed_emailed_at")
        current.save(update_fields=fields)
        record_note(current, f"{reason} ({pending})" if pending else reason)
        if notify:
            transaction.on_commit(lambda: emails.send_payment_failed(current), robust=True)
        else:
            logger.info(
                "job %s: payment failure not emailed (%s)", current.pk,
                "already emailed" if current.payment_failed_emailed_at else "no address confirmed by the provider",
            )
    return current


def abandon_checkout(job_id, *, reason: str):
    """awaiting_payment → abandoned; a job paid meanwhile is left alone (returns None)."""
    with transaction.atomic():
        current = _lock(job_id)
        if current.status != S.AWAITING_PAYMENT:
            logger.info("job %s: checkout ended while %s; ignored (%s)", current.pk, current.status, reason)
            return None
        return transition(current, S.ABANDONED, reason=reason, only_from=[S.AWAITING_PAYMENT])


def _move_to_failed_first(job_id, reason: str, actor=None) -> None:
    """Paid and processing jobs leave the pipeline before their money goes back."""
    with transaction.atomic():
        current = _lock(job_id)
        if current.status in (S.PAID, S.PROCESSING):
            transition(
                current, S.FAILED, reason=reason, actor=actor, only_from=(S.PAID, S.PROCESSING)
            )


def _refunded(current: PurchaseJob, *, total_cents: int, refund_id: str, reason: str, actor=None):
    """Move a locked job to refunded (revoking a delivered download) and email on commit."""
    fields = {
        "refund_amount_cents": min(total_cents, current.paid_amount_cents),
        "refund_id": refund_id,
        "refund_reason": reason,
        "last_error": "",
    }
    if current.status == S.COMPLETED and current.access_revoked_at is None:
        fields["access_revoked_at"] = timezone.now()
    job = transition(current, S.REFUNDED, reason=reason, actor=actor, only_from=REFUNDABLE, **fields)
    transaction.on_commit(lambda: emails.send_refund_notice(job), robust=True)
    return job


def refund_idempotency_key(job: PurchaseJob, amount_cents: int) -> str:
    """Same job, amount, money already back and refusals so far → same key.

    A retry after a crash (the provider refunded, we never recorded it) replays the first
    refund; an admin retry after a recorded refusal gets a fresh key.
    """
    refusals = job.events.filter(
        kind=JobEvent.Kind.NOTE, reason__startswith=REFUND_REFUSED_NOTE
    ).count()
    return f"wagtail-smi-refund-{job.pk}-{job.refund_amount_cents}-{amount_cents}-{refusals}"


def refund_job(job_id, *, reason: str, amount_cents: int | None = None, actor=None):
    """Refund a paid job through its provider: full by default, or ``amount_cents``.

    Already refunded: nothing is sent, the job is returned as it is. Paid or processing:
    moved to failed first (the pipeline stops). Success → refunded, with the amount, id
    and reason recorded, a delivered download revoked and the customer emailed. Refused
    (or ended failed) → needs_attention with the error, and the admins are alerted.
    """
    from . import get_payment_provider

    job = PurchaseJob.objects.get(pk=getattr(job_id, "pk", job_id))
    if job.status == S.REFUNDED:
        logger.info("job %s: already refunded; no second refund sent", job.pk)
        return job
    if job.status in UNPAID or not job.is_paid:
        raise RefundNotPossible(_("This order was never paid."))
    amount = job.refundable_cents if amount_cents is None else int(amount_cents)
    if amount <= 0 or amount > job.refundable_cents:
        raise RefundNotPossible(
            _("Refund amount must be between 1 and %(max)s minor units.") % {"max": job.refundable_cents}
        )

    _move_to_failed_first(job.pk, _("Refund requested: %(reason)s") % {"reason": reason}, actor)
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
            _("Refund %(id)s ended %(status)s.") % {"id": result.refund_id, "status": result.status},
            actor=actor,
        )

    with transaction.atomic():
        current = _lock(job.pk)
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


def _refund_refused(
    job_id, message: str, *, actor=None, refund_id: str = "", failed_amount_cents: int | None = None
):
    """Leave the job for an admin: needs_attention where the state machine allows it."""
    with transaction.atomic():
        current = _lock(job_id)
        if current.status in (S.FAILED, S.REFUNDED):
            # A failed order whose refund was refused, or a refund that later failed:
            # the customer's money is still with us, so an admin must act (and may refund
            # again from the admin, which is why a failed refund no longer counts).
            extra = {}
            if current.status == S.REFUNDED:
                # Only the failed refund is taken back; earlier successful ones still count.
                back = current.refund_amount_cents if failed_amount_cents is None else failed_amount_cents
                extra["refund_amount_cents"] = max(current.refund_amount_cents - back, 0)
                if not refund_id or current.refund_id == refund_id:
                    extra["refund_id"] = ""
            current = transition(
                current,
                S.NEEDS_ATTENTION,
                reason=_("The refund could not be made."),
                actor=actor,
                only_from=[S.FAILED, S.REFUNDED],
                last_error=message,
                **extra,
            )
        else:
            # A completed order stays completed (the customer keeps the file): the error,
            # the note and the alert tell the admin.
            current.last_error = message
            current.save(update_fields=["last_error", "updated_at"])
        record_note(current, f"{REFUND_REFUSED_NOTE}: {message}", actor=actor)
        job = current
        transaction.on_commit(
            lambda: emails.send_admin_alert(job, _("Refund failed: %(error)s") % {"error": message}),
            robust=True,
        )
    logger.warning("job %s: refund refused: %s", job.pk, message)
    return job


def record_provider_refund(job_id, *, refunded_total_cents: int, refund_id: str, full: bool, reason: str):
    """A refund made outside ``refund_job`` (e.g. in the Stripe dashboard).

    Full refunds end the order (a delivered download is revoked); partial refunds are
    recorded on the job and in its log, nothing else changes. Raises ``NotPaidYet`` when
    the payment itself has not been recorded yet, so the provider redelivers later.
    """
    with transaction.atomic():
        current = _lock(job_id)
        if current.status in UNPAID:
            raise NotPaidYet(f"job {current.pk} is {current.status}")
        if current.status == S.REFUNDED or not full:
            if refunded_total_cents > current.refund_amount_cents:
                current.refund_amount_cents = min(refunded_total_cents, current.paid_amount_cents)
                current.save(update_fields=["refund_amount_cents", "updated_at"])
                record_note(current, f"{reason} ({refunded_total_cents} {current.currency})")
            return current
        if current.status in (S.PAID, S.PROCESSING):
            current = transition(current, S.FAILED, reason=reason, only_from=(S.PAID, S.PROCESSING))
        return _refunded(current, total_cents=refunded_total_cents, refund_id=refund_id, reason=reason)


def record_refund_failure(job_id, *, refund_id: str, message: str, amount_cents: int | None = None):
    """A refund that the provider first accepted ended failed or canceled."""
    return _refund_refused(
        job_id, message, refund_id=refund_id, failed_amount_cents=amount_cents
    )


__all__ = [
    "NotPaidYet",
    "PaymentProviderError",
    "RefundNotPossible",
    "abandon_checkout",
    "mark_paid",
    "mark_payment_failed",
    "record_provider_refund",
    "record_refund_failure",
    "refund_idempotency_key",
    "refuse_payment",
    "refund_job",
]
