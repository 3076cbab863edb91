"""Report figures against hand-computed fixtures: net revenue after promotion codes and
partial refunds, margin, currencies apart, the site's time zone, the previous period, one
x-axis for every currency, the images report's clicks once per item, exports by the one
format rule, and a cost that does not grow with the orders."""

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
from openpyxl import load_workbook

from tests.html_support import select, text
from wagtail_smi.models import ImageClick, PurchaseJob

pytestmark = pytest.mark.django_db

REVENUE = "wagtail_smi_reports:revenue"
# 9–10 January 2026 in New York, and the two days before it.
TWO_DAYS = {"dates_from": "2026-01-09", "dates_to": "2026-01-10"}


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
def revenue_orders(make_job, make_image):
    """Hand-computed (site time zone America/New_York):

    - A usd 5.00, paid 04:30 UTC on the 10th = 23:30 on the 9th in New York;
    - B usd 10.00 refunded in full, cost 1.00, b@;
    - C eur 7.00, cost 0.50;
    - D usd 3.00, never paid;
    - E usd 2.00, cost 0.20, B@ (the same customer as b@);
    - F usd 8.00 less a 2.00 promotion code (paid 6.00), 1.50 refunded (partial), cost 0.40,
      at 8x;
    - G usd 10.00 on the 8th: the previous period.
    """
    image = make_image()
    common = {"image": image}
    job_at(make_job, "completed", created=at(2026, 1, 10, 4), paid=at(2026, 1, 10, 4, 30),
           amount_cents=500, email="a@example.com", **common)  # fmt: skip
    job_at(make_job, "refunded", created=at(2026, 1, 10, 5), paid=at(2026, 1, 10, 5, 30),
           amount_cents=1000, refund_amount_cents=1000, upscale_cost_cents=100,
           email="b@example.com", **common)  # fmt: skip
    job_at(make_job, "completed", created=at(2026, 1, 10, 11), paid=at(2026, 1, 10, 12),
           amount_cents=700, currency="eur", upscale_cost_cents=50, email="c@example.com",
           **common)  # fmt: skip
    job_at(make_job, "awaiting_payment", created=at(2026, 1, 10, 13), amount_cents=300,
           email="d@example.com", **common)  # fmt: skip
    job_at(make_job, "completed", created=at(2026, 1, 10, 14), paid=at(2026, 1, 10, 15),
           amount_cents=200, upscale_cost_cents=20, email="B@example.com", **common)  # fmt: skip
    job_at(make_job, "completed", created=at(2026, 1, 10, 16), paid=at(2026, 1, 10, 16),
           amount_cents=800, discount_cents=200, refund_amount_cents=150,
           upscale_cost_cents=40, email="f@example.com", factor=8, **common)  # fmt: skip
    job_at(make_job, "completed", created=at(2026, 1, 8, 15), paid=at(2026, 1, 8, 15),
           amount_cents=1000, email="a@example.com", **common)  # fmt: skip


FIGURES = (
    "period",
    "currency",
    "orders",
    "sales",
    "refunds",
    "net",
    "cost",
    "margin",
    "margin_rate",
    "aov",
    "customers",
)


def figures(row):
    return tuple(row[key] for key in FIGURES)


@override_settings(TIME_ZONE="America/New_York")
def test_revenue_counts_net_revenue_and_margin_per_day_and_currency(manager_client, revenue_orders):
    response = manager_client.get(reverse(REVENUE), TWO_DAYS)
    assert response.status_code == 200
    rows = [figures(row) for row in response.context["object_list"]]
    assert rows == [
        # C: 7.00, cost 0.50 → margin 6.50 = 92.9 %.
        ("2026-01-10", "eur", 1, 700, 0, 700, 50, 650, Decimal("92.9"), 700, 1),
        # B + E + F: sales 10.00 + 2.00 + 6.00 = 18.00; refunds 10.00 + 1.50; net 6.50;
        # cost 1.60; margin 4.90 = 75.4 % of 6.50; b@ and B@ are one customer.
        ("2026-01-10", "usd", 3, 1800, 1150, 650, 160, 490, Decimal("75.4"), 600, 2),
        ("2026-01-09", "usd", 1, 500, 0, 500, 0, 500, Decimal("100.0"), 500, 1),
    ]
    html = response.content.decode()
    total_rows = select(response, "[data-table=revenue] tfoot tr")
    assert [row["data-currency"] for row in total_rows] == ["usd", "eur"]
    # usd: 4 orders, sales 23.00, refunds 11.50, net 11.50, cost 1.60, margin 9.90 = 86.1 %.
    assert text(total_rows[0]).split() == (
        "Total USD 4 $23.00 $11.50 $11.50 $1.60 $9.90 86.1% $5.75 3".split()
    )
    assert "€7.00" in html


@override_settings(TIME_ZONE="UTC")
def test_the_day_boundary_moves_with_the_site_time_zone(manager_client, revenue_orders):
    response = manager_client.get(reverse(REVENUE), TWO_DAYS)
    assert [(r["period"], r["currency"], r["net"]) for r in response.context["object_list"]] == [
        ("2026-01-10", "eur", 700),
        ("2026-01-10", "usd", 1150),
    ]


@override_settings(TIME_ZONE="America/New_York")
def test_revenue_compares_with_the_previous_period_and_shows_the_deltas(
    manager_client, revenue_orders
):
    response = manager_client.get(reverse(REVENUE), TWO_DAYS)
    previous = response.context["previous_period"]
    assert (previous.first_day.isoformat(), previous.last_day.isoformat()) == (
        "2026-01-07",
        "2026-01-08",
    )
    [usd] = select(response, ".smi-scorecards[data-currency=usd]")
    net = usd.select_one("[data-figure=net]")
    # 11.50 against G's 10.00: +15.0 %.
    assert text(net.select_one(".smi-card__value")) == "$11.50"
    assert text(net.select_one(".smi-card__meta")) == "+15.0% vs $10.00"
    assert net.select_one("[data-delta]")["data-delta"] == "up"
    orders = usd.select_one("[data-figure=orders]")
    assert text(orders.select_one(".smi-card__meta")) == "+300.0% vs 1"
    refunds = usd.select_one("[data-figure=refunds]")
    assert "smi-delta--inverse" in refunds.select_one("[data-delta]")["class"]
    # EUR had nothing the period before.
    [eur] = select(response, ".smi-scorecards[data-currency=eur]")
    assert text(eur.select_one("[data-figure=net] .smi-card__meta")) == "new vs €0.00"
    assert "compared with Jan. 7, 2026 – Jan. 8, 2026" in text(response, ".smi-periods__range")


@override_settings(TIME_ZONE="America/New_York")
def test_every_currency_chart_shares_one_x_axis_with_labelled_axes_and_values(
    manager_client, revenue_orders
):
    response = manager_client.get(reverse(REVENUE), TWO_DAYS)
    charts = {c["data-currency"]: c for c in select(response, "figure.smi-report-chart")}
    assert set(charts) == {"usd", "eur"}
    labels = {
        currency: [
            t.get_text() for t in chart.select("text.smi-chart__label:not(.smi-chart__legend)")
        ]
        for currency, chart in charts.items()
    }
    # One label per day: the same days for both.
    assert labels["usd"] == labels["eur"] == ["Jan 9", "Jan 10"]
    usd = charts["usd"]
    ticks = [t.get_text() for t in usd.select("text.smi-chart__tick")]
    assert ticks == ["$0.00", "$2.00", "$4.00", "$6.00", "$8.00"]  # round steps past $6.50
    axis_labels = [t.get_text() for t in usd.select("text.smi-chart__axis-label")]
    assert axis_labels == ["Day", "Amount (USD)"]
    values = [t.get_text() for t in usd.select("text.smi-chart__value")]
    assert values == ["$5.00", "$5.00", "$6.50", "$4.90"]  # net and margin per day
    # EUR has nothing on the 9th: an empty slot, not a narrower axis.
    assert [t.get_text() for t in charts["eur"].select("rect.smi-chart__bar title")] == [
        "Jan 9, Net revenue: €0.00",
        "Jan 9, Margin: €0.00",
        "Jan 10, Net revenue: €7.00",
        "Jan 10, Margin: €6.50",
    ]


@override_settings(TIME_ZONE="America/New_York")
def test_revenue_breaks_down_per_resolution_with_margin(manager_client, revenue_orders):
    response = manager_client.get(reverse(REVENUE), TWO_DAYS)
    names = [breakdown["name"] for breakdown in response.context["breakdowns"]]
    assert names == ["resolution", "licence"]
    rows = [text(row).split() for row in select(response, "[data-table=resolution] tbody tr")]
    assert rows == [
        "4x EUR 1 €7.00 €0.00 €7.00 €0.50 €6.50 92.9%".split(),
        # A, B, E at 4x: sales 17.00, refunds 10.00, net 7.00, cost 1.20, margin 5.80.
        "4x USD 3 $17.00 $10.00 $7.00 $1.20 $5.80 82.9%".split(),
        # F at 8x: 6.00 − 1.50 = 4.50, cost 0.40 → 4.10.
        "8x USD 1 $6.00 $1.50 $4.50 $0.40 $4.10 91.1%".split(),
    ]


@override_settings(TIME_ZONE="America/New_York")
def test_revenue_exports_major_units_with_currency_and_named_sheets(manager_client, revenue_orders):
    response = manager_client.get(reverse(REVENUE), {**TWO_DAYS, "export": "csv"})
    assert response.status_code == 200
    assert 'filename="revenue-2026-01-09-2026-01-10.csv"' in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == [
        "Period",
        "Currency",
        "Paid orders",
        "Sales",
        "Refunds",
        "Net revenue",
        "Upscaling cost",
        "Margin",
        "Margin rate (%)",
        "Average order value",
        "Customers",
    ]
    assert ["2026-01-10", "USD", "3", "18.00", "11.50", "6.50", "1.60", "4.90", "75.4", "6.00", "2"] in rows  # fmt: skip
    assert ["Total", "USD", "4", "23.00", "11.50", "11.50", "1.60", "9.90", "86.1", "5.75", "3"] in rows  # fmt: skip

    response = manager_client.get(reverse(REVENUE), {**TWO_DAYS, "export": "xlsx"})
    book = load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    assert book.sheetnames == ["Revenue", "By resolution", "By licence"]
    sheet = book["Revenue"]
    assert [c.value for c in sheet[1]][:4] == ["Period", "Currency", "Paid orders", "Sales"]
    assert [c.value for c in sheet[2]][:6] == ["2026-01-10", "EUR", 1, 7, 0, 7]
    assert sheet.column_dimensions["A"].width >= len("2026-01-10")
    assert sheet.column_dimensions["K"].width >= len("Customers")


@override_settings(TIME_ZONE="UTC")
def test_the_period_presets_are_one_click_and_keep_the_report_options(manager_client):
    response = manager_client.get(reverse(REVENUE), {"per": "week"})
    links = {a["data-period"]: a for a in select(response, ".smi-periods__link")}
    assert list(links) == [
        "today",
        "last-7-days",
        "last-30-days",
        "this-month",
        "last-month",
        "this-year",
        "last-year",
        "all",
    ]
    assert links["last-30-days"]["aria-current"] == "true"  # the default
    assert links["last-month"]["href"] == reverse(REVENUE) + "?period=last-month&per=week"
    response = manager_client.get(links["last-month"]["href"])
    assert response.context["period"].key == "last-month"
    assert response.context["granularity"] == "week"


def test_reversed_custom_dates_are_refused_with_a_message(manager_client):
    response = manager_client.get(
        reverse(REVENUE), {"dates_from": "2026-02-10", "dates_to": "2026-02-01"}
    )
    assert response.status_code == 200
    assert response.context["period"].key == "last-30-days"
    assert "The last day comes before the first day." in [
        str(m) for m in response.context["messages"]
    ]


def test_images_report_counts_clicks_once_per_item_and_money_per_currency(
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
        job_at(make_job, "completed", image=best, created=when, paid=when, amount_cents=amount,
               factor=factor, upscale_cost_cents=10)  # fmt: skip
    # The same image sold in euros too: one row, two money columns, clicks once.
    job_at(make_job, "completed", image=best, created=when, paid=when, amount_cents=400,
           currency="eur", refund_amount_cents=100)  # fmt: skip
    job_at(make_job, "awaiting_payment", image=best, created=when, amount_cents=1900, factor=8)
    job_at(make_job, "refunded", image=other, created=when, paid=when, amount_cents=300,
           refund_amount_cents=300)  # fmt: skip
    clicks(best.pk, page.pk, 8, when)
    clicks(other.pk, page.pk, 4, when)
    clicks(unsold.pk, page.pk, 2, when)

    params = {"period": "all", "ordering": "-clicks"}
    response = manager_client.get(reverse("wagtail_smi_reports:images"), params)
    assert response.status_code == 200
    assert response.context["currencies"] == ["usd", "eur"]
    rows = [
        (
            r.title,
            r.clicks,
            r.purchases,
            r.conversion,
            {c: (f.net, f.margin) for c, f in r.money.items()},
            r.top_resolution,
        )
        for r in response.context["object_list"]
    ]
    assert rows == [
        ("Best", 8, 4, Decimal("50.0"), {"usd": (2900, 2870), "eur": (300, 300)}, "4x"),
        ("Other", 4, 1, Decimal("25.0"), {"usd": (0, 0)}, "4x"),
        ("Unsold", 2, 0, Decimal("0.0"), {}, ""),
    ]
    [best_row] = select(response, f"tr[data-ref='{best.pk}']")
    assert len(best_row.select("[data-figure=clicks]")) == 1
    assert [td.get_text() for td in best_row.select("[data-figure=net]")] == ["$29.00", "€3.00"]

    by_net = manager_client.get(reverse("wagtail_smi_reports:images"), {"period": "all"})
    assert [r.title for r in by_net.context["object_list"]] == ["Best", "Other", "Unsold"]
    per_page = manager_client.get(
        reverse("wagtail_smi_reports:images"), {"period": "all", "group": "page"}
    )
    [page_row] = per_page.context["object_list"]
    assert (page_row.ref, page_row.clicks, page_row.purchases) == (page.pk, 14, 5)

    export = manager_client.get(
        reverse("wagtail_smi_reports:images"), {"period": "all", "export": "csv"}
    )
    lines = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert lines[0] == [
        "Id",
        "Image",
        "Clicks",
        "Paid orders",
        "Conversion (%)",
        "Net revenue (USD)",
        "Margin (USD)",
        "Net revenue (EUR)",
        "Margin (EUR)",
        "Top resolution",
    ]
    assert lines[1] == [str(best.pk), "Best", "8", "4", "50.0", "29.00", "28.70", "3.00", "3.00", "4x"]  # fmt: skip


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

    response = manager_client.get(reverse("wagtail_smi_reports:funnel"), {"period": "all"})
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
    assert (f.abandonment_rate, f.refund_rate) == (Decimal("40.0"), Decimal("33.3"))
    assert [
        (r["resolution"], r["started"], r["paid"]) for r in response.context["popular_resolutions"]
    ] == [("4x", 3, 2), ("8x", 2, 1)]
    assert "<svg" in response.content.decode()


# --- cost: the same queries for 3 orders as for 300 --------------------------------------------


def _queries(client, url, params=None) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url, params or {})
        assert response.status_code == 200
        if hasattr(response, "streaming_content"):
            b"".join(response.streaming_content)
    return len(ctx.captured_queries)


def bulk_orders(count: int, images, site, *, start: int = 0):
    """``count`` paid orders in two currencies over three images, a customer each, some
    partly refunded (bulk-created: the orders' cost, not the fixture's, is measured)."""
    when = at(2026, 5, 1, 12)
    jobs = []
    for i in range(start, start + count):
        image = images[i % len(images)]
        jobs.append(
            PurchaseJob(
                site=site,
                image=image,
                image_ref=image.pk,
                image_title=image.title,
                page=site.root_page,
                page_ref=site.root_page.pk,
                page_title="Home",
                resolution="4x",
                factor=4,
                original_width=10,
                original_height=10,
                output_width=40,
                output_height=40,
                amount_cents=500 + i,
                currency=("usd", "eur")[i % 2],
                refund_amount_cents=(i % 3) * 10,
                email=f"c{i % 7}@example.com",
                status="completed",
                paid_at=when,
            )  # fmt: skip
        )
    PurchaseJob.objects.bulk_create(jobs)
    PurchaseJob.objects.filter(created_at__gt=when).update(created_at=when)
    clicks(images[0].pk, site.root_page.pk, count, when)


@pytest.mark.parametrize(
    "name,params",
    [
        ("revenue", {}),
        ("revenue", {"export": "csv"}),
        ("revenue", {"export": "xlsx"}),
        ("revenue", {"per": "month"}),
        ("images", {}),
        ("images", {"group": "page", "export": "xlsx"}),
        ("funnel", {}),
        ("customers", {}),
        ("customers", {"export": "csv"}),
    ],
)
def test_report_query_count_does_not_grow_with_orders(
    manager_client, make_image, site, name, params
):
    images = [make_image(20, 20, title=f"Pool {i}") for i in range(3)]
    unsold = make_image(20, 20, title="Clicked only")
    clicks(unsold.pk, site.root_page.pk, 1, at(2026, 5, 1, 12))
    url = reverse(f"wagtail_smi_reports:{name}")
    params = {"period": "all", **params}
    bulk_orders(3, images, site)
    _queries(manager_client, url, params)  # warm caches (site settings, content types)
    few = _queries(manager_client, url, params)
    bulk_orders(297, images, site, start=3)
    many = _queries(manager_client, url, params)
    assert few == many
    assert many < 25
