"""Fixtures for the payments tests: the local Stripe server and recorders at the
boundaries we own (enqueueing processing, sending emails). Registered for the whole suite
in ``tests/conftest.py`` (``pytest_plugins``); plain helpers (``deliver``,
``open_checkout``) are imported by name.
"""

from __future__ import annotations

import json

import pytest
import stripe

from tests import stripe_server
from wagtail_smi.models import PurchaseJob
from wagtail_smi.payments import get_payment_provider
from wagtail_smi.workflow import transition, update_job

WEBHOOK_SECRET = "whsec_test_0123456789abcdef"
API_KEY = "sk_test_wagtail_smi"


@pytest.fixture
def fake_stripe():
    fake = stripe_server.FakeStripe(webhook_secret=WEBHOOK_SECRET, api_key=API_KEY)
    server, thread = stripe_server.start(fake)
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def stripe_settings(settings, fake_stripe):
    """WAGTAIL_SMI pointing the Stripe provider at the local server."""
    settings.WAGTAIL_SMI = {
        **settings.WAGTAIL_SMI,
        "PAYMENT_BACKEND": "stripe",
        "STRIPE": {
            "SECRET_KEY": API_KEY,
            "WEBHOOK_SECRET": WEBHOOK_SECRET,
            "API_BASE": fake_stripe.base_url,
            "MAX_NETWORK_RETRIES": 0,
        },
    }
    return settings


@pytest.fixture
def stripe_api(fake_stripe):
    """The real stripe library on the same account, as any other integration (a Payment
    Link, another shop, the dashboard) uses it."""
    return stripe.StripeClient(
        API_KEY, base_addresses={"api": fake_stripe.base_url}, max_network_retries=0
    )


@pytest.fixture
def fresh_secret_report():
    """The missing-webhook-secret error is logged once per process: forget it around a test."""
    from wagtail_smi.payments.stripe import report_missing_webhook_secret

    report_missing_webhook_secret.cache_clear()
    yield
    report_missing_webhook_secret.cache_clear()


@pytest.fixture
def enqueued(monkeypatch):
    """The job ids handed to ``queue.enqueue_processing`` (processing itself is not run)."""
    from wagtail_smi import queue

    calls: list[str] = []
    monkeypatch.setattr(queue, "enqueue_processing", lambda job_id: calls.append(str(job_id)))
    return calls


@pytest.fixture
def emails_sent(monkeypatch):
    """``(function name, job id)`` for every email the payments code asks for; the real
    function still runs."""
    from wagtail_smi import emails

    sent: list[tuple[str, str]] = []
    for name in (
        "send_refund_notice",
        "send_payment_failed",
        "send_admin_alert",
        "send_download_ready",
    ):
        original = getattr(emails, name)

        def wrapper(job, *args, _name=name, _original=original, **kwargs):
            sent.append((_name, str(job.pk)))
            return _original(job, *args, **kwargs)

        monkeypatch.setattr(emails, name, wrapper)
    return sent


def deliver(client, payload: str, signature: str | None, **extra):
    """POST an event to the Stripe webhook the way Stripe does (raw JSON + signature)."""
    headers = {"HTTP_STRIPE_SIGNATURE": signature} if signature is not None else {}
    return client.post(
        "/smi-webhook/stripe/", data=payload, content_type="application/json", **headers, **extra
    )


def event_payload(event: dict) -> str:
    return json.dumps(event)


def open_checkout(
    job, *, success_url="https://shop.example/orders/", cancel_url="https://shop.example/"
):
    """What the storefront does: create the job's Checkout Session and store it on the job."""
    session = get_payment_provider().create_checkout(
        job, success_url=success_url, cancel_url=cancel_url
    )
    return update_job(
        job,
        checkout_session_id=session.session_id,
        checkout_url=session.url,
        payment_provider="stripe",
    )


@pytest.fixture
def paid_stripe_job(client, fake_stripe, stripe_settings, make_job):
    """A job paid through the local Stripe server (a real PaymentIntent and Charge)."""

    def factory(status: str = "failed"):
        job = open_checkout(
            make_job(factor=8, amount_cents=192), success_url="https://shop.example/ok"
        )
        _, payload, signature = fake_stripe.complete_session(job.checkout_session_id)
        assert deliver(client, payload, signature).status_code == 200
        path = {
            "paid": [],
            "processing": ["processing"],
            "failed": ["processing", "failed"],
            "completed": ["processing", "completed"],
        }[status]
        for step in path:
            transition(job, step, code="legacy")
        return PurchaseJob.objects.get(pk=job.pk)

    return factory
