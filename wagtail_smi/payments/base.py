"""The payment provider interface."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CheckoutSession:
    url: str
    session_id: str


@dataclass(frozen=True)
class RefundResult:
    refund_id: str
    amount_cents: int
    status: str


class PaymentProvider:
    name = ""

    def create_checkout(self, job, *, success_url: str, cancel_url: str) -> CheckoutSession:
        raise NotImplementedError

    def refund(self, job, *, amount_cents: int, reason: str, idempotency_key: str) -> RefundResult:
        raise NotImplementedError

    def handle_webhook(self, request):
        raise NotImplementedError
