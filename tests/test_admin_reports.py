"""Report figures against hand-computed fixtures; currencies apart; site time zone; cost."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from wagtail_smi.models import ImageClick, PurchaseJob

pytestmark = pytest.mark.django_db


def at(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def job_at(make_job, status, *, created, paid=None, **fields):
    job = make_job(status, **fields)
    PurchaseJob.objects.filter(pk=job.pk).update(created_at=created, paid_at=paid)
    return job


def clicks(image_ref, page_ref, count, when):
    ImageClick.objects.bulk_create(
        [ImageClick(image_ref=image_ref, page_ref=page_ref) for _ in range(count)]
    )
    ImageClick.objects.filter(image_ref=image_ref, page_ref=page_ref).update(created_at=when)


@pytest.fixture
def revenue_orders(make_job):
    """Hand-computed: see the expected figures in each test."""
    job_at(
        make_job,
        "completed",
        created=at(2026, 1, 10, 4, 0),
        paid=at(2026, 1, 10, 4, 30),
        amount_cents=500,
        email="a@example.com",
    )
    job_at(
        make_job,
        "refunded",
        created=at(2026, 1, 10, 5, 0),
        paid=at(2026, 1, 10, 5, 30),
        amount_cents=1000,
        refund_amount_cents=1000,
        upscale_cost_cents=100,
        email="b@example.com",
    )
    job_at(
        make_job,
        "completed",
        created=at(2026, 1, 10, 11, 0),
        paid=at(2026, 1, 10, 12, 0),
        amount_cents=700,
        currency="eur",
        upscale_cost_cents=50,
        email="c@example.com",
    )
    job_at(
        make_job,
        "awaiting_payment",
        created=at(2026, 1, 10, 13, 0),
        amount_cents=300,
        email="d@example.com",
    )
    job_at(
        make_job,
        "completed",
        created=at(2026, 1, 10, 14, 0),
        paid=at(2026, 1, 10, 15, 0),
        amount_cents=200,
        upscale_cost_cents=20,
        email="b@example.com",
    )


def figures(row):
    keys = (
        "period_label",
        "currency",
        "revenue",
        "refunds",
        "cost",
        "profit",
        "margin",
        "orders",
        "aov",
        "customers",
    )
    return tuple(row[key] for key in keys)


@override_settings(TIME_ZONE="America/New_York")
def test_revenue_per_day_in_site_time_zone_keeps_currencies_apart(manager_client, revenue_orders):
    response = manager_client.get(reverse("wagtail_smi_reports:revenue"))
    assert response.status_code == 200
    rows = [figures(row) for row in response.context["object_list"]]
    # 04:30 UTC on the 10th is 23:30 on the 9th in New York.
    assert rows == [
        ("2026-01-10", "eur", 700, 0, 50, 650, Decimal("92.9"), 1, 700, 1),
        ("2026-01-10", "usd", 1200, 1000, 120, 80, Decimal("40.0"), 2, 600, 1),
        ("2026-01-09", "usd", 500, 0, 0, 500, Decimal("100.0"), 1, 500, 1),
    ]
    totals = {row["currency"]: figures(row) for row in response.context["totals"]}
    assert totals == {
        "eur": ("Total", "eur", 700, 0, 50, 650, Decimal("92.9"), 1, 700, 1),
        # 1700 / 3 = 566.67 → 567; margin 580 / 700 = 82.857 → 82.9 %.
        "usd": ("Total", "usd", 1700, 1000, 120, 580, Decimal("82.9"), 3, 567, 2),
    }
    html = response.content.decode()
    assert "$17.00" in html and "€7.00" in html
    assert "<svg" in html and '<title id="smi-revenue-usd-title">' in html


@override_settings(TIME_ZONE="UTC")
def test_revenue_day_boundary_moves_with_the_time_zone(manager_client, revenue_orders):
    response = manager_client.get(reverse("wagtail_smi_reports:revenue"))
    labels = [
        (row["period_label"], row["currency"], row["revenue"])
        for row in response.context["object_list"]
    ]
    assert labels == [("2026-01-10", "eur", 700), ("2026-01-10", "usd", 1700)]


@override_settings(TIME_ZONE="America/New_York")
def test_revenue_date_filter_uses_site_days(manager_client, revenue_orders):
    response = manager_client.get(
        reverse("wagtail_smi_reports:revenue"), {"paid_at_from": "2026-01-10", "period": "month"}
    )
    rows = [figures(row) for row in response.context["object_list"]]
    assert rows == [
        ("2026-01", "eur", 700, 0, 50, 650, Decimal("92.9"), 1, 700, 1),
        ("2026-01", "usd", 1200, 1000, 120, 80, Decimal("40.0"), 2, 600, 1),
    ]


@override_settings(TIME_ZONE="UTC")
def test_revenue_per_week_uses_iso_weeks(manager_client, make_job):
    # Sunday 2026-01-11 and Monday 2026-01-12 fall in ISO weeks 2 and 3.
    job_at(
        make_job,
        "completed",
        created=at(2026, 1, 11, 12),
        paid=at(2026, 1, 11, 12),
        amount_cents=100,
    )
    job_at(
        make_job,
        "completed",
        created=at(2026, 1, 12, 12),
        paid=at(2026, 1, 12, 12),
        amount_cents=200,
    )
    response = manager_client.get(reverse("wagtail_smi_reports:revenue"), {"period": "week"})
    assert [(r["period_label"], r["revenue"]) for r in response.context["object_list"]] == [
        ("2026-W03", 200),
        ("2026-W02", 100),
    ]


@override_settings(TIME_ZONE="America/New_York")
def test_revenue_export_has_major_units_and_totals(manager_client, revenue_orders):
    response = manager_client.get(reverse("wagtail_smi_reports:revenue"), {"export": "csv"})
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:4] == ["Period", "Currency", "Revenue", "Refunds"]
    assert ["2026-01-10", "usd", "12.00", "10.00", "1.20", "0.80", "40.0", "2", "6.00", "1"] in rows
    assert ["Total", "usd", "17.00", "10.00", "1.20", "5.80", "82.9", "3", "5.67", "2"] in rows


def test_images_report_clicks_purchases_conversion_and_top_resolution(
    manager_client, make_job, make_image, site
):
    when = at(2026, 2, 1, 12)
    best, other, unsold = (
        make_image(title="Best"),
        make_image(title="Other"),
        make_image(title="Unsold"),
    )
    page = site.root_page
    for amount, factor in ((500, 4), (500, 4), (1900, 8)):
        job_at(
            make_job,
            "completed",
            image=best,
            created=when,
            paid=when,
            amount_cents=amount,
            factor=factor,
            upscale_cost_cents=10,
        )
    job_at(make_job, "awaiting_payment", image=best, created=when, amount_cents=1900, factor=8)
    job_at(
        make_job,
        "refunded",
        image=other,
        created=when,
        paid=when,
        amount_cents=300,
        refund_amount_cents=300,
        currency="gbp",
    )
    clicks(best.pk, page.pk, 6, when)
    clicks(other.pk, page.pk, 4, when)
    clicks(unsold.pk, page.pk, 2, when)

    response = manager_client.get(reverse("wagtail_smi_reports:images"), {"ordering": "-clicks"})
    assert response.status_code == 200
    rows = [
        (
            r["title"],
            r["currency"],
            r["clicks"],
            r["purchases"],
            r["conversion"],
            r["revenue"],
            r["profit"],
            r["top_resolution"],
        )
        for r in response.context["object_list"]
    ]
    assert rows == [
        ("Best", "usd", 6, 3, Decimal("50.0"), 2900, 2870, "4x"),
        ("Other", "gbp", 4, 1, Decimal("25.0"), 300, 0, "4x"),
        ("Unsold", "", 2, 0, Decimal("0.0"), 0, 0, ""),
    ]
    by_revenue = manager_client.get(reverse("wagtail_smi_reports:images"), {"ordering": "revenue"})
    assert [r["title"] for r in by_revenue.context["object_list"]] == ["Unsold", "Other", "Best"]

    per_page = manager_client.get(reverse("wagtail_smi_reports:images"), {"group": "page"})
    [usd] = [r for r in per_page.context["object_list"] if r["currency"] == "usd"]
    assert (usd["ref"], usd["clicks"], usd["purchases"], usd["revenue"]) == (page.pk, 12, 3, 2900)


def test_images_report_date_filter_limits_clicks_and_orders(
    manager_client, make_job, make_image, site
):
    image = make_image(title="Dated")
    job_at(
        make_job,
        "completed",
        image=image,
        created=at(2026, 3, 1, 12),
        paid=at(2026, 3, 1, 12),
        amount_cents=500,
    )
    job_at(
        make_job,
        "completed",
        image=image,
        created=at(2026, 3, 5, 12),
        paid=at(2026, 3, 5, 12),
        amount_cents=700,
    )
    clicks(image.pk, site.root_page.pk, 3, at(2026, 3, 1, 12))
    response = manager_client.get(
        reverse("wagtail_smi_reports:images"),
        {"created_at_from": "2026-03-01", "created_at_to": "2026-03-02"},
    )
    [row] = response.context["object_list"]
    assert (row["clicks"], row["purchases"], row["revenue"]) == (3, 1, 500)


def test_funnel_counts_stages_rates_and_popular_resolutions(
    manager_client, make_job, make_image, site
):
    when = at(2026, 4, 1, 12)
    image = make_image()
    clicks(image.pk, site.root_page.pk, 10, when)
    job_at(make_job, "completed", image=image, created=when, paid=when, factor=4)
    job_at(make_job, "completed", image=image, created=when, paid=when, factor=4)
    refunded = job_at(make_job, "refunded", image=image, created=when, paid=when, factor=8)
    PurchaseJob.objects.filter(pk=refunded.pk).update(completed_at=when, refunded_at=when)
    PurchaseJob.objects.filter(status="completed").update(completed_at=when)
    job_at(make_job, "abandoned", image=image, created=when, factor=8)
    job_at(make_job, "awaiting_payment", image=image, created=when, factor=4)

    response = manager_client.get(reverse("wagtail_smi_reports:funnel"))
    stages = [
        (r["stage"], r["count"], r["of_previous"], r["of_first"])
        for r in response.context["object_list"]
    ]
    assert stages == [
        ("Clicks", 10, None, Decimal("100.0")),
        ("Checkouts started", 5, Decimal("50.0"), Decimal("50.0")),
        ("Paid", 3, Decimal("60.0"), Decimal("30.0")),
        ("Delivered", 3, Decimal("100.0"), Decimal("30.0")),
    ]
    f = response.context["figures"]
    assert (f["abandonment_rate"], f["refund_rate"]) == (Decimal("40.0"), Decimal("33.3"))
    assert [
        (r["resolution"], r["started"], r["paid"]) for r in response.context["popular_resolutions"]
    ] == [
        ("4x", 3, 2),
        ("8x", 2, 1),
    ]
    assert "<svg" in response.content.decode()


def _queries(client, url, params=None) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url, params or {})
        assert response.status_code == 200
        if hasattr(response, "streaming_content"):
            b"".join(response.streaming_content)
    return len(ctx.captured_queries)


def _orders(make_job, make_image, site, count: int, image_pool):
    when = at(2026, 5, 1, 12)
    for i in range(count):
        image = image_pool[i % len(image_pool)]
        job_at(
            make_job,
            "completed",
            image=image,
            created=when,
            paid=when,
            amount_cents=500 + i,
            currency=("usd", "eur")[i % 2],
            email=f"c{i}@example.com",
        )
    clicks(image_pool[0].pk, site.root_page.pk, count, when)


@pytest.mark.parametrize(
    "name,params",
    [
        ("revenue", {}),
        ("revenue", {"export": "csv"}),
        ("revenue", {"period": "month"}),
        ("images", {}),
        ("images", {"group": "page", "export": "xlsx"}),
        ("funnel", {}),
    ],
)
def test_report_query_count_does_not_grow_with_orders(
    manager_client, make_job, make_image, site, name, params
):
    images = [make_image(title=f"Pool {i}") for i in range(3)]
    unsold = make_image(title="Clicked only")
    clicks(unsold.pk, site.root_page.pk, 1, at(2026, 5, 1, 12))
    url = reverse(f"wagtail_smi_reports:{name}")
    _orders(make_job, make_image, site, 3, images)
    _queries(manager_client, url, params)  # warm caches (site settings, content types)
    few = _queries(manager_client, url, params)
    _orders(make_job, make_image, site, 40, images)
    many = _queries(manager_client, url, params)
    assert few == many
    assert many < 20
