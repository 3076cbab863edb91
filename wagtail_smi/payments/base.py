"""The payment provider interface (wagtail-localize style: a small base class, one module
per backend).

Providers only talk to the payment service: they open checkouts, make refunds, and verify
and translate webhook events into ``PaymentEvent`` values. What an event does to an order
is decided in ``operations.payments``, the same for every provider.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from django.utils.translation import gettext as _


@dataclass(frozen=True)
class CheckoutSession:
    url: str
    session_id: str


@dataclass(frozen=True)
class RefundResult:
    refund_id: str
    amount_cents: int
    # "succeeded", "pending", "failed", "canceled" or "requires_action" (Stripe's words).
    status: str

    @property
    def went_through(self) -> bool:
        """Money is back with the customer, or on its way."""
        return self.status in {"succeeded", "pending"}


class PaymentProviderError(Exception):
    """The provider refused or could not be reached; ``str()`` is safe to show an admin."""


class WebhookRejected(Exception):
    """A webhook request that is not a verified event of this provider.

    ``code``: ``missing_signature``, ``bad_signature``, ``bad_payload``, ``bad_request``,
    ``too_large`` or ``not_configured``; ``message`` is safe to answer with.
    """

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, str(message)


@dataclass(frozen=True)
class PaymentEvent:
    """A provider's event, verified and translated into what the shop needs to know.

    Ids are the provider's own; ``claimed_job_id`` is what the event says about itself
    (metadata a payer may have chosen) and is never trusted to pick the order.
    """

    CHECKOUT_COMPLETED = "checkout_completed"
    PAYMENT_SUCCEEDED = "payment_succeeded"
    PAYMENT_FAILED = "payment_failed"
    CHECKOUT_EXPIRED = "checkout_expired"
    REFUNDED = "refunded"
    REFUND_UPDATED = "refund_updated"

    provider: str
    event_id: str
    #: One of the constants above, or "" for an event the shop does not act on.
    kind: str
    #: The provider's own name for it (``checkout.session.completed``), for logs.
    provider_type: str = ""
    #: The id of the object the event is about (a session, a charge, a refund).
    object_id: str = ""
    session_id: str = ""
    payment_intent_id: str = ""
    claimed_job_id: str = ""
    # Checkout sessions.
    paid: bool = False
    payment_status: str = ""
    mode: str = ""
    currency: str = ""
    amount_subtotal: int | None = None
    amount_total: int | None = None
    discount_cents: int = 0
    #: The buyer's address as the session has it (ours or the provider's).
    email: str = ""
    #: Only the address the buyer gave the provider itself.
    confirmed_email: str = ""
    # Refunds.
    refunded_total_cents: int = 0
    full_refund: bool = False
    refund_id: str = ""
    refund_status: str = ""
    refund_amount_cents: int | None = None
    failure_reason: str = ""

    @property
    def is_checkout(self) -> bool:
        return self.kind in {
            self.CHECKOUT_COMPLETED,
            self.PAYMENT_SUCCEEDED,
            self.PAYMENT_FAILED,
            self.CHECKOUT_EXPIRED,
        }


class PaymentProvider:
    name = ""

    def create_checkout(self, job, *, success_url: str, cancel_url: str) -> CheckoutSession:
        """Open a payment page for ``job`` (its amount and currency, never client input)."""
        raise NotImplementedError

    def refund(self, job, *, amount_cents: int, reason: str, idempotency_key: str) -> RefundResult:
        """Refund ``amount_cents`` of the job's payment; the same key never refunds twice."""
        raise NotImplementedError

    #: Largest webhook body accepted, in bytes.
    max_payload_bytes = 512 * 1024

    def check_webhook_headers(self, headers: Mapping[str, str]) -> None:
        """Refuse (``WebhookRejected``) a webhook request before its body is read."""
        raise WebhookRejected("not_configured", _("This payment provider has no webhook."))

    def parse_event(self, payload: bytes, headers: Mapping[str, str]) -> PaymentEvent:
        """Verify a webhook request's raw body and translate it (``WebhookRejected``)."""
        raise WebhookRejected("not_configured", _("This payment provider has no webhook."))

    def latest_refund_id(self, event: PaymentEvent) -> str:
        """The id of the newest refund behind a ``REFUNDED`` event that did not carry it."""
        return ""


def line_item_name(job) -> str:
    """What the buyer sees on the payment page: the resolution, and the licence bought."""
    if job.licence_name:
        return _("High-resolution image (%(resolution)s), licence: %(licence)s") % {
            "resolution": job.resolution,
            "licence": job.licence_display,
        }
    return _("High-resolution image (%(resolution)s)") % {"resolution": job.resolution}


def line_item_description(job) -> str:
    text = _("Upscaled from %(ow)s×%(oh)s to %(w)s×%(h)s pixels") % {
        "ow": job.original_width,
        "oh": job.original_height,
        "w": job.output_width,
        "h": job.output_height,
    }
    if job.licence_summary:  # the name already says which licence: here, what it allows
        text += f" · {job.licence_summary}"
    return text
