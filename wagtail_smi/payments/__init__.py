"""Payment providers, selected by ``WAGTAIL_SMI["PAYMENT_BACKEND"]``.

``get_payment_provider()`` talks to the payment service; ``mark_paid()`` and
``refund_job()`` (in ``actions``) are what a payment does to a job, whoever reports it.
"""

from __future__ import annotations

from django.utils.module_loading import import_string

from ..conf import smi_settings
from .actions import (
    NotPaidYet,
    RefundNotPossible,
    abandon_checkout,
    mark_paid,
    mark_payment_failed,
    record_provider_refund,
    record_refund_failure,
    refund_job,
)
from .base import CheckoutSession, PaymentProvider, PaymentProviderError, RefundResult

BACKENDS = {
    "dummy": "wagtail_smi.payments.dummy.DummyProvider",
    "stripe": "wagtail_smi.payments.stripe.StripeProvider",
}


def get_payment_provider(name: str | None = None) -> PaymentProvider:
    backend = name or smi_settings.PAYMENT_BACKEND
    return import_string(BACKENDS.get(backend, backend))()


__all__ = [
    "CheckoutSession",
    "NotPaidYet",
    "PaymentProvider",
    "PaymentProviderError",
    "RefundNotPossible",
    "RefundResult",
    "abandon_checkout",
    "get_payment_provider",
    "mark_paid",
    "mark_payment_failed",
    "record_provider_refund",
    "record_refund_failure",
    "refund_job",
]
