"""The reports' daily rollups: every figure read with them equals the live tables' own,
before and after a refresh, when orders and clicks change in between, and when the time
zone changes; the orders table keeps only the indexes its queries use."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from wagtail_smi import analytics
from wagtail_smi.models import (
    ImageClick,
    JobStatus,
    PurchaseJob,
    ReportCustomer,
    ReportRollup,
    RollupState,
)
from wagtail_smi.operations.maintenance import sweep

pytestmark = pytest.mark.django_db

NOW = timezone.now()
ZONE = "Europe/Paris"


def at(days: int, hours: int = 0):
    """``days`` ago (and ``hours`` later), at 10:00 in the report zone."""
    local = timezone.localtime(NOW, timezone.get_default_timezone())
    moment = local.replace(hour=10, minute=0, second=0, microsecond=0)
    return moment - timedelta(days=days) + timedelta(hours=hours)


def click(image, page, moment) -> ImageClick:
    found = ImageClick.objects.create(image_ref=image.pk, page_ref=page.pk, site_ref=1)
    ImageClick.objects.filter(pk=found.pk).update(created_at=moment)
    return found


def order(make_job, status, created, *, paid=None, **fields) -> PurchaseJob:
    job = make_job(status, paid_at=paid, **fields)
    PurchaseJob.objects.filter(pk=job.pk).update(created_at=created, updated_at=created)
    return job


@pytest.fixture
def shop(settings, make_job, make_image, site):
    """Orders and clicks over forty days: three currencies, two licences, two images,
    full and partial refunds, abandoned checkouts, a customer on several days under two
    spellings of one address, a payment the day after its checkout."""
    settings.TIME_ZONE = ZONE
    first, second = make_image(1000, 1000), make_image(800, 600)
    page = site.root_page
    plan = [
        # days ago, status, currency, amount, refund, licence, email, image, factor
        (40, "completed", "usd", 500, 0, "personal", "Ann@example.com", first, 2),
        (33, "completed", "usd", 700, 700, "commercial", "ann@example.com", second, 4),
        (20, "refunded", "eur", 900, 300, "commercial", "bob@example.com", first, 4),
        (9, "completed", "jpy", 1200, 0, "", "cy@example.com", second, 2),
        (9, "completed", "usd", 500, 0, "personal", "bob@example.com", first, 2),
        (3, "completed", "eur", 450, 0, "personal", "", second, 4),
        (1, "completed", "usd", 650, 50, "commercial", "ANN@example.com", first, 4),
        (0, "completed", "usd", 300, 0, "personal", "dee@example.com", second, 2),
    ]
    jobs = []
    for days, status, currency, amount, refund, licence, email, image, factor in plan:
        jobs.append(
            order(
                make_job,
                status,
                at(days),
                paid=at(days, hours=1),
                currency=currency,
                amount_cents=amount,
                discount_cents=50 if days == 9 else 0,
                upscale_cost_cents=amount // 10,
                refund_amount_cents=refund,
                refunded_at=at(days, hours=2) if refund else None,
                completed_at=at(days, hours=1),
                licence_key=licence,
                licence_name=licence.title(),
                email=email,
                image=image,
                factor=factor,
            )
        )
    for days in (30, 12, 2):
        order(make_job, JobStatus.ABANDONED, at(days), abandoned_at=at(days, 2), image=first)
    # Checkout started late one day, paid the next morning.
    late = at(6).replace(hour=23, minute=50)
    jobs.append(
        order(
            make_job,
            "completed",
            late,
            paid=late + timedelta(minutes=20),
            amount_cents=800,
            email="eve@example.com",
            licence_key="personal",
            licence_name="Personal, renamed",
            image=second,
            factor=2,
        )
    )
    for days in (41, 33, 33, 20, 9, 6, 1, 0):
        click(first, page, at(days))
        click(second, page, at(days, hours=3))
    return {"jobs": jobs, "images": (first, second), "page": page}


def periods():
    found = [
        analytics.resolve_period(key, now=NOW)
        for key in ("all", "today", "last-7-days", "last-30-days", "this-month", "last-month")
    ]
    local_today = timezone.localtime(NOW, timezone.get_default_timezone()).date()
    found.append(analytics.resolve_period(start=local_today - timedelta(days=35), now=NOW))
    found.append(
        analytics.resolve_period(
            start=local_today - timedelta(days=21), end=local_today - timedelta(days=2), now=NOW
        )
    )
    return found


def everything() -> list:
    """Every report function's output over every period, as plain data."""
    out = []
    for period in periods():
        out.append(("totals", period.key, analytics.totals(period)))
        out.append(("compare", period.key, analytics.compare(period)))
        for granularity in ("day", "week", "month"):
            found = analytics.series(period, granularity)
            out.append(("series", period.key, granularity, found.buckets, found.by_currency))
        for name in analytics.BREAKDOWNS:
            out.append(("breakdown", period.key, name, analytics.breakdown(period, name)))
        for group in ("image", "page"):
            for ordering in ("-net", "clicks", "title"):
                found = analytics.items(period, group, ordering)
                rows = [item.as_row() for item in found.rows]
                out.append(("items", period.key, group, ordering, found.currencies, rows))
        out.append(("funnel", period.key, asdict(analytics.funnel(period))))
        out.append(("funnel_resolutions", period.key, analytics.funnel_resolutions(period)))
    return out


def live() -> list:
    with analytics.live_tables():
        return everything()


def test_every_report_equals_the_live_tables_once_rolled_up(shop):
    expected = live()

    days = analytics.refresh_rollups(NOW)

    assert days >= 40
    assert ReportRollup.objects.exists() and ReportCustomer.objects.exists()
    assert everything() == expected
    usd = analytics.totals(analytics.resolve_period("all", now=NOW))["usd"]
    assert usd.customers == 4  # Ann (three spellings, three days), Bob, Dee, Eve
    assert usd.refunds == 750  # a full and a partial refund


def test_the_reports_read_the_rollups_for_whole_past_days(shop):
    analytics.refresh_rollups(NOW)
    period = analytics.resolve_period("all", now=NOW)
    before = analytics.totals(period)["usd"]

    ReportRollup.objects.filter(currency="usd", orders__gt=0).update(sales=F("sales") + 1000)

    after = analytics.totals(period)["usd"]
    assert after.sales > before.sales  # the sums came from the rollup rows
    with analytics.live_tables():
        assert analytics.totals(period)["usd"].sales == before.sales


def test_changes_since_the_refresh_show_at_once_and_after_the_next(shop):
    analytics.refresh_rollups(NOW)
    second = shop["images"][1]
    old = shop["jobs"][0]  # paid forty days ago
    PurchaseJob.objects.filter(pk=old.pk).update(
        refund_amount_cents=200, refunded_at=NOW, updated_at=NOW
    )
    abandoned = PurchaseJob.objects.filter(status=JobStatus.ABANDONED).first()
    PurchaseJob.objects.filter(pk=abandoned.pk).update(
        status="completed",
        paid_at=at(1, hours=5),
        completed_at=at(1, hours=6),
        email="new@example.com",
        updated_at=NOW,
    )
    click(second, shop["page"], at(25))  # a click written late, dated when it was made
    PurchaseJob.objects.filter(email__iexact="bob@example.com").update(email="", updated_at=NOW)

    expected = live()
    assert everything() == expected

    assert analytics.refresh_rollups(NOW + timedelta(minutes=1)) >= 3
    assert everything() == expected
    # Once the changes are older than the refresh's margin, the rebuilt days (and the
    # customers' links across days) are read from the rollups alone.
    analytics.refresh_rollups(NOW + analytics.ROLLUP_MARGIN * 2)
    assert everything() == expected


def test_a_new_time_zone_reads_live_then_rebuilds(shop, settings):
    analytics.refresh_rollups(NOW)
    settings.TIME_ZONE = "America/New_York"
    expected = live()
    with CaptureQueriesContext(connection) as queries:
        assert everything() == expected
    assert not any("reportrollup" in q["sql"].lower() for q in queries.captured_queries)

    analytics.refresh_rollups(NOW)

    assert RollupState.objects.get().time_zone == "America/New_York"
    assert everything() == expected


def test_the_sweeper_builds_the_days_before_today(shop):
    counts = sweep()

    assert counts["rollup_days"] >= 40
    assert RollupState.objects.get().built_until == timezone.localdate(
        timezone=timezone.get_default_timezone()
    )
    assert sweep()["rollup_days"] == 0  # nothing changed since


def test_without_rollups_the_reports_cost_what_they_did(shop):
    period = analytics.resolve_period("all", now=NOW)
    with CaptureQueriesContext(connection) as queries:
        analytics.totals(period)
    assert len(queries.captured_queries) == 2  # the rollup state, the orders


def test_the_orders_table_keeps_only_the_indexes_queries_use():
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, PurchaseJob._meta.db_table)
    indexes = {name: info for name, info in found.items() if info["index"]}
    assert not [name for name in indexes if name.endswith("_like")]
    single = {tuple(info["columns"]) for info in indexes.values() if len(info["columns"]) == 1}
    assert ("status",) not in single and ("image_ref",) not in single
    for column in ("token_hash", "checkout_session_id", "payment_intent_id", "paid_at"):
        assert (column,) in single
    assert "smi_job_email_upper" in indexes
    with connection.cursor() as cursor:
        clicks = connection.introspection.get_constraints(cursor, ImageClick._meta.db_table)
    if connection.vendor == "postgresql":
        assert clicks["smi_click_created_brin"]["type"] == "brin"
