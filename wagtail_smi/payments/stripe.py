"""Stripe: Checkout Sessions, refunds, and signature-checked webhook events.

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
from django.utils import timezone
from django.utils.translation import gettext as _

from ..conf import smi_settings
from ..licensing import withdrawal_waiver_text
from ..utils import absolute_url
from .base import (
    CheckoutSession,
    PaymentEvent,
    PaymentProvider,
    PaymentProviderError,
    RefundResult,
    WebhookRejected,
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
    """Stripe's consent line: the same words as the site's own waiver checkbox."""
    return withdrawal_waiver_text()


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
            raise PaymentProviderError(
                exc.user_message or _("The payment service is unavailable.")
            ) from exc
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
            raise PaymentProviderError(
                _("Stripe refused the refund: %(error)s") % {"error": message}
            ) from exc
        return RefundResult(
            refund_id=refund.id, amount_cents=int(refund.amount), status=refund.status or "pending"
        )

    # Webhooks ---------------------------------------------------------------------

    @property
    def max_payload_bytes(self) -> int:
        return int(_stripe_settings().get("WEBHOOK_MAX_BYTES") or 512 * 1024)

    def check_webhook_headers(self, headers) -> None:
        # An unsigned request is not from Stripe: refuse it before anything else, so a
        # missing secret (our problem) is not reported to whoever is probing the URL.
        if not headers.get("Stripe-Signature"):
            raise WebhookRejected("missing_signature", _("The Stripe-Signature header is missing."))
        if not _stripe_settings().get("WEBHOOK_SECRET"):
            report_missing_webhook_secret()
            raise WebhookRejected(
                "not_configured", _("The Stripe webhook is not configured on this site.")
            )
        try:
            declared = int(headers.get("Content-Length") or 0)
        except ValueError as exc:
            raise WebhookRejected(
                "bad_request", _("The Content-Length header is not a number.")
            ) from exc
        if declared > self.max_payload_bytes:
            raise WebhookRejected("too_large", _("The request body is too large."))

    def parse_event(self, payload: bytes, headers) -> PaymentEvent:
        """Verify the raw body against ``Stripe-Signature`` (300 s tolerance) and translate."""
        self.check_webhook_headers(headers)
        if len(payload) > self.max_payload_bytes:
            raise WebhookRejected("too_large", _("The request body is too large."))
        try:
            event = stripe_lib.Webhook.construct_event(
                payload,
                headers.get("Stripe-Signature", ""),
                _stripe_settings()["WEBHOOK_SECRET"],
                tolerance=SIGNATURE_TOLERANCE,
            ).to_dict()
        except stripe_lib.SignatureVerificationError as exc:
            logger.warning("Stripe webhook with a bad or stale signature refused")
            raise WebhookRejected(
                "bad_signature", _("The Stripe-Signature header is wrong or too old.")
            ) from exc
        except ValueError as exc:
            raise WebhookRejected(
                "bad_payload", _("The request body is not a Stripe event.")
            ) from exc
        return translate_event(event)

    def latest_refund_id(self, event: PaymentEvent) -> str:
        """Charges no longer embed their refunds (API 2022-11-15+): ask Stripe, best effort."""
        try:
            found = self.client.v1.refunds.list(params={"charge": event.object_id, "limit": 1})
        except (stripe_lib.StripeError, PaymentProviderError):
            logger.warning(
                "could not look up the refunds of charge %s", event.object_id, exc_info=True
            )
            return ""
        return found.data[0].id if found.data else ""


@functools.cache
def report_missing_webhook_secret() -> None:
    """Log the missing secret once per process: every signed request would repeat it, so
    whoever can reach the URL could flood the log with it."""
    logger.error(
        "Signed Stripe webhook received but WAGTAIL_SMI['STRIPE']['WEBHOOK_SECRET'] "
        "(SMI_STRIPE_WEBHOOK_SECRET) is not set: events are answered 503 and not processed "
        "(Stripe retries them); this is logged once per process"
    )


# Translating Stripe's events --------------------------------------------------------------

KINDS = {
    "checkout.session.completed": PaymentEvent.CHECKOUT_COMPLETED,
    "checkout.session.async_payment_succeeded": PaymentEvent.PAYMENT_SUCCEEDED,
    "checkout.session.async_payment_failed": PaymentEvent.PAYMENT_FAILED,
    "checkout.session.expired": PaymentEvent.CHECKOUT_EXPIRED,
    "charge.refunded": PaymentEvent.REFUNDED,
    "refund.updated": PaymentEvent.REFUND_UPDATED,
}


def _id(value) -> str:
    """An expandable field's id (a string, or an expanded object)."""
    if isinstance(value, dict):
        return value.get("id") or ""
    return value or ""


def _int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _claimed_job_id(obj: dict[str, Any]) -> str:
    """The order an object says it is for: a claim (a Payment Link's payer chooses
    ``client_reference_id``), never used to pick the order a payment applies to."""
    for value in ((obj.get("metadata") or {}).get("job_id"), obj.get("client_reference_id")):
        try:
            return str(uuid.UUID(str(value)))
        except (TypeError, ValueError):
            continue
    return ""


def session_discount(session: dict[str, Any]) -> int:
    """The promotion-code discount, in minor units (``total_details.amount_discount``, or
    what the total lacks of the subtotal when Stripe sent no details)."""
    details = session.get("total_details") or {}
    if details.get("amount_discount") is not None:
        return int(details["amount_discount"])
    subtotal, total = _int(session.get("amount_subtotal")), _int(session.get("amount_total"))
    if subtotal is not None and total is not None:
        return max(subtotal - total, 0)
    return 0


def _session_is_paid(session: dict[str, Any]) -> bool:
    status = session.get("payment_status")
    # "no_payment_required" in payment mode: a promotion code took the whole amount.
    return status == "paid" or (
        status == "no_payment_required" and session.get("amount_total") == 0
    )


def translate_event(event: dict[str, Any]) -> PaymentEvent:
    event_type = event.get("type", "") or ""
    obj = (event.get("data") or {}).get("object") or {}
    common = {
        "provider": "stripe",
        "event_id": event.get("id", "") or "",
        "kind": KINDS.get(event_type, ""),
        "provider_type": event_type,
        "object_id": obj.get("id", "") or "",
        "claimed_job_id": _claimed_job_id(obj),
    }
    if event_type.startswith("checkout.session."):
        details = obj.get("customer_details") or {}
        return PaymentEvent(
            **common,
            session_id=obj.get("id", "") or "",
            payment_intent_id=_id(obj.get("payment_intent")),
            paid=_session_is_paid(obj),
            payment_status=obj.get("payment_status") or "",
            mode=obj.get("mode") or "",
            currency=(obj.get("currency") or "").lower(),
            amount_subtotal=_int(obj.get("amount_subtotal")),
            amount_total=_int(obj.get("amount_total")),
            discount_cents=session_discount(obj),
            email=details.get("email") or obj.get("customer_email") or "",
            # The address the buyer gave Stripe at checkout, unlike ``customer_email``,
            # which is only what our own form sent along.
            confirmed_email=details.get("email") or "",
        )
    if event_type == "charge.refunded":
        embedded = (obj.get("refunds") or {}).get("data") or []
        total = int(obj.get("amount_refunded") or 0)
        amount = _int(obj.get("amount"))
        return PaymentEvent(
            **common,
            payment_intent_id=_id(obj.get("payment_intent")),
            refunded_total_cents=total,
            full_refund=bool(obj.get("refunded")) or (amount is not None and total >= amount),
            refund_id=embedded[0].get("id", "") if embedded else "",
        )
    if event_type == "refund.updated":
        return PaymentEvent(
            **common,
            payment_intent_id=_id(obj.get("payment_intent")),
            refund_id=obj.get("id", "") or "",
            refund_status=obj.get("status") or "",
            refund_amount_cents=_int(obj.get("amount")),
            failure_reason=obj.get("failure_reason") or "",
        )
    return PaymentEvent(**common)
