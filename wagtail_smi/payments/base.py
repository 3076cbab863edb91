"""The payment provider interface (wagtail-localize style: a small base class, one module
per backend). Providers only talk to the payment service; job state changes live in
``payments.actions``.
"""

from __future__ import annotations

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


class PaymentProvider:
    name = ""

    def create_checkout(self, job, *, success_url: str, cancel_url: str) -> CheckoutSession:
        """Open a payment page for ``job`` (its amount and currency, never client input)."""
        raise NotImplementedError

    def refund(self, job, *, amount_cents: int, reason: str, idempotency_key: str) -> RefundResult:
        """Refund ``amount_cents`` of the job's payment; the same key never refunds twice."""
        raise NotImplementedError

    def handle_webhook(self, request):
        """Verify and apply a provider event; answer the HTTP response the provider expects."""
        raise NotImplementedError


def line_item_name(job) -> str:
    return _("High-resolution image (%(resolution)s)") % {"resolution": job.resolution}


def line_item_description(job) -> str:
    return _("Upscaled from %(ow)s×%(oh)s to %(w)s×%(h)s pixels") % {
        "ow": job.original_width,
        "oh": job.original_height,
        "w": job.output_width,
        "h": job.output_height,
    }
