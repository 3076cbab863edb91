"""Stripe: Checkout Sessions, refunds and signature-checked, idempotent webhooks.

The only module that talks to Stripe, through the official library's ``StripeClient``
(API version pinned, ``STRIPE["API_BASE"]`` honoured so tests use a local server).
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import stripe as stripe_lib
from django.db import IntegrityError, transaction
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.translation import gettext as _

from ..conf import smi_settings
from ..models import ProcessedWebhookEvent, PurchaseJob
from ..utils import absolute_url
from ..workflow import update_job
from . import actions
from .base import (
    CheckoutSession,
    PaymentProvider,
    PaymentProviderError,
    RefundResult,
    line_item_description,
    line_item_name,
)

logger = logging.getLogger(__name__)

# Stripe accepts expires_at between 30 minutes and 24 hours from now.
MIN_EXPIRY = timedelta(minutes=30, seconds=60)
MAX_EXPIRY = timedelta(hours=24)
SIGNATURE_TOLERANCE = 300


def _stripe_settings() -> dict[str, Any]:
    return smi_settings.STRIPE


def site_is_public() -> bool:
    """Stripe fetches product images itself: only offer them from a public https site."""
    parts = urlsplit(smi_settings.PUBLIC_BASE_URL)
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or not host or host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        return ipaddress.ip_address(host).is_global
    except ValueError:
        return "." in host and not host.endswith((".local", ".internal", ".test"))


def product_image_url(job) -> str | None:
    if not site_is_public() or job.image is None:
        return None
    try:
        url = job.image.get_rendition("max-800x800").url
    except Exception:  # a missing file must not block a sale
        logger.warning("job %s: no product image rendition", job.pk, exc_info=True)
        return None
    return url if url.startswith("https://") else absolute_url(url)


def checkout_expires_at(job) -> int:
    """From the job's creation (so a retried create sends the same parameters), kept
    inside the window Stripe accepts."""
    minutes = int(_stripe_settings().get("CHECKOUT_EXPIRES_MINUTES") or 60)
    now = timezone.now()
    wanted = (job.created_at or now) + timedelta(minutes=minutes)
    return int(min(max(wanted, now + MIN_EXPIRY), now + MAX_EXPIRY).timestamp())


def consent_text() -> str:
    return _(
        "I ask for the high-resolution image to be delivered immediately and acknowledge "
        "that I lose my right of withdrawal once the download is made available."
    )


class StripeProvider(PaymentProvider):
    name = "stripe"

    def __init__(self, client: stripe_lib.StripeClient | None = None):
        self._client = client

    @property
    def client(self) -> stripe_lib.StripeClient:
        if self._client is None:
            conf = _stripe_settings()
            if not conf.get("SECRET_KEY"):
                raise PaymentProviderError(_("Stripe is not configured (no secret key)."))
            base = conf.get("API_BASE")
            self._client = stripe_lib.StripeClient(
                conf["SECRET_KEY"],
                stripe_version=conf.get("API_VERSION") or stripe_lib.api_version,
                base_addresses={"api": base.rstrip("/")} if base else None,
                max_network_retries=int(conf.get("MAX_NETWORK_RETRIES") or 0),
            )
        return self._client

    # Checkout ---------------------------------------------------------------------

    def checkout_params(self, job, *, success_url: str, cancel_url: str) -> dict[str, Any]:
        conf = _stripe_settings()
        job_meta = {"job_id": str(job.pk)}
        product: dict[str, Any] = {
            "name": line_item_name(job),
            "description": line_item_description(job),
        }
        image = product_image_url(job)
        if image:
            product["images"] = [image]
        params: dict[str, Any] = {
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": job.currency.lower(),
                        "unit_amount": int(job.amount_cents),
                        "product_data": product,
                    },
                }
            ],
            "client_reference_id": str(job.pk),
            "metadata": job_meta,
            "payment_intent_data": {"metadata": job_meta},
            "success_url": success_url,
            "cancel_url": cancel_url,
            "expires_at": checkout_expires_at(job),
        }
        if job.email:
            params["customer_email"] = job.email
        if conf.get("AUTOMATIC_TAX"):
            params["automatic_tax"] = {"enabled": True}
        if conf.get("ALLOW_PROMOTION_CODES"):
            params["allow_promotion_codes"] = True
        if conf.get("INVOICE_CREATION"):
            params["invoice_creation"] = {"enabled": True}
        consent: dict[str, str] = {}
        if conf.get("REQUIRE_TERMS_CONSENT"):
            # Needs a terms of service URL in the Stripe dashboard's public details.
            consent["terms_of_service"] = "required"
            params["custom_text"] = {"terms_of_service_acceptance": {"message": consent_text()}}
        if conf.get("ABANDONED_CHECKOUT_RECOVERY"):
            # Recovery emails need the buyer's consent to promotional email.
            consent["promotions"] = "auto"
            params["after_expiration"] = {"recovery": {"enabled": True}}
        if consent:
            params["consent_collection"] = consent
        return params

    def create_checkout(self, job, *, success_url: str, cancel_url: str) -> CheckoutSession:
        params = self.checkout_params(job, success_url=success_url, cancel_url=cancel_url)
        try:
            session = self.client.v1.checkout.sessions.create(
                params=params, options={"idempotency_key": f"wagtail-smi-checkout-{job.pk}"}
            )
        except stripe_lib.StripeError as exc:
            logger.error("job %s: Stripe refused the checkout: %s", job.pk, exc.user_message or exc)
            raise PaymentProviderError(exc.user_message or _("The payment service is unavailable."))
        return CheckoutSession(url=session.url, session_id=session.id)

    # Refunds ----------------------------------------------------------------------

    def _payment_intent_id(self, job) -> str:
        if job.payment_intent_id:
            return job.payment_intent_id
        if job.checkout_session_id:
            session = self.client.v1.checkout.sessions.retrieve(job.checkout_session_id)
            pi = session.payment_intent
            if pi:
                return pi if isinstance(pi, str) else pi.id
        raise PaymentProviderError(_("No Stripe payment is recorded for this order."))

    def refund(self, job, *, amount_cents: int, reason: str, idempotency_key: str) -> RefundResult:
        # The parameters depend on the job and amount only, so a retried key replays.
        try:
            refund = self.client.v1.refunds.create(
                params={
                    "payment_intent": self._payment_intent_id(job),
                    "amount": int(amount_cents),
                    "metadata": {"job_id": str(job.pk)},
                },
                options={"idempotency_key": idempotency_key},
            )
        except stripe_lib.StripeError as exc:
            message = exc.user_message or str(exc) or exc.__class__.__name__
            raise PaymentProviderError(_("Stripe refused the refund: %(error)s") % {"error": message})
        return RefundResult(
            refund_id=refund.id, amount_cents=int(refund.amount), status=refund.status or "pending"
        )

    # Webhooks ---------------------------------------------------------------------

    def handle_webhook(self, request) -> HttpResponse:
        # An unsigned request is not from Stripe: refuse it before anything else, so a
        # missing secret (our problem) is not reported to whoever is probing the URL.
        signature = request.META.get("HTTP_STRIPE_SIGNATURE", "")
        if not signature:
            return _error("missing_signature", _("The Stripe-Signature header is missing."), 400)
        conf = _stripe_settings()
        secret = conf.get("WEBHOOK_SECRET")
        if not secret:
            # The site is not ready for Stripe yet (503: Stripe retries for days), not broken.
            report_missing_webhook_secret()
            response = _error("not_configured", _("The Stripe webhook is not configured on this site."), 503)
            # Django would log every 5xx answer as an error (mailing the admins when DEBUG
            # is off): the line above already said it once for the process.
            response._has_been_logged = True
            return response
        limit = int(conf.get("WEBHOOK_MAX_BYTES") or 512 * 1024)
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _error("bad_request", _("The Content-Length header is not a number."), 400)
        if declared > limit:
            return _error("too_large", _("The request body is too large."), 413)
        payload = request.body
        if len(payload) > limit:
            return _error("too_large", _("The request body is too large."), 413)
        try:
            event = stripe_lib.Webhook.construct_event(
                payload, signature, secret, tolerance=SIGNATURE_TOLERANCE
            ).to_dict()
        except stripe_lib.SignatureVerificationError:
            logger.warning("Stripe webhook with a bad or stale signature refused")
            return _error("bad_signature", _("The Stripe-Signature header is wrong or too old."), 400)
        except ValueError:
            return _error("bad_payload", _("The request body is not a Stripe event."), 400)
        return apply_event(event)


@functools.cache
def report_missing_webhook_secret() -> None:
    """Log the missing secret once per process: every signed request would repeat it, so
    whoever can reach the URL could flood the log with it."""
    logger.error(
        "Signed Stripe webhook received but WAGTAIL_SMI['STRIPE']['WEBHOOK_SECRET'] "
        "(SMI_STRIPE_WEBHOOK_SECRET) is not set: events are answered 503 and not processed "
        "(Stripe retries them); this is logged once per process"
    )


def _answer(status_text: str, status: int = 200) -> JsonResponse:
    """A handled event: ``{"status": outcome}``."""
    return JsonResponse({"status": status_text}, status=status)


def _error(code: str, message: str, status: int) -> JsonResponse:
    """A refused request, in the shape of every error the package answers (SPEC §4)."""
    return JsonResponse({"error": code, "message": str(message)}, status=status)


# Events -------------------------------------------------------------------------------
#
# Every signed event of the Stripe account reaches this webhook: Payment Links (whose payer
# chooses ``client_reference_id``), other integrations, the dashboard. So an event is matched
# to an order by the ids this shop stored, never by what the event says about itself: a
# Checkout Session by the job's ``checkout_session_id``, a charge or refund by the job's
# ``payment_intent_id``. ``metadata.job_id`` and ``client_reference_id`` are only claims:
# they can ask for a redelivery while the order's own id is not stored yet, never change it.

OWN, WAIT, FOREIGN = "own", "wait", "foreign"

# Checkout stores the session id as soon as Stripe answers the create call (well within
# this, network retries included). A session event naming a younger order that has no id
# yet is asked to come back; after that, a session the order does not know is a stranger's,
# and answering 409 would only make Stripe retry it for days.
SESSION_ID_GRACE = timedelta(minutes=15)

# Events that would mark an order paid: the session must be what the order costs.
PAYING_EVENTS = {"checkout.session.completed", "checkout.session.async_payment_succeeded"}


def _as_uuid(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError):
        return None


def _id(value) -> str:
    """An expandable field's id (a string, or an expanded object)."""
    if isinstance(value, dict):
        return value.get("id") or ""
    return value or ""


def named_job(obj: dict[str, Any]) -> PurchaseJob | None:
    """The order an object says it is for (``metadata.job_id``, ``client_reference_id``).

    Anyone who can open a Payment Link chooses ``client_reference_id``: this is a claim, used
    to ask for a redelivery or to log, never to apply a payment or a refund.
    """
    for value in ((obj.get("metadata") or {}).get("job_id"), obj.get("client_reference_id")):
        job_id = _as_uuid(value)
        job = PurchaseJob.objects.filter(pk=job_id).first() if job_id else None
        if job is not None:
            return job
    return None


def match_session(session: dict[str, Any]) -> tuple[str, PurchaseJob | None]:
    """``(OWN, job)`` for the session this shop created for the job, by its stored id;
    ``(WAIT, job)`` while a named, young, unpaid order has no session id stored yet;
    ``(FOREIGN, named job or None)`` otherwise."""
    session_id = session.get("id") or ""
    job = PurchaseJob.objects.filter(checkout_session_id=session_id).first() if session_id else None
    if job is not None:
        return OWN, job
    named = named_job(session)
    if (
        named is not None
        and not named.checkout_session_id
        and named.status in actions.UNPAID
        and timezone.now() - named.created_at < SESSION_ID_GRACE
    ):
        return WAIT, named
    return FOREIGN, named


def match_payment(obj: dict[str, Any]) -> tuple[str, PurchaseJob | None]:
    """A charge or refund: ``OWN`` only for the PaymentIntent the job's own session reported.

    ``WAIT`` when it names an unpaid order that has no PaymentIntent yet: a refund can reach
    us before the payment it refunds, and Stripe sends it again later.
    """
    intent = _id(obj.get("payment_intent"))
    job = PurchaseJob.objects.filter(payment_intent_id=intent).first() if intent else None
    if job is not None:
        return OWN, job
    named = named_job(obj)
    if named is not None and not named.payment_intent_id and named.status in actions.UNPAID:
        return WAIT, named
    return FOREIGN, named


def match_event(event_type: str, obj: dict[str, Any]) -> tuple[str, PurchaseJob | None]:
    if event_type.startswith("checkout.session."):
        return match_session(obj)
    return match_payment(obj)


def session_discount(session: dict[str, Any]) -> int:
    """The promotion-code discount, in minor units (``total_details.amount_discount``, or
    what the total lacks of the subtotal when Stripe sent no details)."""
    details = session.get("total_details") or {}
    if details.get("amount_discount") is not None:
        return int(details["amount_discount"])
    subtotal, total = session.get("amount_subtotal"), session.get("amount_total")
    if isinstance(subtotal, int) and isinstance(total, int):
        return max(subtotal - total, 0)
    return 0


def session_mismatches(job: PurchaseJob, session: dict[str, Any]) -> list[str]:
    """Why this session cannot pay for ``job`` (nothing when it can).

    A one-off payment (``mode=payment``) in the job's currency whose ``amount_subtotal`` is
    the quoted amount. A promotion code may lower the total (it is recorded); tax or
    shipping may raise it; nothing else may.
    """
    problems = []
    mode = session.get("mode")
    if mode != "payment":
        problems.append(f"mode {mode!r} instead of 'payment'")
    currency = (session.get("currency") or "").lower()
    if currency != job.currency.lower():
        problems.append(f"currency {currency!r} instead of {job.currency.lower()!r}")
    subtotal = session.get("amount_subtotal")
    if not isinstance(subtotal, int) or subtotal != job.amount_cents:
        problems.append(f"amount_subtotal {subtotal!r} instead of {job.amount_cents}")
        return problems
    discount = session_discount(session)
    total = session.get("amount_total")
    if not 0 <= discount <= subtotal:
        problems.append(f"discount {discount} outside 0..{subtotal}")
    elif not isinstance(total, int) or total < subtotal - discount:
        problems.append(f"amount_total {total!r} below the subtotal less the discount ({subtotal - discount})")
    return problems


def _session_email(session: dict[str, Any]) -> str:
    details = session.get("customer_details") or {}
    return details.get("email") or session.get("customer_email") or ""


def _confirmed_email(session: dict[str, Any]) -> str:
    """The address the buyer gave Stripe at checkout (``customer_details``), unlike
    ``customer_email``, which is only what our own form sent along."""
    return (session.get("customer_details") or {}).get("email") or ""


def _session_is_paid(session: dict[str, Any]) -> bool:
    status = session.get("payment_status")
    # "no_payment_required" in payment mode: a promotion code took the whole amount.
    return status == "paid" or (status == "no_payment_required" and session.get("amount_total") == 0)


def _session_paid(job, session, event_type) -> str:
    paid = actions.mark_paid(
        job.pk,
        email=_session_email(session),
        payment_intent_id=_id(session.get("payment_intent")),
        discount_cents=session_discount(session),
        reason=f"Stripe {event_type} ({session.get('id', '')})",
    )
    return "paid" if paid else "already_paid"


def on_session_completed(job, session, event_type) -> str:
    if _session_is_paid(session):
        return _session_paid(job, session, event_type)
    # A delayed payment method: wait for async_payment_succeeded / _failed.
    logger.info("job %s: checkout completed, payment pending (%s)", job.pk, session.get("payment_status"))
    fields = {}
    email = _session_email(session)
    if email and not job.email:
        fields["email"] = email
    intent = _id(session.get("payment_intent"))
    if intent and not job.payment_intent_id:
        fields["payment_intent_id"] = intent
    if fields:
        update_job(job, **fields)
    return "waiting_for_payment"


def on_async_payment_succeeded(job, session, event_type) -> str:
    if not _session_is_paid(session):
        logger.warning("job %s: %s with payment_status %r; ignored", job.pk, event_type, session.get("payment_status"))
        return "ignored"
    return _session_paid(job, session, event_type)


def on_async_payment_failed(job, session, event_type) -> str:
    done = actions.mark_payment_failed(
        job.pk,
        reason=f"Stripe {event_type} ({session.get('id', '')})",
        message=_("The payment did not go through."),
        confirmed_email=_confirmed_email(session),
    )
    return "payment_failed" if done else "ignored"


def on_session_expired(job, session, event_type) -> str:
    done = actions.abandon_checkout(job.pk, reason=f"Stripe {event_type} ({session.get('id', '')})")
    return "abandoned" if done else "ignored"


def on_session_mismatch(job, session, event_type, problems: list[str]) -> str:
    actions.refuse_payment(
        job.pk,
        reason=f"Stripe {event_type} ({session.get('id', '')})",
        detail="; ".join(problems),
    )
    return "mismatch"


def latest_refund_id(charge: dict[str, Any]) -> str:
    """Charges no longer embed their refunds (API 2022-11-15+): ask Stripe, best effort."""
    embedded = (charge.get("refunds") or {}).get("data") or []
    if embedded:
        return embedded[0].get("id", "")
    try:
        found = StripeProvider().client.v1.refunds.list(params={"charge": charge["id"], "limit": 1})
    except (stripe_lib.StripeError, PaymentProviderError, KeyError):
        logger.warning("could not look up the refunds of charge %s", charge.get("id"), exc_info=True)
        return ""
    return found.data[0].id if found.data else ""


def on_charge_refunded(job, charge, event_type) -> str:
    latest = latest_refund_id(charge)
    total = int(charge.get("amount_refunded") or 0)
    full = bool(charge.get("refunded")) or total >= int(charge.get("amount") or job.paid_amount_cents)
    actions.record_provider_refund(
        job.pk,
        refunded_total_cents=total,
        refund_id=latest or job.refund_id,
        full=full,
        reason=_("Refunded in Stripe") + f" ({charge.get('id', '')})",
    )
    return "refund_recorded"


def on_refund_updated(job, refund, event_type) -> str:
    status = refund.get("status")
    if status in ("failed", "canceled"):
        reason = refund.get("failure_reason") or status
        actions.record_refund_failure(
            job.pk,
            refund_id=refund.get("id", ""),
            amount_cents=refund.get("amount"),
            message=_("Stripe refund %(id)s %(status)s: %(reason)s")
            % {"id": refund.get("id", ""), "status": status, "reason": reason},
        )
        return "refund_failed"
    # Succeeded refunds are recorded from charge.refunded, which carries the total.
    return "ignored"


HANDLERS = {
    "checkout.session.completed": on_session_completed,
    "checkout.session.async_payment_succeeded": on_async_payment_succeeded,
    "checkout.session.async_payment_failed": on_async_payment_failed,
    "checkout.session.expired": on_session_expired,
    "charge.refunded": on_charge_refunded,
    "refund.updated": on_refund_updated,
}


def apply_event(event: dict[str, Any]) -> HttpResponse:
    """Apply a verified event once, to the order it belongs to (see ``match_event``).

    The event's id is stored in the transaction that applies it, so a redelivery or a
    concurrent duplicate changes nothing.
    """
    event_type = event.get("type", "")
    event_id = event.get("id", "")
    handler = HANDLERS.get(event_type)
    if handler is None or not event_id:
        return _answer("ignored")
    obj = (event.get("data") or {}).get("object") or {}
    how, job = match_event(event_type, obj)
    if how == WAIT:
        logger.warning(
            "Stripe %s %s (%s) names order %s, which has not stored its Stripe id yet; "
            "asking for redelivery", event_type, event_id, obj.get("id", ""), job.pk,
        )
        return _error(
            "retry_later", _("This event arrived before the order it refers to was ready; send it again later."), 409
        )
    if how == FOREIGN:
        if job is None:
            logger.info("Stripe %s %s matches no order; ignored", event_type, event_id)
        else:
            logger.warning(
                "Stripe %s %s (%s) names order %s but is not the checkout or payment this shop "
                "created for it; ignored", event_type, event_id, obj.get("id", ""), job.pk,
            )
        return _answer("ignored")
    problems = session_mismatches(job, obj) if event_type in PAYING_EVENTS else []
    try:
        with transaction.atomic():
            try:
                with transaction.atomic():  # a savepoint: the losing duplicate leaves no trace
                    ProcessedWebhookEvent.objects.create(
                        provider="stripe", event_id=event_id, event_type=event_type, job_id=job.pk
                    )
            except IntegrityError:
                logger.info("Stripe event %s (%s) already applied", event_id, event_type)
                return _answer("duplicate")
            if problems:
                outcome = on_session_mismatch(job, obj, event_type, problems)
            else:
                outcome = handler(job, obj, event_type)
    except actions.NotPaidYet:
        # Out of order (a refund before the payment): Stripe redelivers later.
        logger.warning("Stripe %s for job %s before its payment; asking for redelivery", event_type, job.pk)
        return _error(
            "retry_later", _("This event arrived before the payment it refers to; send it again later."), 409
        )
    logger.info("Stripe %s %s for job %s: %s", event_type, event_id, job.pk, outcome)
    return _answer(outcome)
