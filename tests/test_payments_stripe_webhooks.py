"""The Stripe webhook: signatures, idempotency, and what each event does to a job."""

from __future__ import annotations

import json
import threading
import time

import pytest
from django.db import close_old_connections, connection
from django.test import Client

from tests.stripe_fixtures import deliver, open_checkout
from wagtail_smi.models import JobEvent, ProcessedWebhookEvent, PurchaseJob

SUCCESS = "https://shop.example/orders/"
CANCEL = "https://shop.example/gallery/"


def checkout(job):
    """What the storefront does: create the session and store it on the job."""
    return open_checkout(job, success_url=SUCCESS, cancel_url=CANCEL)


def paid_transitions(job) -> int:
    return JobEvent.objects.filter(job=job, kind=JobEvent.Kind.TRANSITION, to_status="paid").count()


@pytest.fixture
def stripe_job(db, stripe_settings, make_job):
    return checkout(make_job(factor=8, amount_cents=192))


@pytest.mark.django_db
class TestPayment:
    def test_completing_the_session_marks_the_job_paid_and_enqueues_processing_once(
        self, client, fake_stripe, stripe_job, enqueued, django_capture_on_commit_callbacks
    ):
        event, payload, signature = fake_stripe.complete_session(stripe_job.checkout_session_id)

        with django_capture_on_commit_callbacks(execute=True):
            response = deliver(client, payload, signature)

        assert response.status_code == 200
        job = PurchaseJob.objects.get(pk=stripe_job.pk)
        assert job.status == "paid"
        assert job.paid_at is not None
        assert job.payment_intent_id == event["data"]["object"]["payment_intent"]
        assert enqueued == [str(job.pk)]
        assert ProcessedWebhookEvent.objects.filter(event_id=event["id"], job_id=job.pk).exists()

    def test_email_is_backfilled_from_customer_details(self, client, fake_stripe, stripe_job):
        _, payload, signature = fake_stripe.complete_session(
            stripe_job.checkout_session_id, email="collected@example.com"
        )
        deliver(client, payload, signature)
        assert PurchaseJob.objects.get(pk=stripe_job.pk).email == "collected@example.com"

    def test_an_email_given_at_checkout_is_kept(
        self, client, fake_stripe, stripe_settings, make_job
    ):
        job = checkout(make_job(email="given@example.com"))
        _, payload, signature = fake_stripe.complete_session(
            job.checkout_session_id, email="other@example.com"
        )
        deliver(client, payload, signature)
        assert PurchaseJob.objects.get(pk=job.pk).email == "given@example.com"

    def test_the_same_event_delivered_ten_times_changes_the_job_once(
        self, client, fake_stripe, stripe_job, enqueued, django_capture_on_commit_callbacks
    ):
        _, payload, signature = fake_stripe.complete_session(stripe_job.checkout_session_id)
        with django_capture_on_commit_callbacks(execute=True):
            answers = [deliver(client, payload, signature) for _ in range(10)]

        assert [r.status_code for r in answers] == [200] * 10
        assert [r.json()["status"] for r in answers].count("duplicate") == 9
        assert paid_transitions(stripe_job) == 1
        assert enqueued == [str(stripe_job.pk)]

    def test_a_second_completed_event_for_a_paid_job_changes_nothing(
        self, client, fake_stripe, stripe_job, enqueued, django_capture_on_commit_callbacks
    ):
        event, payload, signature = fake_stripe.complete_session(stripe_job.checkout_session_id)
        with django_capture_on_commit_callbacks(execute=True):
            deliver(client, payload, signature)
            # Stripe can send a different event (new id) about the same payment.
            _, payload2, signature2 = fake_stripe.make_event(
                "checkout.session.completed", event["data"]["object"]
            )
            response = deliver(client, payload2, signature2)
        assert response.json()["status"] == "already_paid"
        assert paid_transitions(stripe_job) == 1
        assert enqueued == [str(stripe_job.pk)]

    def test_unpaid_completion_waits_for_the_async_payment(
        self, client, fake_stripe, stripe_job, enqueued, django_capture_on_commit_callbacks
    ):
        _, payload, signature = fake_stripe.complete_session(
            stripe_job.checkout_session_id, paid=False
        )
        with django_capture_on_commit_callbacks(execute=True):
            assert deliver(client, payload, signature).json()["status"] == "waiting_for_payment"
        job = PurchaseJob.objects.get(pk=stripe_job.pk)
        assert job.status == "awaiting_payment"
        assert job.email == "buyer@example.com"
        assert enqueued == []

        _, payload, signature = fake_stripe.async_payment(
            stripe_job.checkout_session_id, succeeded=True
        )
        with django_capture_on_commit_callbacks(execute=True):
            assert deliver(client, payload, signature).json()["status"] == "paid"
        assert PurchaseJob.objects.get(pk=stripe_job.pk).status == "paid"
        assert enqueued == [str(stripe_job.pk)]

    def test_a_failed_async_payment_tells_the_customer_and_keeps_the_job_unpaid(
        self,
        client,
        fake_stripe,
        stripe_job,
        enqueued,
        emails_sent,
        django_capture_on_commit_callbacks,
    ):
        _, payload, signature = fake_stripe.complete_session(
            stripe_job.checkout_session_id, paid=False
        )
        deliver(client, payload, signature)
        _, payload, signature = fake_stripe.async_payment(
            stripe_job.checkout_session_id, succeeded=False
        )
        with django_capture_on_commit_callbacks(execute=True):
            assert deliver(client, payload, signature).json()["status"] == "payment_failed"

        job = PurchaseJob.objects.get(pk=stripe_job.pk)
        assert job.status == "awaiting_payment"
        assert job.last_error
        assert emails_sent == [("send_payment_failed", str(job.pk))]
        assert enqueued == []

    def test_a_job_is_found_by_session_id_when_metadata_is_missing(
        self, client, fake_stripe, stripe_job
    ):
        event, _, _ = fake_stripe.complete_session(stripe_job.checkout_session_id)
        session = event["data"]["object"]
        session["metadata"] = {}
        session["client_reference_id"] = None
        _, payload, signature = fake_stripe.make_event("checkout.session.completed", session)
        deliver(client, payload, signature)
        assert PurchaseJob.objects.get(pk=stripe_job.pk).status == "paid"


@pytest.mark.django_db
class TestSignature:
    def test_forged_signature_is_refused_and_changes_nothing(
        self, client, fake_stripe, stripe_job, enqueued
    ):
        _, payload, _ = fake_stripe.complete_session(stripe_job.checkout_session_id)
        forged = fake_stripe.sign(payload, secret="whsec_someone_else")

        response = deliver(client, payload, forged)

        assert response.status_code == 400
        assert response.json() == {
            "error": "bad_signature",
            "message": "The Stripe-Signature header is wrong or too old.",
        }
        assert PurchaseJob.objects.get(pk=stripe_job.pk).status == "awaiting_payment"
        assert ProcessedWebhookEvent.objects.count() == 0
        assert enqueued == []

    def test_tampered_body_is_refused(self, client, fake_stripe, stripe_job):
        _, payload, signature = fake_stripe.complete_session(stripe_job.checkout_session_id)
        tampered = payload.replace('"amount_total": 192', '"amount_total": 1')
        assert tampered != payload
        assert deliver(client, tampered, signature).status_code == 400
        assert PurchaseJob.objects.get(pk=stripe_job.pk).status == "awaiting_payment"

    def test_stale_signature_is_refused(self, client, fake_stripe, stripe_job):
        _, payload, _ = fake_stripe.complete_session(stripe_job.checkout_session_id)
        stale = fake_stripe.sign(payload, timestamp=int(time.time()) - 301)

        response = deliver(client, payload, stale)
        assert response.status_code == 400
        assert response.json()["error"] == "bad_signature"
        assert PurchaseJob.objects.get(pk=stripe_job.pk).status == "awaiting_payment"

    @pytest.mark.parametrize(
        ("header", "code"),
        [
            (None, "missing_signature"),
            ("", "missing_signature"),
            ("garbage", "bad_signature"),
            ("t=abc,v1=00", "bad_signature"),
        ],
    )
    def test_missing_or_malformed_signature_is_refused(
        self, client, fake_stripe, stripe_job, header, code
    ):
        _, payload, _ = fake_stripe.complete_session(stripe_job.checkout_session_id)
        response = deliver(client, payload, header)
        assert response.status_code == 400
        assert response.json()["error"] == code and response.json()["message"]
        assert PurchaseJob.objects.get(pk=stripe_job.pk).status == "awaiting_payment"

    @pytest.mark.parametrize("header", [None, ""])
    def test_an_unsigned_request_is_a_400_even_without_a_webhook_secret(
        self, client, settings, fake_stripe, stripe_job, header, caplog
    ):
        _, payload, _ = fake_stripe.complete_session(stripe_job.checkout_session_id)
        settings.WAGTAIL_SMI = {
            **settings.WAGTAIL_SMI,
            "STRIPE": {**settings.WAGTAIL_SMI["STRIPE"], "WEBHOOK_SECRET": ""},
        }
        response = deliver(client, payload, header)
        assert response.status_code == 400
        assert response.json() == {
            "error": "missing_signature",
            "message": "The Stripe-Signature header is missing.",
        }
        assert "WEBHOOK_SECRET" not in caplog.text
        assert PurchaseJob.objects.get(pk=stripe_job.pk).status == "awaiting_payment"

    def test_no_webhook_secret_configured_is_a_logged_503(
        self, client, settings, fake_stripe, stripe_job, caplog, fresh_secret_report
    ):
        _, payload, signature = fake_stripe.complete_session(stripe_job.checkout_session_id)
        settings.WAGTAIL_SMI = {
            **settings.WAGTAIL_SMI,
            "STRIPE": {**settings.WAGTAIL_SMI["STRIPE"], "WEBHOOK_SECRET": ""},
        }
        response = deliver(client, payload, signature)
        assert response.status_code == 503
        assert response.json() == {
            "error": "not_configured",
            "message": "The Stripe webhook is not configured on this site.",
        }
        assert "WEBHOOK_SECRET" in caplog.text
        assert PurchaseJob.objects.get(pk=stripe_job.pk).status == "awaiting_payment"

    def test_oversized_body_is_refused(self, client, settings, fake_stripe, stripe_job):
        settings.WAGTAIL_SMI = {
            **settings.WAGTAIL_SMI,
            "STRIPE": {**settings.WAGTAIL_SMI["STRIPE"], "WEBHOOK_MAX_BYTES": 512},
        }
        _, payload, signature = fake_stripe.complete_session(stripe_job.checkout_session_id)
        assert len(payload) > 512
        response = deliver(client, payload, signature)
        assert response.status_code == 413
        assert response.json() == {
            "error": "too_large",
            "message": "The request body is too large.",
        }
        assert PurchaseJob.objects.get(pk=stripe_job.pk).status == "awaiting_payment"

    def test_get_is_not_allowed(self, client, stripe_settings):
        assert client.get("/smi-webhook/stripe/").status_code == 405

    def test_event_types_we_do_not_handle_are_answered_200(
        self, client, fake_stripe, stripe_settings
    ):
        _, payload, signature = fake_stripe.make_event(
            "customer.created", {"id": "cus_1", "object": "customer"}
        )
        response = deliver(client, payload, signature)
        assert response.status_code == 200
        assert response.json()["status"] == "ignored"
        assert ProcessedWebhookEvent.objects.count() == 0

    def test_an_event_for_an_unknown_order_is_ignored(
        self, client, fake_stripe, stripe_settings, stripe_job
    ):
        event, _, _ = fake_stripe.complete_session(stripe_job.checkout_session_id)
        session = {
            **event["data"]["object"],
            "id": "cs_other",
            "metadata": {},
            "client_reference_id": None,
            "payment_intent": "pi_other",
        }
        _, payload, signature = fake_stripe.make_event("checkout.session.completed", session)
        assert deliver(client, payload, signature).json()["status"] == "ignored"
        assert PurchaseJob.objects.get(pk=stripe_job.pk).status == "awaiting_payment"


@pytest.mark.django_db
class TestExpiry:
    def test_an_expired_session_abandons_the_job(self, client, fake_stripe, stripe_job):
        _, payload, signature = fake_stripe.expire_session(stripe_job.checkout_session_id)
        assert deliver(client, payload, signature).json()["status"] == "abandoned"
        job = PurchaseJob.objects.get(pk=stripe_job.pk)
        assert job.status == "abandoned"
        assert job.abandoned_at is not None

    def test_expired_arriving_after_completed_leaves_the_job_paid(
        self, client, fake_stripe, stripe_job
    ):
        event, payload, signature = fake_stripe.complete_session(stripe_job.checkout_session_id)
        deliver(client, payload, signature)
        expired = {**event["data"]["object"], "status": "expired"}
        _, payload, signature = fake_stripe.make_event("checkout.session.expired", expired)

        assert deliver(client, payload, signature).json()["status"] == "ignored"
        assert PurchaseJob.objects.get(pk=stripe_job.pk).status == "paid"

    def test_a_payment_for_an_abandoned_job_is_honoured(
        self, client, fake_stripe, stripe_job, enqueued, django_capture_on_commit_callbacks
    ):
        event, completed_payload, completed_signature = fake_stripe.complete_session(
            stripe_job.checkout_session_id
        )
        _, payload, signature = fake_stripe.make_event(
            "checkout.session.expired", {**event["data"]["object"], "status": "expired"}
        )
        deliver(client, payload, signature)
        assert PurchaseJob.objects.get(pk=stripe_job.pk).status == "abandoned"

        with django_capture_on_commit_callbacks(execute=True):
            deliver(client, completed_payload, completed_signature)
        assert PurchaseJob.objects.get(pk=stripe_job.pk).status == "paid"
        assert enqueued == [str(stripe_job.pk)]


@pytest.mark.django_db
class TestDashboardRefunds:
    def pay(self, client, fake_stripe, job):
        _, payload, signature = fake_stripe.complete_session(job.checkout_session_id)
        deliver(client, payload, signature)
        return PurchaseJob.objects.get(pk=job.pk)

    def test_a_dashboard_refund_revokes_the_download(
        self, client, fake_stripe, stripe_job, emails_sent, django_capture_on_commit_callbacks
    ):
        from wagtail_smi.workflow import transition

        job = self.pay(client, fake_stripe, stripe_job)
        transition(job, "processing", code="processing_started")
        transition(job, "completed", code="delivered")

        event, payload, signature = fake_stripe.dashboard_refund(job.payment_intent_id)
        with django_capture_on_commit_callbacks(execute=True):
            assert deliver(client, payload, signature).json()["status"] == "refund_recorded"

        job.refresh_from_db()
        assert job.status == "refunded"
        assert job.access_revoked_at is not None
        assert job.refunded_at is not None
        assert job.refund_amount_cents == 192
        # Charges don't embed their refunds any more: the id was looked up.
        assert "refunds" not in event["data"]["object"]
        assert job.refund_id in fake_stripe.refunds
        assert emails_sent == [("send_refund_notice", str(job.pk))]

    def test_a_partial_dashboard_refund_is_recorded_without_revoking(
        self, client, fake_stripe, stripe_job
    ):
        from wagtail_smi.workflow import transition

        job = self.pay(client, fake_stripe, stripe_job)
        transition(job, "processing", code="processing_started")
        transition(job, "completed", code="delivered")

        _, payload, signature = fake_stripe.dashboard_refund(job.payment_intent_id, amount=50)
        deliver(client, payload, signature)

        job.refresh_from_db()
        assert job.status == "completed"
        assert job.access_revoked_at is None
        assert job.refund_amount_cents == 50

    def test_a_dashboard_refund_during_processing_stops_the_job(
        self, client, fake_stripe, stripe_job
    ):
        from wagtail_smi.workflow import transition

        job = self.pay(client, fake_stripe, stripe_job)
        transition(job, "processing", code="processing_started")
        _, payload, signature = fake_stripe.dashboard_refund(job.payment_intent_id)
        deliver(client, payload, signature)

        job.refresh_from_db()
        assert job.status == "refunded"
        steps = list(
            JobEvent.objects.filter(job=job, kind="transition").values_list("to_status", flat=True)
        )
        assert steps[-2:] == ["failed", "refunded"]

    def test_a_refund_event_before_the_payment_event_is_redelivered_later(
        self, client, fake_stripe, stripe_job, enqueued, django_capture_on_commit_callbacks
    ):
        _, paid_payload, paid_signature = fake_stripe.complete_session(
            stripe_job.checkout_session_id
        )
        intent = fake_stripe.sessions[stripe_job.checkout_session_id]["payment_intent"]
        _, payload, signature = fake_stripe.dashboard_refund(intent)

        first = deliver(client, payload, signature)
        assert first.status_code == 409  # Stripe retries non-2xx answers
        assert first.json()["error"] == "retry_later"
        assert ProcessedWebhookEvent.objects.count() == 0

        with django_capture_on_commit_callbacks(execute=True):
            deliver(client, paid_payload, paid_signature)
            assert deliver(client, payload, signature).status_code == 200
        assert PurchaseJob.objects.get(pk=stripe_job.pk).status == "refunded"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_deliveries_change_the_job_once(
    wagtail_baseline, fake_stripe, stripe_settings, make_job, enqueued
):
    assert connection.vendor == "postgresql"
    job = checkout(make_job(factor=8, amount_cents=192))
    _, payload, signature = fake_stripe.complete_session(job.checkout_session_id)
    statuses: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(5)

    def worker():
        try:
            start.wait(timeout=10)
            statuses.append(deliver(Client(), payload, signature).status_code)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # ...then five more, one after another.
    client = Client()
    statuses += [deliver(client, payload, signature).status_code for _ in range(5)]

    assert errors == []
    assert statuses == [200] * 10
    assert PurchaseJob.objects.get(pk=job.pk).status == "paid"
    assert paid_transitions(job) == 1
    assert ProcessedWebhookEvent.objects.count() == 1
    assert enqueued == [str(job.pk)]


def test_event_payload_is_verified_from_the_raw_bytes(
    db, client, fake_stripe, stripe_settings, make_job
):
    """Whitespace Stripe sends is part of the signature: the body is never re-serialised."""
    job = checkout(make_job())
    event, _, _ = fake_stripe.complete_session(job.checkout_session_id)
    payload = json.dumps(event, indent=2)
    assert deliver(client, payload, fake_stripe.sign(payload)).status_code == 200
    # The same event re-serialised differently no longer matches that signature.
    assert deliver(client, json.dumps(event), fake_stripe.sign(payload)).status_code == 400


@pytest.mark.django_db(transaction=True)
def test_the_servers_test_control_delivers_a_signed_event_to_a_live_site(
    wagtail_baseline, live_server, fake_stripe, stripe_settings, make_job, enqueued
):
    """End to end over HTTP: the server completes the session and POSTs the event itself."""
    import urllib.request

    job = checkout(make_job(factor=8, amount_cents=192))
    request = urllib.request.Request(
        f"{fake_stripe.base_url}/_test/checkout/sessions/{job.checkout_session_id}/complete",
        data=json.dumps({"webhook_url": f"{live_server.url}/smi-webhook/stripe/"}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.loads(response.read())

    assert answer["delivered"] == 200
    assert PurchaseJob.objects.get(pk=job.pk).status == "paid"
    assert enqueued == [str(job.pk)]
