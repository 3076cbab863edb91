"""Giving money back: refunds the shop makes, and refunds the provider reports.

``refund`` asks the order's payment provider for all or part of what is left. Each request
is a ``RefundRequest`` row written (under the order's lock) before the provider is called,
holding the idempotency key the provider gets, so:

- a double submit of the admin's form (same form token, same amount) finds its row and
  sends nothing;
- a retry after a crash (the provider refunded, we never recorded it) replays the row's
  own key first, and the provider answers with the refund it already made;
- an order never has two requests in flight: a second one waits for the first's answer.

A refund of everything left ends the order (refunded, the download revoked, the customer
emailed). A partial refund leaves the order where it is (a completed order keeps its
download unless the admin asks to revoke it), except a failed one, which has nothing left
to deliver and so ends refunded with the rest kept.

``record_provider_refund`` and ``record_refund_failure`` take what the provider reports
about refunds made elsewhere (its dashboard) or refunds that failed later.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import emails
from ..conf import smi_settings
from ..models import EventCode, JobStatus, PurchaseJob, RefundRequest
from ..models.states import IN_PIPELINE, UNPAID
from ..payments import PaymentProviderError, RefundResult, get_payment_provider
from ..pricing import format_price
from ..workflow import events_of, locked_job, record_event, transition
from .common import Actor, JobId, after_commit, alert_admins, tell_customer_of_delay
from .errors import InvalidInput, NotAllowed, RetryLater

logger = logging.getLogger(__name__)

S = JobStatus
R = RefundRequest.Status
# Refunds are made from these states; paid/processing orders are moved to failed first.
REFUNDABLE = (S.COMPLETED, S.FAILED, S.NEEDS_ATTENTION)
# A request without an answer younger than this may still be in flight: wait for it.
ANSWER_WAIT = timedelta(minutes=2)
# What a form may send as its submission token (see ``submission_key``).
REQUEST_KEY = re.compile(r"[A-Za-z0-9_-]{8,64}")


class RefundNotPossible(NotAllowed):
    """The order has nothing (or less than asked) to refund."""

    code = "refund_not_possible"


class NotPaidYet(Exception):
    """A refund was reported for an order whose payment has not been recorded yet."""


def refund_idempotency_key(job: PurchaseJob, amount_cents: int) -> str:
    """For refunds asked without a form (automatic ones): same order, amount, money
    already back and refusals so far → same key.

    A retry after a crash (the provider refunded, we never recorded it) replays the first
    refund; an admin retry after a recorded refusal gets a fresh key.
    """
    refusals = events_of(job, EventCode.REFUND_REFUSED).count()
    return f"wagtail-smi-refund-{job.pk}-{job.refund_amount_cents}-{amount_cents}-{refusals}"


def submission_key(job: PurchaseJob, request_key: str, amount_cents: int) -> str:
    """For a refund asked through a form: one key per form and amount, so submitting the
    same form twice refunds once, and changing the amount is a new request."""
    return f"wagtail-smi-refund-{job.pk}-{request_key}-{amount_cents}"


def _pk(job_id):
    return getattr(job_id, "pk", job_id)


def amount_range_message(job: PurchaseJob) -> str:
    if job.refundable_cents <= 0:
        return _("Nothing is left to refund on this order.")
    if job.refundable_cents == 1:
        return _("At most %(max)s can be refunded.") % {
            "max": format_price(job.refundable_cents, job.currency)
        }
    return _("The refund must be between %(min)s and %(max)s.") % {
        "min": format_price(1, job.currency),
        "max": format_price(job.refundable_cents, job.currency),
    }


def refund(
    job_id: JobId,
    *,
    reason: str,
    amount_cents: int | None = None,
    actor: Actor = None,
    request_key: str = "",
    revoke_access: bool = False,
) -> PurchaseJob:
    """Refund a paid order through its provider: everything left by default, or
    ``amount_cents`` of it.

    ``request_key`` is the submitting form's token (see ``submission_key``); without one
    the key follows ``refund_idempotency_key``. ``revoke_access`` also revokes a completed
    order's download on a partial refund (a full refund always does).

    Already refunded: nothing is sent. Everything left: paid or processing orders leave
    the pipeline first, then → refunded, download revoked, customer emailed. Partial: the
    amount is recorded and the customer emailed, the order stays as it is (a failed order
    ends refunded). Refused → the error is kept on the order, a failed order needs
    attention, the admins are alerted. Raises ``RefundNotPossible`` for an unpaid order or
    an amount out of range, ``RetryLater`` while another refund of the order awaits its
    answer. Call it outside a transaction: its request row must be saved before the
    provider is asked.
    """
    if request_key and not REQUEST_KEY.fullmatch(request_key):
        raise InvalidInput(_("This form has expired: open the refund page again."))
    job = PurchaseJob.objects.get(pk=_pk(job_id))
    if job.status == S.REFUNDED:
        logger.info("job %s: already refunded; no second refund sent", job.pk)
        return job
    if job.status in UNPAID or not job.is_paid:
        raise RefundNotPossible(_("This order was never paid."))

    job = _answer_unanswered(job)
    if job.status == S.REFUNDED:
        return job
    amount = job.refundable_cents if amount_cents is None else int(amount_cents)
    if amount <= 0 or amount > job.refundable_cents:
        raise RefundNotPossible(amount_range_message(job))
    if request_key:
        key = submission_key(job, request_key, amount)
    else:
        key = refund_idempotency_key(job, amount)
    if RefundRequest.objects.filter(key=key).exists():
        logger.info("job %s: refund %s was already asked for; not sent again", job.pk, key)
        return job

    if amount == job.refundable_cents:
        _leave_pipeline(job.pk, reason, actor)
    request = _open_request(
        job.pk, key=key, amount=amount, reason=reason, actor=actor, revoke_access=revoke_access
    )
    if request is None:  # the same submission, a moment earlier
        return PurchaseJob.objects.get(pk=job.pk)
    return _ask_provider(request)


def _leave_pipeline(job_id, reason: str, actor=None) -> None:
    """Paid and processing orders leave the pipeline before all their money goes back."""
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


def _in_flight_message(request: RefundRequest) -> str:
    return _(
        "A refund of %(amount)s for this order is still waiting for the payment provider's "
        "answer: open the order again in a minute."
    ) % {"amount": format_price(request.amount_cents, request.currency)}


def _answer_unanswered(job: PurchaseJob) -> PurchaseJob:
    """Ask again, with their own keys, for requests left without an answer (the process
    died mid-call): the provider replays what it did, and it is recorded now."""
    for request in job.refund_requests.filter(status=R.REQUESTED).select_related("actor"):
        if request.created_at > timezone.now() - ANSWER_WAIT:
            raise RetryLater(_in_flight_message(request))
        logger.warning("job %s: refund request %s had no answer; asking again", job.pk, request.pk)
        _ask_provider(request)
    return PurchaseJob.objects.get(pk=job.pk)


def _open_request(
    job_id, *, key: str, amount: int, reason: str, actor, revoke_access: bool
) -> RefundRequest | None:
    """Write the request under the order's lock (committed before the provider is asked);
    None when this very key was written meanwhile."""
    try:
        with locked_job(job_id) as current:
            waiting = current.refund_requests.filter(status=R.REQUESTED).first()
            if waiting is not None:
                raise RetryLater(_in_flight_message(waiting))
            if RefundRequest.objects.filter(key=key).exists():
                return None
            if current.status == S.REFUNDED or not 0 < amount <= current.refundable_cents:
                raise RefundNotPossible(amount_range_message(current))
            return RefundRequest.objects.create(
                job=current,
                key=key,
                amount_cents=amount,
                currency=current.currency,
                refunded_before_cents=current.refund_amount_cents,
                reason=reason,
                revoke_access=revoke_access,
                provider=current.payment_provider or smi_settings.PAYMENT_BACKEND,
                actor=actor,
            )
    except IntegrityError:  # the unique key: a concurrent submission wrote it first
        return None


def _ask_provider(request: RefundRequest) -> PurchaseJob:
    job = PurchaseJob.objects.get(pk=request.job_id)
    provider = get_payment_provider(request.provider or job.payment_provider or None)
    try:
        result = provider.refund(
            job,
            amount_cents=request.amount_cents,
            reason=request.reason,
            idempotency_key=request.key,
        )
    except PaymentProviderError as exc:
        return _refused(request, str(exc))
    if not result.went_through:
        return _refused(
            request,
            _("Refund %(id)s ended %(status)s.")
            % {"id": result.refund_id, "status": result.status},
            refund_id=result.refund_id,
        )
    return _record(request, result)


def _claim_answer(request: RefundRequest, status: str, **fields) -> bool:
    """Record the provider's answer on the request, once (under the order's lock)."""
    claimed = RefundRequest.objects.filter(pk=request.pk, status=R.REQUESTED).update(
        status=status, answered_at=timezone.now(), **fields
    )
    return bool(claimed)


def _refused(request: RefundRequest, message: str, refund_id: str = "") -> PurchaseJob:
    with locked_job(request.job_id) as current:
        if not _claim_answer(request, R.REFUSED, error=message, provider_refund_id=refund_id):
            return current
    return _refund_refused(
        request.job_id, message, actor=request.actor, refund_id=refund_id, reopen=False
    )


def _record(request: RefundRequest, result: RefundResult) -> PurchaseJob:
    """Apply a refund the provider made for ``request`` to the order, once."""
    status = R.SUCCEEDED if result.status == "succeeded" else R.PENDING
    with locked_job(request.job_id) as current:
        if not _claim_answer(request, status, provider_refund_id=result.refund_id):
            return current
        if current.status == S.REFUNDED:  # a webhook for this very refund got there first
            return current
        # The provider's webhook for this very refund may have recorded it meanwhile:
        # count it once.
        total = min(
            max(current.refund_amount_cents, request.refunded_before_cents + result.amount_cents),
            current.paid_amount_cents,
        )
        if total >= current.paid_amount_cents or current.status == S.FAILED:
            if current.status in IN_PIPELINE:
                current = transition(
                    current,
                    S.FAILED,
                    code=EventCode.REFUND_STARTED,
                    data={"reason": request.reason},
                    actor=request.actor,
                    only_from=IN_PIPELINE,
                )
            return _refunded(
                current,
                total_cents=total,
                refund_id=result.refund_id,
                reason=request.reason,
                actor=request.actor,
            )
        return _partly_refunded(current, request, result, total)


def _partly_refunded(
    current: PurchaseJob, request: RefundRequest, result: RefundResult, total: int
) -> PurchaseJob:
    """Part of the money is back: recorded on the order, which otherwise carries on."""
    now = timezone.now()
    current.refund_amount_cents = total
    current.refund_id = result.refund_id
    current.refund_reason = request.reason
    fields = ["refund_amount_cents", "refund_id", "refund_reason", "updated_at"]
    revoke = (
        request.revoke_access
        and current.status == S.COMPLETED
        and current.access_revoked_at is None
    )
    if revoke:
        current.access_revoked_at = now
        fields.append("access_revoked_at")
    current.save(update_fields=fields)
    record_event(
        current,
        EventCode.PARTIAL_REFUND,
        {
            "amount_cents": result.amount_cents,
            "total_cents": total,
            "paid_cents": current.paid_amount_cents,
            "currency": current.currency,
            "refund_id": result.refund_id,
            "reason": request.reason,
            "provider": request.provider,
        },
        actor=request.actor,
    )
    if revoke:
        record_event(
            current, EventCode.ACCESS_REVOKED, {"reason": request.reason}, actor=request.actor
        )
    after_commit(lambda: emails.send_refund_notice(current))
    return current


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


def refund_failed_job(job_id: JobId, reason: str) -> None:
    """Refund an order whose processing failed (``reason`` is the failure's code, which
    the refund email explains). Safe to run again: only a failed order is refunded."""
    job = PurchaseJob.objects.filter(pk=job_id).only("status").first()
    if job is None or job.status != S.FAILED:
        return
    try:
        refund(job_id, reason=reason)
    except RetryLater as exc:  # another request awaits its answer; the sweeper asks again
        logger.info("job %s: refund postponed: %s", job_id, exc.message)


def _refund_refused(
    job_id,
    message: str,
    *,
    actor=None,
    refund_id: str = "",
    failed_amount_cents: int | None = None,
    details: dict | None = None,
    reopen: bool = True,
) -> PurchaseJob:
    """Leave the order for an admin: needs_attention where the state machine allows it.

    ``message`` goes to ``last_error`` (what the admin reads on the order); the event gets
    ``details`` (the provider's own words and codes), or the message when there are none.
    ``reopen``: a refund that failed after it was recorded moves a refunded order back to
    needs_attention; a request refused outright (``reopen=False``) leaves it refunded.
    """
    with locked_job(job_id) as current:
        data = {"refund_id": refund_id, **(details or {"error": message})}
        if current.status == S.FAILED or (current.status == S.REFUNDED and reopen):
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
            tell_customer_of_delay(current, emails.DELAY_REFUND)
        else:
            # A completed order stays completed (the customer keeps the file): the error,
            # the event and the alert tell the admin. A partial refund that failed after it
            # was recorded no longer counts.
            current.last_error = message
            fields = ["last_error", "updated_at"]
            if reopen and failed_amount_cents and current.status != S.REFUNDED:
                current.refund_amount_cents = max(
                    current.refund_amount_cents - failed_amount_cents, 0
                )
                fields.append("refund_amount_cents")
            current.save(update_fields=fields)
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
    if refund_id:
        requests = RefundRequest.objects.filter(job_id=_pk(job_id), provider_refund_id=refund_id)
        if requests.filter(status=R.REFUSED).exists():
            amount_cents = 0  # its failure was known when it was made: it never counted
        requests.update(status=R.REFUSED, error=message)
    return _refund_refused(
        job_id, message, refund_id=refund_id, failed_amount_cents=amount_cents, details=details
    )
