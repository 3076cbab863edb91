"""Stripe: Checkout Sessions, refunds and signature-checked, idempotent webhooks.

The only module that talks to Stripe, through the official library's ``StripeClient``
(API version pinned, ``STRIPE["API_BASE"]`` honoured so tests use a local server).
"""

from __future__ import annotations

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
            logger.error(
                "Signed Stripe webhook received but WAGTAIL_SMI['STRIPE']['WEBHOOK_SECRET'] "
                "(SMI_STRIPE_WEBHOOK_SECRET) is not set: event not processed; Stripe will retry"
            )
            return _error("not_configured", _("The Stripe webhook is not configured on this site."), 500)
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


def _answer(status_text: str, status: int = 200) -> JsonResponse:
    """A handled event: ``{"status": outcome}``."""
    return JsonResponse({"status": status_text}, status=status)


def _error(code: str, message: str, status: int) -> JsonResponse:
    """A refused request, in the shape of every error the package answers (SPEC §4)."""
    return JsonResponse({"error": code, "message": str(message)}, status=status)


# Events -------------------------------------------------------------------------------


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


def find_job(obj: dict[str, Any]) -> PurchaseJob | None:
    """By ``metadata.job_id``, then the session id, then the payment intent id."""
    job_id = _as_uuid((obj.get("metadata") or {}).get("job_id")) or _as_uuid(
        obj.get("client_reference_id")
    )
    if job_id:
        job = PurchaseJob.objects.filter(pk=job_id).first()
        if job:
            return job
    kind = obj.get("object")
    if kind == "checkout.session" and obj.get("id"):
        job = PurchaseJob.objects.filter(checkout_session_id=obj["id"]).first()
        if job:
            return job
    intent = obj.get("id") if kind == "payment_intent" else _id(obj.get("payment_intent"))
    if intent:
        return PurchaseJob.objects.filter(payment_intent_id=intent).first()
    return None


def _session_email(session: dict[str, Any]) -> str:
    details = session.get("customer_details") or {}
    return details.get("email") or session.get("customer_email") or ""


def _session_paid(job, session, event_type) -> str:
    paid = actions.mark_paid(
        job.pk,
        email=_session_email(session),
        payment_intent_id=_id(session.get("payment_intent")),
        reason=f"Stripe {event_type} ({session.get('id', '')})",
    )
    return "paid" if paid else "already_paid"


def on_session_completed(job, session, event_type) -> str:
    if session.get("payment_status") in ("paid", "no_payment_required"):
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


def on_async_payment_failed(job, session, event_type) -> str:
    done = actions.mark_payment_failed(
        job.pk,
        reason=f"Stripe {event_type} ({session.get('id', '')})",
        message=_("The payment did not go through."),
    )
    return "payment_failed" if done else "ignored"


def on_session_expired(job, session, event_type) -> str:
    done = actions.abandon_checkout(job.pk, reason=f"Stripe {event_type} ({session.get('id', '')})")
    return "abandoned" if done else "ignored"


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
    full = bool(charge.get("refunded")) or total >= int(charge.get("amount") or job.amount_cents)
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
    "checkout.session.async_payment_succeeded": _session_paid,
    "checkout.session.async_payment_failed": on_async_payment_failed,
    "checkout.session.expired": on_session_expired,
    "charge.refunded": on_charge_refunded,
    "refund.updated": on_refund_updated,
}


def apply_event(event: dict[str, Any]) -> HttpResponse:
    """Apply a verified event once: its id is stored in the transaction that applies it."""
    event_type = event.get("type", "")
    event_id = event.get("id", "")
    handler = HANDLERS.get(event_type)
    if handler is None or not event_id:
        return _answer("ignored")
    obj = (event.get("data") or {}).get("object") or {}
    job = find_job(obj)
    if job is None:
        logger.info("Stripe %s %s matches no order; ignored", event_type, event_id)
        return _answer("ignored")
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
            outcome = handler(job, obj, event_type)
    except actions.NotPaidYet:
        # Out of order (a refund before the payment): Stripe redelivers later.
        logger.warning("Stripe %s for job %s before its payment; asking for redelivery", event_type, job.pk)
        return _error(
            "retry_later", _("This event arrived before the payment it refers to; send it again later."), 409
        )
    logger.info("Stripe %s %s for job %s: %s", event_type, event_id, job.pk, outcome)
    return _answer(outcome)
