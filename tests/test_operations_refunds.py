"""The refund operations called directly: refund (through the local Stripe server),
record_provider_refund and record_refund_failure (what Stripe reports afterwards)."""

from __future__ import annotations

import pytest
from django.core import mail
from django.utils import timezone

from tests.operations_support import codes, event, log
from wagtail_smi.models import PurchaseJob
from wagtail_smi.operations import (
    RefundNotPossible,
    record_provider_refund,
    record_refund_failure,
    refund,
)
from wagtail_smi.operations.refunds import NotPaidYet

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def admins(settings):
    settings.ADMINS = [("Ops", "ops@example.com")]


def recipients() -> list[list[str]]:
    return [m.to for m in mail.outbox]


# --- refund -----------------------------------------------------------------------------------


def test_a_full_refund_of_a_delivered_order_revokes_the_download_and_tells_the_customer(
    paid_stripe_job, fake_stripe, queued, django_capture_on_commit_callbacks
):
    job = paid_stripe_job("completed")
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        refunded = refund(job.pk, reason="customer asked")

    assert (refunded.status, refunded.refund_amount_cents, refunded.refund_reason) == (
        "refunded",
        192,
        "customer asked",
    )
    assert refunded.access_revoked_at is not None and refunded.refunded_at is not None
    assert fake_stripe.refunds[refunded.refund_id]["amount"] == 192
    assert log(refunded)[-1] == (
        "refunded",
        "refunded",
        {
            "amount_cents": 192,
            "currency": "usd",
            "refund_id": refunded.refund_id,
            "reason": "customer asked",
        },
    )
    assert recipients() == [["buyer@example.com"]]
    assert queued == []


def test_refunding_an_order_in_the_pipeline_stops_it_first(
    paid_stripe_job, django_capture_on_commit_callbacks
):
    job = paid_stripe_job("processing")

    with django_capture_on_commit_callbacks(execute=True):
        refunded = refund(job.pk, reason="customer asked")

    assert refunded.status == "refunded"
    assert [(code, to) for code, to, _data in log(job)][-2:] == [
        ("refund_started", "failed"),
        ("refunded", "refunded"),
    ]
    assert event(job, "refund_started").data == {"reason": "customer asked"}


def test_a_partial_refund_keeps_the_rest_refundable(paid_stripe_job, fake_stripe):
    job = paid_stripe_job("failed")

    refunded = refund(job.pk, reason="goodwill", amount_cents=50)

    assert (refunded.status, refunded.refund_amount_cents, refunded.refundable_cents) == (
        "refunded",
        50,
        142,
    )
    assert [r["amount"] for r in fake_stripe.refunds.values()] == [50]


def test_a_refused_refund_leaves_the_order_needing_attention_and_alerts_the_admins(
    paid_stripe_job, fake_stripe, django_capture_on_commit_callbacks
):
    job = paid_stripe_job("failed")
    fake_stripe.refund_mode = "refuse"
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        result = refund(job.pk, reason="upscale_failed")

    assert (result.status, result.refund_amount_cents) == ("needs_attention", 0)
    error = "Stripe refused the refund: The refund could not be processed for this card."
    assert result.last_error == error
    assert log(job)[-1] == ("refund_refused", "needs_attention", {"error": error, "refund_id": ""})
    # The customer hears that the refund takes a manual step; the admins, why.
    assert recipients() == [["buyer@example.com"], ["ops@example.com"]]
    assert fake_stripe.refunds == {}


def test_a_refund_is_not_possible_for_an_unpaid_order_or_more_than_was_paid(
    make_job, paid_stripe_job, fake_stripe
):
    unpaid = make_job("awaiting_payment")
    paid = paid_stripe_job("failed")
    before = codes(paid)

    with pytest.raises(RefundNotPossible) as never_paid:
        refund(unpaid.pk, reason="x")
    with pytest.raises(RefundNotPossible) as too_much:
        refund(paid.pk, reason="x", amount_cents=193)

    assert never_paid.value.code == too_much.value.code == "refund_not_possible"
    assert str(too_much.value) == "The refund must be between $0.01 and $1.92."
    assert (PurchaseJob.objects.get(pk=paid.pk).status, codes(paid)) == ("failed", before)
    assert codes(unpaid) == []
    assert fake_stripe.requests_to("POST", "/v1/refunds") == []
    assert mail.outbox == []


# --- record_provider_refund --------------------------------------------------------------------


@pytest.fixture
def delivered(make_job):
    return make_job(
        "completed",
        amount_cents=192,
        paid_at=timezone.now(),
        email="buyer@example.com",
        payment_intent_id="pi_1",
        result_path="wagtail_smi/x/result.jpg",
    )


def test_a_partial_refund_made_in_the_dashboard_is_recorded_and_nothing_else_changes(
    delivered, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = record_provider_refund(
            delivered.pk,
            provider="stripe",
            reference="ch_1",
            refunded_total_cents=50,
            refund_id="re_1",
            full=False,
        )
        record_provider_refund(
            delivered.pk,
            provider="stripe",
            reference="ch_1",
            refunded_total_cents=50,
            refund_id="re_1",
            full=False,
        )  # same total again

    assert (first.status, first.refund_amount_cents, first.access_revoked_at) == (
        "completed",
        50,
        None,
    )
    assert log(delivered) == [
        (
            "partial_refund",
            "",
            {
                "provider": "stripe",
                "reference": "ch_1",
                "total_cents": 50,
                "currency": "usd",
            },
        )
    ]
    assert mail.outbox == []


def test_a_full_refund_made_in_the_dashboard_ends_the_order(
    delivered, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        refunded = record_provider_refund(
            delivered.pk,
            provider="stripe",
            reference="ch_1",
            refunded_total_cents=192,
            refund_id="re_9",
            full=True,
        )

    assert (refunded.status, refunded.refund_amount_cents, refunded.refund_id) == (
        "refunded",
        192,
        "re_9",
    )
    assert refunded.refund_reason == "Refunded in Stripe"
    assert refunded.access_revoked_at is not None
    assert log(delivered) == [
        (
            "refunded",
            "refunded",
            {
                "amount_cents": 192,
                "currency": "usd",
                "refund_id": "re_9",
                "reason": "Refunded in Stripe",
                "provider": "stripe",
                "reference": "ch_1",
            },
        )
    ]
    assert recipients() == [["buyer@example.com"]]


def test_a_provider_refund_before_the_payment_was_recorded_is_sent_again_later(make_job):
    unpaid = make_job("awaiting_payment")

    with pytest.raises(NotPaidYet):
        record_provider_refund(
            unpaid.pk,
            provider="stripe",
            reference="ch_1",
            refunded_total_cents=50,
            refund_id="re_1",
            full=True,
        )

    assert (PurchaseJob.objects.get(pk=unpaid.pk).status, codes(unpaid)) == ("awaiting_payment", [])


# --- record_refund_failure ---------------------------------------------------------------------


def test_a_refund_that_failed_later_no_longer_counts_and_an_admin_is_told(
    make_job, django_capture_on_commit_callbacks
):
    job = make_job(
        "refunded",
        amount_cents=192,
        paid_at=timezone.now(),
        email="buyer@example.com",
        refund_amount_cents=192,
        refund_id="re_1",
        refunded_at=timezone.now(),
    )

    with django_capture_on_commit_callbacks(execute=True):
        result = record_refund_failure(
            job.pk,
            refund_id="re_1",
            message="Stripe refund re_1 failed: lost card",
            amount_cents=192,
        )

    assert (result.status, result.refund_amount_cents, result.refund_id) == (
        "needs_attention",
        0,
        "",
    )
    assert result.last_error == "Stripe refund re_1 failed: lost card"
    assert log(job) == [
        (
            "refund_refused",
            "needs_attention",
            {
                "error": "Stripe refund re_1 failed: lost card",
                "refund_id": "re_1",
            },
        )
    ]
    assert recipients() == [["buyer@example.com"], ["ops@example.com"]]


def test_only_the_failed_part_of_several_refunds_is_taken_back(make_job):
    job = make_job(
        "refunded",
        amount_cents=192,
        paid_at=timezone.now(),
        refund_amount_cents=192,
        refund_id="re_2",
        refunded_at=timezone.now(),
    )

    result = record_refund_failure(job.pk, refund_id="re_1", message="failed", amount_cents=50)

    assert (result.status, result.refund_amount_cents, result.refund_id) == (
        "needs_attention",
        142,
        "re_2",
    )
