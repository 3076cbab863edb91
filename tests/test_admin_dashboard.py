"""The dashboard panel's last-30-days figures, and its fixed cost."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from wagtail_smi.admin.dashboard import last_days_figures
from wagtail_smi.models import ImageClick

pytestmark = pytest.mark.django_db


def test_last_30_days_counts_paid_orders_per_currency_and_conversion(make_job):
    now = timezone.now()
    make_job("completed", paid_at=now - timedelta(days=1), amount_cents=500)
    make_job(
        "refunded", paid_at=now - timedelta(days=29), amount_cents=192, refund_amount_cents=192
    )
    make_job("completed", paid_at=now - timedelta(days=2), amount_cents=700, currency="eur")
    make_job("completed", paid_at=now - timedelta(days=31), amount_cents=9999)  # too old
    make_job("awaiting_payment", amount_cents=300)  # never paid
    ImageClick.objects.bulk_create([ImageClick(image_ref=1, page_ref=1) for _ in range(12)])

    figures = last_days_figures()
    assert [(r["currency"], r["revenue"], r["display"]) for r in figures["revenue"]] == [
        ("eur", 700, "€7.00"),
        ("usd", 692, "$6.92"),
    ]
    assert (figures["orders"], figures["clicks"], str(figures["conversion"])) == (3, 12, "25.0")


def test_dashboard_shows_the_panel_at_a_fixed_cost(manager_client, make_job):
    make_job("completed", paid_at=timezone.now(), amount_cents=500)
    manager_client.get(reverse("wagtailadmin_home"))
    with CaptureQueriesContext(connection) as few:
        html = manager_client.get(reverse("wagtailadmin_home")).content.decode()
    assert "Sales in the last 30 days" in html and "$5.00" in html
    for _ in range(10):
        make_job("needs_attention", paid_at=timezone.now(), amount_cents=500)
    with CaptureQueriesContext(connection) as many:
        html = manager_client.get(reverse("wagtailadmin_home")).content.decode()
    assert "$55.00" in html and 'data-smi-needs-attention="10"' in html
    assert len(few.captured_queries) == len(many.captured_queries)
