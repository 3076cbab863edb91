"""Payment providers, selected by ``WAGTAIL_SMI["PAYMENT_BACKEND"]``.

A provider talks to the payment service (checkouts, refunds) and turns its webhook
requests into verified ``PaymentEvent`` values; what a payment does to an order lives in
``wagtail_smi.operations``, the same whichever provider reports it.
"""

from __future__ import annotations

from django.utils.module_loading import import_string

from ..conf import smi_settings
from .base import (
    CheckoutSession,
    PaymentEvent,
    PaymentProvider,
    PaymentProviderError,
    RefundResult,
    WebhookRejected,
)

BACKENDS = {
    "dummy": "wagtail_smi.payments.dummy.DummyProvider",
    "stripe": "wagtail_smi.payments.stripe.StripeProvider",
}


def get_payment_provider(name: str | None = None) -> PaymentProvider:
    backend = name or smi_settings.PAYMENT_BACKEND
    return import_string(BACKENDS.get(backend, backend))()


__all__ = [
    "CheckoutSession",
    "PaymentEvent",
    "PaymentProvider",
    "PaymentProviderError",
    "RefundResult",
    "WebhookRejected",
    "get_payment_provider",
]
