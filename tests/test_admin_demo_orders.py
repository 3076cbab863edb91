"""The demo's sample orders: idempotent, consistent with the state machine, reportable."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from wagtail_smi.models import ImageClick, JobEvent, PurchaseJob
from wagtail_smi.workflow import is_allowed

pytestmark = pytest.mark.django_db


def run(name):
    call_command(name, stdout=io.StringIO())


def test_demo_orders_are_idempotent_and_follow_the_state_machine(manager_client):
    run("smi_demo_content")
    run("smi_demo_orders")
    counts = (PurchaseJob.objects.count(), ImageClick.objects.count(), JobEvent.objects.count())
    run("smi_demo_orders")
    assert (
        PurchaseJob.objects.count(),
        ImageClick.objects.count(),
        JobEvent.objects.count(),
    ) == counts
    assert counts[0] > 50 and counts[1] > counts[0]
    for event in JobEvent.objects.all():
        assert is_allowed(event.from_status, event.to_status), event
    for job in PurchaseJob.objects.prefetch_related("events"):
        last = list(job.events.all())[-1:] or None
        assert (last[0].to_status if last else "awaiting_payment") == job.status
    assert set(PurchaseJob.objects.values_list("currency", flat=True)) == {"usd", "eur"}
    for name in ("revenue", "images", "funnel"):
        assert manager_client.get(reverse(f"wagtail_smi_reports:{name}")).status_code == 200


def test_demo_orders_need_the_demo_content():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        run("smi_demo_orders")
