"""Faults in the services around the shop: Upsampler and Stripe answering 500 or 429 or
timing out, a result download cut halfway, the private storage refusing the write, the
mail server down. Each is injected into a real server (the local fake Upsampler and Stripe,
a folder, an SMTP port nobody listens on), then taken away again: the order must wait with
backoff, never deliver half a file, and recover once the service does.

django-q2 runs in sync mode here: an enqueued task runs at once, in this process. Where
the pipeline waits (a backoff, the next poll), the test lets the time pass by moving the
order's next attempt to now, and runs the sweeper as its schedule would.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import stripe
from django.core import mail
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from tests.fault_support import assert_shop_is_consistent, free_port, stored_files
from tests.stripe_fixtures import API_KEY, open_checkout
from tests.upsampler_server import FakeUpsampler
from wagtail_smi import queue
from wagtail_smi.models import EventCode, JobEvent, PurchaseJob
from wagtail_smi.operations import maintenance
from wagtail_smi.payments.stripe import StripeProvider

pytestmark = [pytest.mark.faults, pytest.mark.django_db]

BASE = "http://testserver"
BUYER = "buyer@example.com"


@pytest.fixture
def upsampler(shop_storage):
    with FakeUpsampler(api_key="k") as server:
        server.result_size = (80, 40)
        settings = server.smi_settings(
            ALLOW_DUMMY_PAYMENTS=True, PUBLIC_BASE_URL=BASE, RATE_LIMITS_ENABLED=False
        )
        settings["UPSCALER"]["OPTIONS"]["TIMEOUT"] = 1
        with override_settings(WAGTAIL_SMI=settings, ADMINS=[("Ops", "ops@example.com")]):
            yield server


@pytest.fixture
def pipeline(make_job, make_image, django_capture_on_commit_callbacks):
    """Start a paid order's processing, and let time pass until its next attempt."""

    class Pipeline:
        def paid(self) -> PurchaseJob:
            image = make_image(20, 10, title="Harbour at dawn")
            job = make_job(
                "paid", image=image, paid_at=timezone.now(), email=BUYER, payment_provider="dummy"
            )
            with django_capture_on_commit_callbacks(execute=True):
                queue.enqueue_processing(job.pk)
            job.refresh_from_db()
            return job

        def next_attempt(self, job: PurchaseJob) -> PurchaseJob:
            PurchaseJob.objects.filter(pk=job.pk).update(
                next_attempt_at=timezone.now() - maintenance.OVERDUE_AFTER
            )
            with django_capture_on_commit_callbacks(execute=True):
                maintenance.sweep()
            job.refresh_from_db()
            return job

    return Pipeline()


def download_emails() -> list:
    return [m for m in mail.outbox if m.to == [BUYER] and "/smi/download/" in m.body]


def delays(job) -> list[int]:
    """The waits the pipeline chose after each failed attempt (its backoff)."""
    events = JobEvent.objects.filter(job=job, code=EventCode.ATTEMPT_FAILED).order_by("id")
    return [event.data["delay_seconds"] for event in events]


def assert_delivered_once(job, location) -> None:
    job.refresh_from_db()
    assert job.status == "completed"
    [stored] = stored_files(location)
    assert stored.relative_to(location).as_posix() == job.result_path
    with Image.open(stored) as image:
        image.load()  # the whole file: a truncated one raises here
        assert image.size == (job.output_width, job.output_height)
    assert len(download_emails()) == 1


# --- Upsampler: 500, 429, timeouts -----------------------------------------------------------


@pytest.mark.parametrize("status", [500, 429])
def test_upsampler_answering_500_or_429_is_retried_with_backoff_then_recovers(
    upsampler, pipeline, shop_storage, status
):
    upsampler.fail_status = status
    upsampler.fail_next = 2  # two submissions refused
    job = pipeline.paid()
    assert (job.status, job.attempts, job.upscaler_job_id) == ("processing", 1, "")
    assert f"HTTP {status}" in job.last_error
    assert job.next_attempt_at > timezone.now()  # it waits, nothing else happens meanwhile

    job = pipeline.next_attempt(job)
    assert job.attempts == 2
    first, second = delays(job)
    assert first <= 30 <= second  # base 30 s, doubled, with jitter

    job = pipeline.next_attempt(job)  # Upsampler is back: submitted
    assert job.upscaler_job_id in upsampler.jobs and job.attempts == 0
    job = pipeline.next_attempt(job)  # polled: done, fetched, delivered

    assert len(upsampler.jobs) == 1  # refused submissions were never charged
    assert_delivered_once(job, shop_storage)
    assert_shop_is_consistent()


def test_upsampler_timing_out_is_polled_again_later_then_recovers(
    upsampler, pipeline, shop_storage
):
    job = pipeline.paid()
    assert job.upscaler_job_id
    upsampler.status_delay = 3  # longer than the client's 1 s timeout

    job = pipeline.next_attempt(job)
    assert job.status == "processing"
    assert "timed out" in job.last_error.lower() or "timeout" in job.last_error.lower()
    assert job.next_attempt_at > timezone.now()  # polled again later, not at once

    upsampler.status_delay = 0
    job = pipeline.next_attempt(job)

    assert len(upsampler.submits) == 1  # a slow status answer never means a new submission
    assert_delivered_once(job, shop_storage)
    assert_shop_is_consistent()


# --- Stripe: 500, 429, timeouts ---------------------------------------------------------------


@pytest.fixture
def stripe_with_retries(stripe_settings):
    """The Stripe provider as shipped: the library retries (with backoff) twice."""
    stripe_settings.WAGTAIL_SMI["STRIPE"]["MAX_NETWORK_RETRIES"] = 2
    return stripe_settings


def session_requests(fake_stripe) -> list[dict]:
    return fake_stripe.requests_to("POST", "/v1/checkout/sessions")


def test_stripe_answering_500_then_429_at_checkout_is_retried_then_recovers(
    fake_stripe, stripe_with_retries, make_job, shop_storage
):
    fake_stripe.fail_next = [500, 429]
    job = open_checkout(make_job(factor=4, amount_cents=50))

    assert job.checkout_url and job.checkout_session_id in fake_stripe.sessions
    attempts = session_requests(fake_stripe)
    assert len(attempts) == 3
    assert len({a["idempotency_key"] for a in attempts}) == 1  # one checkout, asked 3 times
    assert len(fake_stripe.sessions) == 1
    assert_shop_is_consistent()


def test_stripe_timing_out_is_asked_again_with_the_same_key_and_charges_once(
    fake_stripe, stripe_with_retries, make_job, shop_storage
):
    """The first answer comes after the client gave up: Stripe made the session all the
    same, and the retry, with the same idempotency key, gets that very session back."""
    client = stripe.StripeClient(
        API_KEY,
        base_addresses={"api": fake_stripe.base_url},
        max_network_retries=2,
        http_client=stripe.RequestsClient(timeout=1),
    )
    fake_stripe.fail_next = [2.0]  # seconds before the first request is answered
    job = make_job(factor=4, amount_cents=50)

    session = StripeProvider(client).create_checkout(
        job, success_url="https://shop.example/ok", cancel_url="https://shop.example/"
    )

    assert len(session_requests(fake_stripe)) == 2
    assert list(fake_stripe.sessions) == [session.session_id]  # one session, not two
    assert_shop_is_consistent()


def test_stripe_down_longer_than_its_retries_fails_the_checkout_cleanly_then_recovers(
    client, fake_stripe, stripe_with_retries, offer, shop_storage
):
    image, page = offer
    body = {"image_id": image.pk, "page_id": page.pk, "resolution": "4x", "email": BUYER}
    fake_stripe.fail_next = [500, 500, 500]

    refused = client.post(reverse("wagtail_smi:create_checkout"), body)
    assert refused.status_code == 502  # the payment service failed us: try again
    assert refused.json()["error"]
    assert fake_stripe.sessions == {}
    assert not PurchaseJob.objects.exclude(status__in=["awaiting_payment", "abandoned"]).exists()

    answer = client.post(reverse("wagtail_smi:create_checkout"), body)  # the buyer tries again
    assert answer.status_code == 200
    [session] = fake_stripe.sessions.values()
    assert answer.json()["checkout_url"] == session["url"]
    assert len(fake_stripe.sessions) == 1
    assert_shop_is_consistent()


# --- the result download cut halfway ---------------------------------------------------------


def test_result_download_cut_halfway_is_never_delivered_truncated(
    upsampler, pipeline, shop_storage
):
    job = pipeline.paid()
    upsampler.result_cut_next = 1  # half the file, then the connection closes

    job = pipeline.next_attempt(job)
    assert job.status == "processing"  # not delivered, not failed: fetched again later
    assert (job.result_path, job.token_hash) == ("", "")
    assert stored_files(shop_storage) == [] and download_emails() == []

    job = pipeline.next_attempt(job)

    assert len(upsampler.calls("GET", "/files/")) == 2
    assert_delivered_once(job, shop_storage)
    assert_shop_is_consistent()


# --- the storage refusing the write ---------------------------------------------------------


def test_storage_refusing_the_write_keeps_the_order_waiting_then_delivers_once(
    upsampler, pipeline, shop_storage
):
    job = pipeline.paid()
    # The private storage refuses: its folder is a file (refused by the OS, even to root).
    shop_storage.rmdir()
    shop_storage.write_bytes(b"")

    job = pipeline.next_attempt(job)
    assert job.status == "processing" and job.attempts == 1
    assert "delivering" in job.last_error
    assert (job.result_path, job.token_hash) == ("", "")
    assert download_emails() == []

    shop_storage.unlink()  # the storage accepts writes again
    shop_storage.mkdir()
    job = pipeline.next_attempt(job)

    assert_delivered_once(job, shop_storage)
    assert_shop_is_consistent()


# --- the mail server down -------------------------------------------------------------------


def order_page(client, job) -> str:
    url = reverse("wagtail_smi:order_status", args=[job.pk]) + f"?key={job.access_key}"
    return client.get(url).content.decode()


def job_status(client, job) -> dict:
    url = reverse("wagtail_smi:job_status", args=[job.pk]) + f"?key={job.access_key}"
    return client.get(url).json()


def test_email_backend_down_completes_the_order_resends_later_and_the_page_says_so(
    upsampler, pipeline, shop_storage, settings, client, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()  # nobody listens
    settings.EMAIL_TIMEOUT = 2
    job = pipeline.paid()
    job = pipeline.next_attempt(job)

    assert job.status == "completed" and job.delivery_email_sent_at is None
    assert "could not send you the email" in job_status(client, job)["message"]
    assert "could not send you the email" in order_page(client, job)
    assert JobEvent.objects.filter(job=job, code=EventCode.EMAIL_FAILED).exists()

    # The mail server is back; a quarter of an hour later the sweeper sends the link again.
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    earlier = timezone.now() - timedelta(minutes=20)
    PurchaseJob.objects.filter(pk=job.pk).update(completed_at=earlier)
    JobEvent.objects.filter(job=job, code=EventCode.EMAIL_FAILED).update(created_at=earlier)
    with django_capture_on_commit_callbacks(execute=True):
        assert maintenance.sweep()["emails_retried"] == 1

    [message] = download_emails()
    link = next(word for word in message.body.split() if "/smi/download/" in word)
    assert client.get(link.removeprefix(BASE)).status_code == 200
    job.refresh_from_db()
    assert job.delivery_email_sent_at is not None
    assert "emailed the link to you" in job_status(client, job)["message"]
    assert "could not send you the email" not in order_page(client, job)
    assert_shop_is_consistent()
