"""A local stand-in for a payment service, for the demo and tests.

Its checkout page (``pages.dummy_checkout``) drives the same operations as Stripe's
webhooks. It hands out goods for free, so it refuses to exist unless ``DEBUG`` is on or
``WAGTAIL_SMI["ALLOW_DUMMY_PAYMENTS"]`` is set.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .. import links
from ..conf import smi_settings
from .base import CheckoutSession, PaymentProvider, RefundResult


def dummy_payments_allowed() -> bool:
    return bool(settings.DEBUG or smi_settings.ALLOW_DUMMY_PAYMENTS)


class DummyProvider(PaymentProvider):
    name = "dummy"

    def __init__(self) -> None:
        if not dummy_payments_allowed():
            raise ImproperlyConfigured(
                "The dummy payment provider gives images away: it is only available with "
                "DEBUG on or WAGTAIL_SMI['ALLOW_DUMMY_PAYMENTS'] = True."
            )

    def create_checkout(self, job, *, success_url: str, cancel_url: str) -> CheckoutSession:
        return CheckoutSession(
            url=links.dummy_checkout_url(job), session_id=f"dummy_cs_{job.pk.hex}"
        )

    def refund(self, job, *, amount_cents: int, reason: str, idempotency_key: str) -> RefundResult:
        # The same key gives the same refund id, like a replayed Stripe request.
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]
        return RefundResult(
            refund_id=f"dummy_re_{digest}", amount_cents=amount_cents, status="succeeded"
        )

    @staticmethod
    def payment_intent_id(job) -> str:
        return f"dummy_pi_{job.pk.hex}"
