"""Every customer hears what happens: a receipt at payment, a "taking longer" email when an
order goes to an admin, an automatic refund (with its email) when a paid order is still not
delivered a day later unless an admin has taken it in hand; and every email, to a customer
or to the admins, is noted on the order."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from django.core import mail
from django.test import override_settings
from django.utils import timezone

from tests.operations_support import codes, emails_logged, event
from tests.stripe_fixtures import deliver, open_checkout
from wagtail_smi import emails, links
from wagtail_smi.models import PurchaseJob
from wagtail_smi.operations import (
    NotAllowed,
    mark_paid,
    process_job,
    refund,
    retry,
    sweep,
    take_in_hand,
)

pytestmark = pytest.mark.django_db


def ago(**delta):
    return timezone.now() - timedelta(**delta)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def unpaid(make_job, make_image):
    def factory(**fields):
        image = make_image(2000, 1500, title="Fish & Chips")
        values = {"email": "buyer@example.com", "amount_cents": 576, "factor": 8}
        return make_job("awaiting_payment", image=image, **{**values, **fields})

    return factory


# --- the receipt ---------------------------------------------------------------------------------


def test_payment_sends_one_receipt_saying_what_was_bought_paid_and_what_comes_next(
    unpaid, queued, django_capture_on_commit_callbacks
):
    job = unpaid()
    with django_capture_on_commit_callbacks(execute=True):
        mark_paid(job.pk, provider="stripe", reference="cs_1", discount_cents=100)
    job.refresh_from_db()

    [receipt] = mail.outbox
    assert receipt.to == ["buyer@example.com"]
    assert receipt.subject == f"Your receipt for order {job.short_id}"
    body = receipt.body
    assert "Image: Fish & Chips" in body  # the plain text part is not HTML-escaped
    assert "Resolution: 8x (16000 × 12000 px)" in body
    assert "Price: $5.76" in body and "Discount: −$1.00" in body and "Paid: $4.76" in body
    assert links.order_url(job) in body
    assert "A second email will bring your download link" in body
    refund_by = str(emails.format_expiry(job.paid_at + timedelta(hours=24)))
    assert f"If we cannot deliver it by {refund_by}, we refund you in full" in body
    html = receipt.alternatives[0][0]
    assert "Fish &amp; Chips" in html and "$4.76" in html and links.order_url(job) in html
    assert emails_logged(job) == [("email_sent", "receipt")]

    # A replayed payment changes nothing, and sends nothing.
    with django_capture_on_commit_callbacks(execute=True):
        assert mark_paid(job.pk, provider="stripe", reference="cs_1") is None
    assert len(mail.outbox) == 1


def test_a_stripe_payment_sends_the_receipt_to_the_address_stripe_reports(
    client, fake_stripe, stripe_settings, make_job, enqueued, django_capture_on_commit_callbacks
):
    job = open_checkout(make_job(factor=8, amount_cents=192, email=""))
    _, payload, signature = fake_stripe.complete_session(
        job.checkout_session_id, email="payer@example.com"
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert deliver(client, payload, signature).status_code == 200

    [receipt] = mail.outbox
    assert receipt.to == ["payer@example.com"]
    assert "Paid: $1.92" in receipt.body and "Discount" not in receipt.body
    assert enqueued == [str(job.pk)]


def test_without_an_automatic_refund_the_receipt_promises_none(
    unpaid, queued, django_capture_on_commit_callbacks
):
    job = unpaid()
    with override_settings(WAGTAIL_SMI={"AUTO_REFUND_AFTER_HOURS": None}):
        with django_capture_on_commit_callbacks(execute=True):
            mark_paid(job.pk, provider="dummy")
    [receipt] = mail.outbox
    assert "refund" not in receipt.body


def test_an_email_that_cannot_be_sent_is_noted_on_the_order_and_the_payment_stands(
    unpaid, queued, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", closed_port(), 5
    job = unpaid()

    with django_capture_on_commit_callbacks(execute=True):
        mark_paid(job.pk, provider="dummy")

    assert PurchaseJob.objects.get(pk=job.pk).status == "paid"
    failed = event(job, "email_failed")
    assert failed.data["email"] == "receipt"
    assert failed.data["problem"].startswith("ConnectionRefusedError")


# --- taking longer -----------------------------------------------------------------------------


@pytest.fixture
def late(make_job, settings):
    """A paid order processing past its deadline (the local upscaler never got to it)."""
    settings.ADMINS = [("Ops", "ops@example.com")]

    def factory(**fields):
        return make_job(
            "processing",
            paid_at=ago(hours=2),
            deadline_at=ago(minutes=1),
            email="buyer@example.com",
            payment_provider="dummy",
            **fields,
        )

    return factory


def test_an_order_that_goes_to_an_admin_tells_the_customer_what_happens_next(
    late, queued, django_capture_on_commit_callbacks
):
    job = late()
    with django_capture_on_commit_callbacks(execute=True):
        process_job(job.pk)
    job.refresh_from_db()

    assert job.status == "needs_attention"
    alert, told = mail.outbox
    assert alert.to == ["ops@example.com"]
    assert told.to == ["buyer@example.com"]
    assert told.subject == f"Your order {job.short_id} is taking longer than usual"
    assert "Our team has been told and is looking into it" in told.body
    assert "as soon as your image is ready, you will get an email" in told.body
    refund_by = str(emails.format_expiry(job.paid_at + timedelta(hours=24)))
    assert f"If we cannot deliver it by {refund_by}, we refund you in full" in told.body
    assert links.order_url(job) in told.body
    assert job.delay_emailed_at is not None
    assert emails_logged(job) == [("email_sent", "admin_alert"), ("email_sent", "taking_longer")]


def test_the_customer_hears_of_a_delay_once_per_order(
    late, queued, django_capture_on_commit_callbacks
):
    job = late()
    with django_capture_on_commit_callbacks(execute=True):
        process_job(job.pk)
        retry(job.pk)
    PurchaseJob.objects.filter(pk=job.pk).update(
        status="processing", deadline_at=ago(minutes=1), next_attempt_at=None
    )
    with django_capture_on_commit_callbacks(execute=True):
        process_job(job.pk)

    assert PurchaseJob.objects.get(pk=job.pk).status == "needs_attention"
    assert [m.to for m in mail.outbox] == [
        ["ops@example.com"],
        ["buyer@example.com"],
        ["ops@example.com"],
    ]


def test_a_refund_that_needs_a_hand_is_explained_as_such(
    paid_stripe_job, fake_stripe, django_capture_on_commit_callbacks
):
    job = paid_stripe_job("failed")
    fake_stripe.refund_mode = "refuse"
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        refund(job.pk, reason="upscale_failed")

    [told] = [m for m in mail.outbox if m.to == ["buyer@example.com"]]
    assert "the refund needs a manual step on our side" in told.body
    assert "refund you in full, automatically" not in told.body


# --- the automatic refund ------------------------------------------------------------------------


@pytest.fixture
def overdue(make_job):
    """Paid 25 hours ago and still not delivered: waiting for an admin since."""

    def factory(status="needs_attention", **fields):
        return make_job(
            status,
            paid_at=ago(hours=25),
            email="buyer@example.com",
            payment_provider="dummy",
            delay_emailed_at=ago(hours=24),
            **fields,
        )

    return factory


def test_a_paid_order_not_delivered_in_time_is_refunded_with_its_email(
    overdue, django_capture_on_commit_callbacks
):
    job = overdue()
    with django_capture_on_commit_callbacks(execute=True):
        counts = sweep()
    job.refresh_from_db()

    assert counts["auto_refunds"] == 1
    assert job.status == "refunded" and job.refund_amount_cents == 50
    assert job.refund_reason == "not_delivered_in_time"
    assert job.auto_refund_started_at is not None
    assert codes(job)[-2:] == ["auto_refund", "refunded"]
    [notice] = mail.outbox
    assert notice.to == ["buyer@example.com"]
    assert "We could not deliver it within the time we promised" in notice.body
    assert "We have refunded $0.50" in notice.body

    with django_capture_on_commit_callbacks(execute=True):
        assert sweep()["auto_refunds"] == 0
    assert len(mail.outbox) == 1


def test_a_late_order_still_in_the_pipeline_leaves_it_before_the_refund(
    overdue, django_capture_on_commit_callbacks
):
    job = overdue("processing", next_attempt_at=timezone.now() + timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=True):
        sweep()
    job.refresh_from_db()
    assert job.status == "refunded"
    assert codes(job)[-3:] == ["auto_refund", "refund_started", "refunded"]


def test_an_order_younger_than_the_limit_or_already_delivered_is_left_alone(
    overdue, make_job, django_capture_on_commit_callbacks
):
    young = make_job("needs_attention", paid_at=ago(hours=23), payment_provider="dummy")
    delivered = overdue("completed")
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep()["auto_refunds"] == 0
    assert PurchaseJob.objects.get(pk=young.pk).status == "needs_attention"
    assert PurchaseJob.objects.get(pk=delivered.pk).status == "completed"


def test_the_limit_is_a_setting_and_none_turns_it_off(overdue, django_capture_on_commit_callbacks):
    job = overdue()
    with override_settings(WAGTAIL_SMI={"AUTO_REFUND_AFTER_HOURS": None}):
        with django_capture_on_commit_callbacks(execute=True):
            assert sweep()["auto_refunds"] == 0
    with override_settings(WAGTAIL_SMI={"AUTO_REFUND_AFTER_HOURS": 48}):
        with django_capture_on_commit_callbacks(execute=True):
            assert sweep()["auto_refunds"] == 0
    assert PurchaseJob.objects.get(pk=job.pk).status == "needs_attention"


def test_an_order_taken_in_hand_is_not_refunded_automatically(
    overdue, sales_manager, django_capture_on_commit_callbacks
):
    job = overdue()

    taken = take_in_hand(job.pk, sales_manager)
    again = take_in_hand(job.pk, actor=None)

    assert taken.taken_in_hand_by == sales_manager and taken.taken_in_hand_at is not None
    assert again.taken_in_hand_at == taken.taken_in_hand_at  # once is enough
    assert event(job, "taken_in_hand").actor == sales_manager
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep()["auto_refunds"] == 0
    assert PurchaseJob.objects.get(pk=job.pk).status == "needs_attention"


@pytest.mark.parametrize("status", ["awaiting_payment", "completed", "refunded", "failed"])
def test_only_a_paid_undelivered_order_can_be_taken_in_hand(make_job, status):
    job = make_job(status, paid_at=timezone.now())
    with pytest.raises(NotAllowed):
        take_in_hand(job.pk)
    assert PurchaseJob.objects.get(pk=job.pk).taken_in_hand_at is None
