"""Payment providers, selected by ``WAGTAIL_SMI["PAYMENT_BACKEND"]``."""

from __future__ import annotations

from django.utils.module_loading import import_string

from ..conf import smi_settings
from .base import CheckoutSession, PaymentProvider, RefundResult

BACKENDS = {
    "dummy": "wagtail_smi.payments.dummy.DummyProvider",
    "stripe": "wagtail_smi.payments.stripe.StripeProvider",
}


def get_payment_provider(name: str | None = None) -> PaymentProvider:
    backend = name or smi_settings.PAYMENT_BACKEND
    return import_string(BACKENDS.get(backend, backend))()


def refund_job(job_id, *, reason: str, amount_cents: int | None = None, actor=None):
    """Refund a paid job through its provider (idempotent per job and reason)."""
    raise NotImplementedError


__all__ = ["CheckoutSession", "PaymentProvider", "RefundResult", "get_payment_provider", "refund_job"]
