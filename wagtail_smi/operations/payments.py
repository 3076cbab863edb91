"""What a payment does to an order, whoever reports it (Stripe's webhook, the dummy
checkout page, the admin).

``apply_payment_event`` takes a provider's event, already verified and translated into a
``PaymentEvent`` by the provider, and finds the order it belongs to by the ids this shop
stored (never by what the event says about itself), checks that a payment is what the
order costs, and applies it once.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import emails
from ..models import EventCode, JobStatus, ProcessedWebhookEvent, PurchaseJob
from ..models.states import UNPAID
from ..payments import PaymentEvent, PaymentProvider
from ..workflow import locked_job, record_event, transition, update_job
from .common import JobId, after_commit, alert_admins, email_customer, process_later
from .errors import RetryLater
from .refunds import NotPaidYet, record_provider_refund, record_refund_failure

logger = logging.getLogger(__name__)

S = JobStatus


def mark_paid(
    job_id: JobId,
    *,
    provider: str,
    reference: str = "",
    email: str = "",
    payment_intent_id: str = "",
    discount_cents: int = 0,
) -> PurchaseJob | None:
    """awaiting_payment/abandoned → paid, backfill the email, start processing and send
    the receipt on commit.

    ``discount_cents``: a promotion code the provider applied (the customer paid the quote
    less this); it is stored and logged, so refunds stop at what was paid. Returns None,
    changing nothing, when the order is already paid (or later): a replayed payment never
    starts processing twice nor sends a second download email.
    """
    with locked_job(job_id) as current:
        if current.status not in UNPAID:
            logger.info(
                "job %s: payment reported again while %s; ignored", current.pk, current.status
            )
            return None
        if current.status == S.ABANDONED:
            logger.warning(
                "job %s: payment arrived after the checkout was abandoned; honoured", current.pk
            )
        fields = {"last_error": ""}
        if email and not current.email:
            fields["email"] = email
        if payment_intent_id and not current.payment_intent_id:
            fields["payment_intent_id"] = payment_intent_id
        discount = min(max(int(discount_cents or 0), 0), current.amount_cents)
        if discount:
            fields["discount_cents"] = discount
        job = transition(
            current,
            S.PAID,
            code=EventCode.PAYMENT_RECEIVED,
            data={"provider": provider, "reference": reference},
            only_from=UNPAID,
            **fields,
        )
        if discount:
            record_event(
                job,
                EventCode.DISCOUNT_APPLIED,
                {
                    "discount_cents": discount,
                    "amount_cents": job.amount_cents,
                    "paid_cents": job.paid_amount_cents,
                    "currency": job.currency,
                },
            )
        process_later(job.pk)
        email_customer(job.pk, emails.send_receipt)
    return job


def refuse_payment(job_id: JobId, *, provider: str, reference: str, detail: str) -> PurchaseJob:
    """A payment on the order's own checkout that does not match the order (amount,
    currency, kind of checkout). It does not count: the order is left as it is, and an
    admin is told, since money may have been taken that has to be sorted out."""
    with transaction.atomic():
        job = PurchaseJob.objects.get(pk=getattr(job_id, "pk", job_id))
        record_event(
            job,
            EventCode.PAYMENT_NOT_APPLIED,
            {"provider": provider, "reference": reference, "detail": detail},
        )
        alert_admins(
            job,
            _(
                "A payment reported for this order's own checkout does not match the order "
                "(%(detail)s), so it was not applied. Check the payment with the provider and "
                "refund it if money was taken."
            )
            % {"detail": detail},
        )
    logger.error("job %s: %s payment %s not applied: %s", job.pk, provider, reference, detail)
    return job


def mark_payment_failed(
    job_id: JobId,
    *,
    provider: str,
    reference: str = "",
    message: str = "",
    confirmed_email: str = "",
) -> PurchaseJob | None:
    """A payment attempt failed; the order stays unpaid so the customer can try again.

    The customer is emailed at most once per order (``payment_failed_emailed_at``, stamped
    under the row lock), and only at an address the payment provider confirmed
    (``confirmed_email``): an address typed into our own forms may be anyone's, and every
    declined attempt would mail it again. An order without an email takes the confirmed one.

    Returns None when the order was paid meanwhile (a late failure for an earlier attempt).
    """
    with locked_job(job_id) as current:
        if current.status not in UNPAID:
            logger.info(
                "job %s: payment failure reported while %s; ignored", current.pk, current.status
            )
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
        record_event(
            current,
            EventCode.PAYMENT_FAILED,
            {"provider": provider, "reference": reference, "payment": pending},
        )
        if notify:
            after_commit(lambda: emails.send_payment_failed(current))
        else:
            logger.info(
                "job %s: payment failure not emailed (%s)",
                current.pk,
                "already emailed"
                if current.payment_failed_emailed_at
                else "no address confirmed by the provider",
            )
    return current


def abandon_checkout(
    job_id: JobId, *, provider: str = "", reference: str = "", hours: int | None = None
) -> PurchaseJob | None:
    """awaiting_payment → abandoned; an order paid meanwhile is left alone (returns None)."""
    with locked_job(job_id) as current:
        if current.status != S.AWAITING_PAYMENT:
            logger.info("job %s: checkout ended while %s; ignored", current.pk, current.status)
            return None
        data = {"provider": provider, "reference": reference} if provider else {"hours": hours}
        return transition(
            current,
            S.ABANDONED,
            code=EventCode.CHECKOUT_ABANDONED,
            data=data,
            only_from=[S.AWAITING_PAYMENT],
        )


# Provider events ---------------------------------------------------------------------------
#
# Every signed event of the provider account reaches the webhook: Payment Links (whose payer
# chooses ``client_reference_id``), other integrations, the dashboard. So an event is matched
# to an order by the ids this shop stored: a checkout by the order's ``checkout_session_id``,
# a charge or refund by its ``payment_intent_id``. What the event says about itself (its
# metadata) is only a claim: it can ask for a redelivery while the order's own id is not
# stored yet, never change the order.

OWN, WAIT, FOREIGN = "own", "wait", "foreign"

# Checkout stores the session id as soon as the provider answers (well within this, network
# retries included). A session event naming a younger order that has no id yet is asked to
# come back; after that, a session the order does not know is a stranger's.
SESSION_ID_GRACE = timedelta(minutes=15)


def _claimed_job(event: PaymentEvent) -> PurchaseJob | None:
    if not event.claimed_job_id:
        return None
    return PurchaseJob.objects.filter(pk=event.claimed_job_id).first()


def match_event(event: PaymentEvent) -> tuple[str, PurchaseJob | None]:
    """``(OWN, job)`` for the order whose stored id the event carries; ``(WAIT, job)`` while
    a named, unpaid order has not stored that id yet (and may still); ``(FOREIGN, named or
    None)`` otherwise.

    A checkout is matched by the order's session id: the id is stored as soon as the
    provider answers, so a named order only waits while it is young. A charge or refund is
    matched by the order's payment intent: a refund can reach us before the payment it
    refunds, and is sent again later.
    """
    if event.is_checkout:
        field, value = "checkout_session_id", event.session_id
    else:
        field, value = "payment_intent_id", event.payment_intent_id
    job = PurchaseJob.objects.filter(**{field: value}).first() if value else None
    if job is not None:
        return OWN, job
    named = _claimed_job(event)
    may_wait = (
        named is not None
        and not getattr(named, field)
        and named.status in UNPAID
        and (not event.is_checkout or timezone.now() - named.created_at < SESSION_ID_GRACE)
    )
    return (WAIT if may_wait else FOREIGN), named


def checkout_mismatches(job: PurchaseJob, event: PaymentEvent) -> list[str]:
    """Why this checkout cannot pay for ``job`` (nothing when it can).

    A one-off payment in the order's currency whose subtotal is the quoted amount. A
    promotion code may lower the total (it is recorded); tax or shipping may raise it;
    nothing else may.
    """
    problems = []
    if event.mode != "payment":
        problems.append(f"mode {event.mode!r} instead of 'payment'")
    if event.currency.lower() != job.currency.lower():
        problems.append(f"currency {event.currency.lower()!r} instead of {job.currency.lower()!r}")
    subtotal = event.amount_subtotal
    if subtotal != job.amount_cents:
        problems.append(f"amount_subtotal {subtotal!r} instead of {job.amount_cents}")
        return problems
    discount, total = event.discount_cents, event.amount_total
    if not 0 <= discount <= subtotal:
        problems.append(f"discount {discount} outside 0..{subtotal}")
    elif total is None or total < subtotal - discount:
        problems.append(
            f"amount_total {total!r} below the subtotal less the discount ({subtotal - discount})"
        )
    return problems


def _paid(job, event: PaymentEvent) -> str:
    if not event.paid:
        logger.warning(
            "job %s: %s not paid (%s); ignored", job.pk, event.provider_type, event.payment_status
        )
        return "ignored"
    done = mark_paid(
        job.pk,
        provider=event.provider,
        reference=event.session_id,
        email=event.email,
        payment_intent_id=event.payment_intent_id,
        discount_cents=event.discount_cents,
    )
    return "paid" if done else "already_paid"


def _completed(job, event: PaymentEvent) -> str:
    if event.paid:
        return _paid(job, event)
    # A delayed payment method: wait for the payment to succeed or fail.
    logger.info("job %s: checkout completed, payment pending (%s)", job.pk, event.payment_status)
    fields = {}
    if event.email and not job.email:
        fields["email"] = event.email
    if event.payment_intent_id and not job.payment_intent_id:
        fields["payment_intent_id"] = event.payment_intent_id
    if fields:
        update_job(job, **fields)
    return "waiting_for_payment"


def _failed(job, event: PaymentEvent) -> str:
    done = mark_payment_failed(
        job.pk,
        provider=event.provider,
        reference=event.session_id,
        message=_("The payment did not go through."),
        confirmed_email=event.confirmed_email,
    )
    return "payment_failed" if done else "ignored"


def _expired(job, event: PaymentEvent) -> str:
    done = abandon_checkout(job.pk, provider=event.provider, reference=event.session_id)
    return "abandoned" if done else "ignored"


def _refunded(job, event: PaymentEvent, provider: PaymentProvider) -> str:
    refund_id = event.refund_id or provider.latest_refund_id(event) or job.refund_id
    record_provider_refund(
        job.pk,
        provider=event.provider,
        reference=event.object_id,
        refunded_total_cents=event.refunded_total_cents,
        refund_id=refund_id,
        full=event.full_refund or event.refunded_total_cents >= job.paid_amount_cents,
    )
    return "refund_recorded"


def _refund_failed(job, event: PaymentEvent) -> str:
    if event.refund_status not in ("failed", "canceled"):
        # Succeeded refunds are recorded from the charge's event, which carries the total.
        return "ignored"
    record_refund_failure(
        job.pk,
        refund_id=event.refund_id,
        amount_cents=event.refund_amount_cents,
        message=_("%(provider)s refund %(id)s %(status)s: %(reason)s")
        % {
            "provider": event.provider.capitalize(),
            "id": event.refund_id,
            "status": event.refund_status,
            "reason": event.failure_reason or event.refund_status,
        },
        details={
            "provider": event.provider,
            "status": event.refund_status,
            "failure_reason": event.failure_reason,
        },
    )
    return "refund_failed"


HANDLERS = {
    PaymentEvent.CHECKOUT_COMPLETED: _completed,
    PaymentEvent.PAYMENT_SUCCEEDED: _paid,
    PaymentEvent.PAYMENT_FAILED: _failed,
    PaymentEvent.CHECKOUT_EXPIRED: _expired,
    PaymentEvent.REFUND_UPDATED: _refund_failed,
}
PAYING = {PaymentEvent.CHECKOUT_COMPLETED, PaymentEvent.PAYMENT_SUCCEEDED}


def apply_payment_event(event: PaymentEvent, provider: PaymentProvider) -> str:
    """Apply a verified provider event once, to the order it belongs to; return what
    happened (``paid``, ``duplicate``, ``ignored``...). Raises ``RetryLater`` when the event
    came before the order was ready for it (the provider sends it again).

    The event's id is stored in the transaction that applies it, so a redelivery or a
    concurrent duplicate changes nothing.
    """
    if not event.kind or not event.event_id:
        return "ignored"
    how, job = match_event(event)
    if how == WAIT:
        logger.warning(
            "%s %s %s (%s) names order %s, which has not stored its %s id yet; asking for "
            "redelivery",
            event.provider,
            event.provider_type,
            event.event_id,
            event.object_id,
            job.pk,
            event.provider,
        )
        raise RetryLater(
            _("This event arrived before the order it refers to was ready; send it again later.")
        )
    if how == FOREIGN:
        if job is None:
            logger.info(
                "%s %s %s matches no order; ignored",
                event.provider,
                event.provider_type,
                event.event_id,
            )
        else:
            logger.warning(
                "%s %s %s (%s) names order %s but is not the checkout or payment this shop "
                "created for it; ignored",
                event.provider,
                event.provider_type,
                event.event_id,
                event.object_id,
                job.pk,
            )
        return "ignored"
    problems = checkout_mismatches(job, event) if event.kind in PAYING else []
    try:
        with transaction.atomic():
            try:
                with transaction.atomic():  # a savepoint: the losing duplicate leaves no trace
                    ProcessedWebhookEvent.objects.create(
                        provider=event.provider,
                        event_id=event.event_id,
                        event_type=event.provider_type,
                        job_id=job.pk,
                    )
            except IntegrityError:
                logger.info(
                    "%s event %s (%s) already applied",
                    event.provider,
                    event.event_id,
                    event.provider_type,
                )
                return "duplicate"
            if problems:
                refuse_payment(
                    job.pk,
                    provider=event.provider,
                    reference=event.object_id,
                    detail="; ".join(problems),
                )
                outcome = "mismatch"
            elif event.kind == PaymentEvent.REFUNDED:
                outcome = _refunded(job, event, provider)
            else:
                outcome = HANDLERS[event.kind](job, event)
    except NotPaidYet as exc:
        logger.warning(
            "%s %s for job %s before its payment; asking for redelivery",
            event.provider,
            event.provider_type,
            job.pk,
        )
        raise RetryLater(
            _("This event arrived before the payment it refers to; send it again later.")
        ) from exc
    logger.info(
        "%s %s %s for job %s: %s",
        event.provider,
        event.provider_type,
        event.event_id,
        job.pk,
        outcome,
    )
    return outcome
