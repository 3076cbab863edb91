"""The dashboard: today and this month against the same stretch before, a neutral line when
no order needs attention, and a fixed cost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tests.html_support import one, select, text
from wagtail_smi.admin.dashboard import sales_figures
from wagtail_smi.models import ImageClick, PurchaseJob

pytestmark = pytest.mark.django_db

# 15 March 2026, 18:00 UTC.
NOW = datetime(2026, 3, 15, 18, tzinfo=UTC)


def paid_at(make_job, when, amount, **fields):
    job = make_job("completed", amount_cents=amount, **fields)
    PurchaseJob.objects.filter(pk=job.pk).update(paid_at=when, created_at=when)


@override_settings(TIME_ZONE="UTC")
def test_today_and_this_month_are_compared_with_the_same_stretch_before(make_job):
    paid_at(make_job, NOW - timedelta(hours=2), 500)  # today
    paid_at(make_job, NOW - timedelta(hours=3), 700, currency="eur", refund_amount_cents=300)
    paid_at(make_job, NOW - timedelta(days=1, hours=1), 400)  # yesterday, before 18:00
    paid_at(make_job, NOW - timedelta(days=1) + timedelta(hours=2), 9000)  # yesterday, later
    paid_at(make_job, datetime(2026, 3, 2, tzinfo=UTC), 1000)  # this month
    paid_at(make_job, datetime(2026, 2, 10, tzinfo=UTC), 800)  # last month, by the 15th
    paid_at(make_job, datetime(2026, 2, 20, tzinfo=UTC), 5000)  # last month, later
    ImageClick.objects.bulk_create([ImageClick(image_ref=1, page_ref=1) for _ in range(10)])
    ImageClick.objects.update(created_at=NOW - timedelta(days=3))

    figures = sales_figures(NOW)
    today, month = figures["windows"]
    assert [(r["currency"], r["net"], r["orders"]) for r in today["rows"]] == [
        ("usd", "$5.00", 1),
        ("eur", "€4.00", 1),
    ]
    # Today so far against yesterday until 18:00: 5.00 against 4.00.
    assert today["rows"][0]["delta"] == {"direction": "up", "text": "+25.0%", "previous": "$4.00"}
    # This month (5.00 + 4.00 + 90.00 + 10.00) against 1–15 February (8.00).
    assert [(r["currency"], r["net"]) for r in month["rows"]] == [
        ("usd", "$109.00"),
        ("eur", "€4.00"),
    ]
    assert month["rows"][0]["delta"]["previous"] == "$8.00"
    # The last 30 days (13 February to yesterday): 4 orders paid of those started, 10 clicks.
    assert (figures["clicks"], figures["paid"], str(figures["conversion"])) == (10, 4, "40.0")


def test_nothing_to_do_is_said_plainly_without_a_warning(manager_client, make_job):
    make_job("completed")
    home = manager_client.get(reverse("wagtailadmin_home"))
    item = one(home, "li.smi-summary")
    assert text(item) == "No orders need attention"
    assert "smi-summary--calm" in item["class"]
    assert not item.select("use[href='#icon-warning'], svg.icon-warning")
    assert one(item, "[data-smi-needs-attention]")["data-smi-needs-attention"] == "0"


def test_orders_that_need_attention_are_a_warning_linking_to_them(manager_client, make_job):
    make_job("needs_attention")
    home = manager_client.get(reverse("wagtailadmin_home"))
    item = one(home, "li.smi-summary")
    assert item.select("svg.icon-warning")
    link = one(item, "a[data-smi-needs-attention]")
    assert link["href"] == reverse("smi_orders:list") + "?status=needs_attention"
    assert text(link) == "1 order that needs attention"


def test_dashboard_shows_the_panel_at_a_fixed_cost(manager_client, make_job):
    make_job("completed", paid_at=timezone.now(), amount_cents=500)
    manager_client.get(reverse("wagtailadmin_home"))
    with CaptureQueriesContext(connection) as few:
        home = manager_client.get(reverse("wagtailadmin_home"))
    assert [text(w, "h3") for w in select(home, ".smi-dashboard__window")] == [
        "Today",
        "This month",
        "Last 30 days",
    ]
    assert "$5.00" in text(home, "[data-window=today]")
    for _ in range(10):
        make_job("needs_attention", paid_at=timezone.now(), amount_cents=500)
    with CaptureQueriesContext(connection) as many:
        html = manager_client.get(reverse("wagtailadmin_home")).content.decode()
    assert "$55.00" in html and 'data-smi-needs-attention="10"' in html
    assert len(few.captured_queries) == len(many.captured_queries)
