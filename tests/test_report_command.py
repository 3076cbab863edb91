"""``smi_report``: the admin's reports on the command line, from the same query layer. For
the same period the command and the admin give the same figures, byte for byte in CSV."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from wagtail_smi.models import ImageClick, PurchaseJob

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("utc")]


@pytest.fixture
def utc():
    with override_settings(TIME_ZONE="UTC"):
        yield


def last_month_day(day: int, hour: int = 12) -> datetime:
    first_of_this_month = timezone.now().astimezone(UTC).date().replace(day=1)
    first = (first_of_this_month - timedelta(days=1)).replace(day=1)
    return datetime(first.year, first.month, day, hour, tzinfo=UTC)


@pytest.fixture
def last_month_orders(make_job, make_image, site):
    """Last month: usd 5.00 (ann@), usd 8.00 less 2.00 off with 1.50 refunded, cost 0.40 (bob@,
    8x), eur 7.00 (ann@); clicks on the image; and one usd order this month."""
    image = make_image(title="Harbour")
    orders = [
        (last_month_day(2), "usd", 500, {"email": "ann@example.com"}),
        (last_month_day(3), "usd", 800, {
            "email": "bob@example.com", "discount_cents": 200, "refund_amount_cents": 150,
            "upscale_cost_cents": 40, "factor": 8,
        }),
        (last_month_day(3, 23), "eur", 700, {"email": "ann@example.com"}),
    ]  # fmt: skip
    for when, currency, amount, fields in orders:
        job = make_job("completed", image=image, currency=currency, amount_cents=amount, **fields)
        PurchaseJob.objects.filter(pk=job.pk).update(paid_at=when, created_at=when)
    make_job("completed", image=image, amount_cents=999, paid_at=timezone.now())
    ImageClick.objects.bulk_create(
        [ImageClick(image_ref=image.pk, page_ref=site.root_page.pk) for _ in range(6)]
    )
    ImageClick.objects.update(created_at=last_month_day(2))
    return image


def run(*args) -> str:
    out = StringIO()
    call_command("smi_report", *args, stdout=out)
    return out.getvalue()


def admin_csv(client, report: str, params: dict) -> str:
    response = client.get(reverse(f"wagtail_smi_reports:{report}"), {**params, "export": "csv"})
    assert response.status_code == 200
    return b"".join(response.streaming_content).decode()


@pytest.mark.parametrize("report", ["revenue", "images", "funnel", "customers"])
def test_the_command_and_the_admin_export_give_the_same_csv(
    manager_client, last_month_orders, report
):
    from_admin = admin_csv(manager_client, report, {"period": "last-month"})
    from_command = run(report, "--period", "last-month", "--format", "csv")
    assert from_command == from_admin
    assert len(from_admin.splitlines()) > 1


def test_revenue_as_json_has_the_admins_figures_in_minor_units(manager_client, last_month_orders):
    data = json.loads(run("revenue", "--period", "last-month", "--format", "json"))
    assert data["period"]["key"] == "last-month"
    assert data["period"]["from"] == last_month_day(1).date().isoformat()
    usd = data["currencies"]["usd"]["current"]
    # 5.00 + (8.00 − 2.00) = 11.00 sold, 1.50 back, 0.40 cost.
    assert (usd["orders"], usd["sales"], usd["refunds"], usd["net"], usd["margin"]) == (
        2,
        1100,
        150,
        950,
        910,
    )
    assert data["currencies"]["usd"]["previous"]["orders"] == 0
    assert data["currencies"]["eur"]["current"]["net"] == 700
    assert data["breakdowns"]["resolution"] == [
        {**data["breakdowns"]["resolution"][0], "key": "4x", "currency": "eur", "net": 700},
        {**data["breakdowns"]["resolution"][1], "key": "4x", "currency": "usd", "net": 500},
        {**data["breakdowns"]["resolution"][2], "key": "8x", "currency": "usd", "net": 450},
    ]

    page = manager_client.get(reverse("wagtail_smi_reports:revenue"), {"period": "last-month"})
    admin_rows = [
        (r["period"], r["currency"], r["net"], r["margin"]) for r in page.context["object_list"]
    ]
    command_rows = [(r["period"], r["currency"], r["net"], r["margin"]) for r in data["series"]]
    assert command_rows == admin_rows
    assert [c["currency"] for c in page.context["comparisons"]] == list(data["currencies"])


def test_customers_and_images_as_json(last_month_orders):
    customers = json.loads(run("customers", "--period", "last-month", "--format", "json"))
    assert customers["summary"] == {
        "customers": 2,
        "repeat_customers": 1,
        "repeat_rate": 50.0,
        "orders": 3,
    }
    assert [(c["email"], c["orders"]) for c in customers["customers"]] == [
        ("ann@example.com", 2),
        ("bob@example.com", 1),
    ]
    images = json.loads(run("images", "--period", "last-month", "--format", "json"))
    [item] = images["items"]
    assert (item["title"], item["clicks"], item["purchases"], item["conversion"]) == (
        "Harbour",
        6,
        3,
        50.0,
    )
    assert {c: m["net"] for c, m in item["money"].items()} == {"usd": 950, "eur": 700}


def test_the_table_is_for_people(last_month_orders):
    out = run("revenue", "--period", "last-month", "--per", "month")
    assert out.splitlines()[0].startswith("Last month: ")
    assert "compared with" in out.splitlines()[1]
    total = next(line for line in out.splitlines() if line.startswith("Total") and "USD" in line)
    assert total.split() == "Total USD 2 $11.00 $1.50 $9.50 $0.40 $9.10 95.8% $5.50 2".split()


def test_custom_dates_and_their_mistakes(last_month_orders):
    day = last_month_day(3).date().isoformat()
    data = json.loads(run("funnel", "--from", day, "--to", day, "--format", "json"))
    assert (data["period"]["key"], data["funnel"]["started"], data["funnel"]["paid"]) == (
        "custom",
        2,
        2,
    )
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        run("revenue", "--from", "03/01/2026")
    with pytest.raises(CommandError, match="before the first day"):
        run("revenue", "--from", "2026-02-02", "--to", "2026-02-01")
