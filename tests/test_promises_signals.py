"""Extension signals: ``order_paid``, ``order_completed``, ``order_refunded`` and
``order_needs_attention`` reach a site's receivers once the change has committed, with the
order, whichever path made the change; a rolled-back change announces nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from wagtail_smi.models import PurchaseJob
from wagtail_smi.operations import mark_paid, process_job, refund, resolve_by_hand, retry
from wagtail_smi.operations.resolution import DELIVERED_BY_HAND
from wagtail_smi.signals import (
    order_completed,
    order_needs_attention,
    order_paid,
    order_refunded,
)

pytestmark = pytest.mark.django_db

SIGNALS = {
    "paid": order_paid,
    "completed": order_completed,
    "refunded": order_refunded,
    "needs_attention": order_needs_attention,
}


@pytest.fixture
def heard():
    """What a site's receivers hear: ``(signal name, order id, the order's status then)``."""
    received: list[tuple[str, str, str]] = []
    receivers = {}
    for name, signal in SIGNALS.items():

        def receiver(sender, order, _name=name, **kwargs):
            assert sender is PurchaseJob
            received.append((_name, str(order.pk), order.status))

        receivers[name] = receiver
        signal.connect(receiver)
    yield received
    for name, signal in SIGNALS.items():
        signal.disconnect(receivers[name])


@pytest.mark.django_db(transaction=True)
def test_a_payment_is_announced_after_the_commit(make_job, heard, queued):
    job = make_job(email="b@example.com")

    with transaction.atomic():
        mark_paid(job.pk, provider="dummy")
        assert heard == []  # not while the change may still be rolled back

    assert heard == [("paid", str(job.pk), "paid")]


def test_a_rolled_back_change_announces_nothing(make_job, heard, queued):
    job = make_job(email="b@example.com")

    with pytest.raises(RuntimeError), transaction.atomic():
        mark_paid(job.pk, provider="dummy")
        raise RuntimeError("the request failed after all")

    assert heard == []
    assert PurchaseJob.objects.get(pk=job.pk).status == "awaiting_payment"


def test_the_pipeline_announces_delivery(make_job, heard, django_capture_on_commit_callbacks):
    job = make_job("paid", paid_at=timezone.now(), email="b@example.com")

    with django_capture_on_commit_callbacks(execute=True):
        process_job(job.pk)  # the local upscaler, in-process

    assert heard == [("completed", str(job.pk), "completed")]


def test_needing_an_admin_then_being_refunded_are_announced(
    make_job, heard, queued, django_capture_on_commit_callbacks
):
    job = make_job(
        "processing",
        paid_at=timezone.now() - timedelta(hours=2),
        deadline_at=timezone.now() - timedelta(minutes=1),
        payment_provider="dummy",
    )
    with django_capture_on_commit_callbacks(execute=True):
        process_job(job.pk)
    with django_capture_on_commit_callbacks(execute=True):
        refund(job.pk, reason="Customer asked")

    assert heard == [
        ("needs_attention", str(job.pk), "needs_attention"),
        ("refunded", str(job.pk), "refunded"),
    ]


def test_an_admin_retry_is_not_a_payment_but_a_delivery_by_hand_is_a_completion(
    make_job, heard, queued, django_capture_on_commit_callbacks
):
    job = make_job("needs_attention", paid_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        retry(job.pk)
    other = make_job("needs_attention", paid_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        resolve_by_hand(other.pk, outcome=DELIVERED_BY_HAND, details="sent by hand")

    assert heard == [("completed", str(other.pk), "completed")]


@pytest.mark.django_db(transaction=True)
def test_a_failing_receiver_stops_neither_the_others_nor_the_order(make_job, heard, queued, caplog):
    def broken(sender, order, **kwargs):
        raise ValueError("the CRM is down")

    order_paid.connect(broken)
    try:
        job = make_job(email="b@example.com")
        with transaction.atomic():
            mark_paid(job.pk, provider="dummy")
    finally:
        order_paid.disconnect(broken)

    assert heard == [("paid", str(job.pk), "paid")]
    assert PurchaseJob.objects.get(pk=job.pk).status == "paid"
    assert "the CRM is down" in caplog.text
