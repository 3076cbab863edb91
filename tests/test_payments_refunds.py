"""refund_job: through the job's provider, idempotent, and failures left for an admin."""

from __future__ import annotations

import pytest

from tests.stripe_fixtures import deliver
from wagtail_smi.models import JobEvent, PurchaseJob
from wagtail_smi.operations import RefundNotPossible
from wagtail_smi.operations import refund as refund_job
from wagtail_smi.operations.refunds import refund_idempotency_key
from wagtail_smi.payments import get_payment_provider

pytestmark = pytest.mark.django_db


def refund_posts(fake_stripe):
    return fake_stripe.requests_to("POST", "/v1/refunds")


def test_full_refund_is_recorded_with_amount_and_time(
    paid_stripe_job, fake_stripe, emails_sent, django_capture_on_commit_callbacks
):
    job = paid_stripe_job("failed")

    with django_capture_on_commit_callbacks(execute=True):
        refunded = refund_job(job.pk, reason="Upscaling failed")

    assert refunded.status == "refunded"
    assert refunded.refund_amount_cents == 192
    assert refunded.refunded_at is not None
    assert refunded.refund_reason == "Upscaling failed"
    assert refunded.refund_id in fake_stripe.refunds
    assert fake_stripe.refunds[refunded.refund_id]["amount"] == 192
    assert fake_stripe.refunds[refunded.refund_id]["metadata"] == {"job_id": str(job.pk)}
    assert emails_sent == [("send_refund_notice", str(job.pk))]


def test_a_second_refund_request_for_the_same_job_is_not_sent(paid_stripe_job, fake_stripe):
    job = paid_stripe_job("failed")
    refund_job(job.pk, reason="Upscaling failed")
    again = refund_job(job.pk, reason="Admin clicked refund too")

    assert len(refund_posts(fake_stripe)) == 1
    assert again.status == "refunded"
    assert again.refund_reason == "Upscaling failed"


def test_a_retry_after_a_crash_replays_the_refund_instead_of_repeating_it(
    paid_stripe_job, fake_stripe
):
    """The provider refunded but we never recorded it: the same key gets the same refund."""
    job = paid_stripe_job("failed")
    provider = get_payment_provider("stripe")
    key = refund_idempotency_key(job, 192)
    lost = provider.refund(job, amount_cents=192, reason="x", idempotency_key=key)

    refunded = refund_job(job.pk, reason="Upscaling failed")

    assert refunded.refund_id == lost.refund_id
    assert len(fake_stripe.refunds) == 1
    assert {r["idempotency_key"] for r in refund_posts(fake_stripe)} == {key}


def test_a_refused_refund_leaves_the_job_needing_attention_with_the_reason(
    paid_stripe_job, fake_stripe, emails_sent, django_capture_on_commit_callbacks
):
    job = paid_stripe_job("failed")
    fake_stripe.refund_mode = "refuse"

    with django_capture_on_commit_callbacks(execute=True):
        result = refund_job(job.pk, reason="Upscaling failed")

    assert result.status == "needs_attention"
    assert "could not be processed" in result.last_error
    assert result.refund_amount_cents == 0
    assert emails_sent == [("send_admin_alert", str(job.pk))]
    assert JobEvent.objects.filter(job=job, code="refund_refused").exists()


def test_an_admin_can_retry_a_refused_refund_with_a_fresh_key(paid_stripe_job, fake_stripe):
    job = paid_stripe_job("failed")
    fake_stripe.refund_mode = "refuse"
    refund_job(job.pk, reason="Upscaling failed")
    fake_stripe.refund_mode = "ok"

    retried = refund_job(job.pk, reason="Admin retry")

    assert retried.status == "refunded"
    keys = [r["idempotency_key"] for r in refund_posts(fake_stripe)]
    assert len(keys) == 2 and keys[0] != keys[1]


def test_a_refund_that_ends_failed_needs_attention(paid_stripe_job, fake_stripe):
    job = paid_stripe_job("failed")
    fake_stripe.refund_mode = "fail"

    result = refund_job(job.pk, reason="Upscaling failed")

    assert result.status == "needs_attention"
    assert "failed" in result.last_error


def test_a_refund_reported_failed_later_alerts_the_admin(
    client, paid_stripe_job, fake_stripe, emails_sent, django_capture_on_commit_callbacks
):
    job = paid_stripe_job("failed")
    refunded = refund_job(job.pk, reason="Upscaling failed")
    _, payload, signature = fake_stripe.refund_failed_later(refunded.refund_id)

    with django_capture_on_commit_callbacks(execute=True):
        assert deliver(client, payload, signature).json()["status"] == "refund_failed"

    job.refresh_from_db()
    assert job.status == "needs_attention"  # the money is not back: an admin must act
    assert job.refund_amount_cents == 0
    assert "lost_or_stolen_card" in job.last_error or "expired_or_canceled_card" in job.last_error
    assert ("send_admin_alert", str(job.pk)) in emails_sent

    # The admin can then refund again, and this time it goes through.
    fake_stripe.refund_mode = "ok"
    again = refund_job(job.pk, reason="Second attempt")
    assert again.status == "refunded"
    assert again.refund_amount_cents == again.amount_cents


def test_refunding_a_processing_job_moves_it_to_failed_first(paid_stripe_job):
    job = paid_stripe_job("processing")

    refunded = refund_job(job.pk, reason="Customer asked")

    steps = list(
        JobEvent.objects.filter(job=job, kind="transition").values_list("to_status", flat=True)
    )
    assert steps[-2:] == ["failed", "refunded"]
    assert refunded.status == "refunded"


def test_refunding_a_completed_job_revokes_the_download(paid_stripe_job):
    job = paid_stripe_job("completed")
    refunded = refund_job(job.pk, reason="Goodwill")
    assert refunded.status == "refunded"
    assert refunded.access_revoked_at is not None


def test_a_partial_refund_records_the_amount_refunded(paid_stripe_job, fake_stripe):
    job = paid_stripe_job("failed")
    refunded = refund_job(job.pk, reason="Keep the fee", amount_cents=100)
    assert refunded.status == "refunded"
    assert refunded.refund_amount_cents == 100
    assert fake_stripe.refunds[refunded.refund_id]["amount"] == 100


def test_our_own_refunds_webhook_does_not_refund_or_email_twice(
    client, paid_stripe_job, fake_stripe, emails_sent, django_capture_on_commit_callbacks
):
    job = paid_stripe_job("failed")
    with django_capture_on_commit_callbacks(execute=True):
        refunded = refund_job(job.pk, reason="Upscaling failed")
        charge = fake_stripe.charges[fake_stripe.refunds[refunded.refund_id]["charge"]]
        _, payload, signature = fake_stripe.make_event("charge.refunded", charge)
        assert deliver(client, payload, signature).status_code == 200

    assert emails_sent.count(("send_refund_notice", str(job.pk))) == 1
    assert PurchaseJob.objects.get(pk=job.pk).refund_amount_cents == 192


@pytest.mark.parametrize("status", ["awaiting_payment", "abandoned"])
def test_an_unpaid_job_cannot_be_refunded(make_job, status):
    job = make_job(status)
    with pytest.raises(RefundNotPossible):
        refund_job(job.pk, reason="nothing to refund")


def test_more_than_was_paid_cannot_be_refunded(paid_stripe_job, fake_stripe):
    job = paid_stripe_job("failed")
    with pytest.raises(RefundNotPossible):
        refund_job(job.pk, reason="too much", amount_cents=193)
    assert refund_posts(fake_stripe) == []


def test_the_test_server_refuses_refunds_above_the_charge(paid_stripe_job, fake_stripe):
    import stripe

    job = paid_stripe_job("failed")
    client = stripe.StripeClient(
        "sk_test_wagtail_smi", base_addresses={"api": fake_stripe.base_url}, max_network_retries=0
    )
    client.v1.refunds.create(params={"payment_intent": job.payment_intent_id, "amount": 150})
    with pytest.raises(stripe.InvalidRequestError, match="greater than unrefunded amount"):
        client.v1.refunds.create(params={"payment_intent": job.payment_intent_id, "amount": 50})


class TestDummyRefunds:
    def test_dummy_refund_succeeds_locally_and_is_idempotent(self, make_job):
        job = make_job("failed", payment_provider="dummy", paid_at="2026-01-01T00:00:00Z")
        provider = get_payment_provider("dummy")

        first = provider.refund(job, amount_cents=50, reason="x", idempotency_key="k1")
        again = provider.refund(job, amount_cents=50, reason="x", idempotency_key="k1")

        assert first == again
        assert first.status == "succeeded"

    def test_refund_job_with_the_dummy_provider(
        self, make_job, emails_sent, django_capture_on_commit_callbacks
    ):
        from django.utils import timezone

        job = make_job("failed", payment_provider="dummy", paid_at=timezone.now())
        with django_capture_on_commit_callbacks(execute=True):
            refunded = refund_job(job.pk, reason="Upscaling failed")
        assert refunded.status == "refunded"
        assert refunded.refund_id.startswith("dummy_re_")
        assert refunded.refund_amount_cents == 50
        assert emails_sent == [("send_refund_notice", str(job.pk))]


def test_a_refund_the_webhook_recorded_meanwhile_is_counted_once(
    client, paid_stripe_job, fake_stripe, monkeypatch
):
    from wagtail_smi.operations import refunds
    from wagtail_smi.payments.stripe import StripeProvider

    job = paid_stripe_job("completed")
    real_refund = StripeProvider.refund

    def refund_then_webhook(self, job, **kwargs):
        result = real_refund(self, job, **kwargs)
        # Stripe's charge.refunded webhook lands before refund_job records the result.
        refunds.record_provider_refund(
            job.pk,
            refunded_total_cents=result.amount_cents,
            refund_id=result.refund_id,
            full=False,
            provider="stripe",
            reference="ch_test",
        )
        return result

    monkeypatch.setattr(StripeProvider, "refund", refund_then_webhook)
    refunded = refund_job(job.pk, reason="Customer asked", amount_cents=100)

    assert refunded.status == "completed"  # a partial refund keeps the order and its file
    assert refunded.refund_amount_cents == 100


def test_a_failed_refund_takes_back_only_its_own_amount(client, paid_stripe_job, fake_stripe):
    job = paid_stripe_job("completed")
    # 80 refunded in the dashboard (partial: the order stays completed)...
    _, payload, signature = fake_stripe.dashboard_refund(job.payment_intent_id, amount=80)
    assert deliver(client, payload, signature).status_code == 200
    # ...then the rest from here, which the bank later returns as failed.
    refunded = refund_job(job.pk, reason="Customer asked")
    assert refunded.refund_amount_cents == 192
    _, payload, signature = fake_stripe.refund_failed_later(refunded.refund_id)
    assert deliver(client, payload, signature).status_code == 200

    job.refresh_from_db()
    assert job.status == "needs_attention"
    assert job.refund_amount_cents == 80
