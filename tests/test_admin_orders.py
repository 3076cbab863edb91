"""The orders list (a read-only snippet listing): columns, search, filters, exports escaped
against formulas."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from openpyxl import load_workbook

from wagtail_smi.admin.exports import escape_formula
from wagtail_smi.models import PurchaseJob

pytestmark = pytest.mark.django_db

INDEX = "smi_orders:list"


def listed(client, params=None) -> set[str]:
    response = client.get(reverse(INDEX), params or {})
    assert response.status_code == 200
    return {str(job.pk) for job in response.context["object_list"]}


def test_list_shows_thumbnail_email_status_resolution_and_formatted_amount(
    manager_client, make_job
):
    make_job("needs_attention", email="buyer@example.com", amount_cents=576, factor=8)
    html = manager_client.get(reverse(INDEX)).content.decode()
    assert 'class="smi-order-thumb"' in html
    assert "buyer@example.com" in html
    assert 'data-status="needs_attention"' in html and "Needs attention" in html
    assert "8x" in html
    assert "$5.76" in html
    # No add, edit or copy buttons for orders.
    assert "Add order" not in html


def test_the_list_keeps_its_url_and_its_earlier_url_name():
    assert reverse(INDEX) == reverse("smi_orders:index") == "/admin/smi/orders/"
    assert reverse("smi_orders:list_results") == reverse("smi_orders:index_results")


def test_menu_item_keeps_its_icon_label_and_place(manager_client):
    from wagtail.admin.menu import admin_menu

    request = manager_client.get(reverse("wagtailadmin_home")).wsgi_request
    [item] = [
        item for item in admin_menu.menu_items_for_request(request) if item.url == reverse(INDEX)
    ]
    assert (item.label, item.icon_name, item.order) == ("Orders", "smi-cart", 250)


@pytest.mark.parametrize(
    "field,value,query",
    [
        ("email", "Jane.Doe@example.com", "jane.doe"),
        ("checkout_session_id", "cs_test_a1B2c3", "cs_test_a1B2"),
        ("payment_intent_id", "pi_3Pq9XyZ", "pi_3Pq9"),
    ],
)
def test_search_finds_orders_by_email_and_provider_ids(
    manager_client, make_job, field, value, query
):
    wanted = make_job("completed", **{field: value})
    make_job("completed", email="other@example.com")
    assert listed(manager_client, {"q": query}) == {str(wanted.pk)}


def test_search_finds_orders_by_full_or_short_job_id(manager_client, make_job):
    wanted, other = make_job("completed"), make_job("completed")
    assert listed(manager_client, {"q": str(wanted.pk)}) == {str(wanted.pk)}
    assert listed(manager_client, {"q": str(wanted.pk).upper()}) == {str(wanted.pk)}
    short = wanted.short_id
    if other.short_id.startswith(short):  # astronomically unlikely; keep the test honest
        pytest.skip("ids share a prefix")
    assert listed(manager_client, {"q": short}) == {str(wanted.pk)}


def test_filters_by_status_resolution_page_image_and_date(
    manager_client, make_job, make_image, site
):
    a_image, b_image = make_image(title="A"), make_image(title="B")
    a = make_job("needs_attention", image=a_image, factor=4)
    b = make_job("completed", image=b_image, factor=8)
    PurchaseJob.objects.filter(pk=b.pk).update(created_at=datetime(2026, 1, 2, 12, tzinfo=UTC))
    assert listed(manager_client, {"status": "needs_attention"}) == {str(a.pk)}
    assert listed(manager_client, {"status": ["needs_attention", "completed"]}) == {
        str(a.pk),
        str(b.pk),
    }
    assert listed(manager_client, {"resolution": "8x"}) == {str(b.pk)}
    assert listed(manager_client, {"image": a_image.pk}) == {str(a.pk)}
    assert listed(manager_client, {"page": site.root_page.pk}) == {str(a.pk), str(b.pk)}
    assert listed(
        manager_client, {"created_at_from": "2026-01-01", "created_at_to": "2026-01-03"}
    ) == {str(b.pk)}


def test_summary_link_lists_orders_that_need_attention(manager_client, make_job):
    stuck = make_job("needs_attention")
    make_job("completed")
    home = manager_client.get(reverse("wagtailadmin_home")).content.decode()
    url = reverse(INDEX) + "?status=needs_attention"
    assert url in home
    assert listed(manager_client, {"status": "needs_attention"}) == {str(stuck.pk)}


@pytest.mark.parametrize("value", ["=1+2", "+SUM(A1)", "-3+4", "@cmd", "\tx", "\rx"])
def test_escape_formula_prefixes_dangerous_text(value):
    assert escape_formula(value) == "'" + value


def test_escape_formula_leaves_numbers_and_plain_text():
    assert escape_formula(-5) == -5
    assert escape_formula("buyer@example.com") == "buyer@example.com"


def test_csv_export_escapes_formulas(manager_client, make_job):
    make_job(
        "completed",
        email='=HYPERLINK("http://evil.example","x")@example.com',
        image_title="@SUM(1)",
    )
    response = manager_client.get(reverse(INDEX), {"export": "csv"})
    assert response.status_code == 200
    content = b"".join(response.streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(content)))
    [row] = rows
    assert row["Customer email"] == """'=HYPERLINK("http://evil.example","x")@example.com"""
    assert row["Image title"] == "'@SUM(1)"
    assert row["Price"] == "0.50"


def test_exports_follow_the_one_format_rule(manager_client, make_job, settings):
    settings.TIME_ZONE = "America/New_York"
    job = make_job(
        "completed",
        email="buyer@example.com",
        amount_cents=576,
        discount_cents=100,
        refund_amount_cents=50,
        upscale_cost_cents=48,
        paid_at=datetime(2026, 1, 10, 4, 30, tzinfo=UTC),
    )
    make_job("needs_attention", amount_cents=500, currency="jpy")
    response = manager_client.get(reverse(INDEX), {"export": "csv"})
    rows = {
        row["Order"]: row
        for row in csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode()))
    }
    row = rows[str(job.pk)]
    # Major units beside the currency, states as people read them, site-time-zone times.
    assert (row["Status"], row["Currency"], row["Price"], row["Discount"]) == (
        "Completed",
        "USD",
        "5.76",
        "1.00",
    )
    assert (row["Paid"], row["Refunded"], row["Net revenue"], row["Upscaling cost"]) == (
        "4.76",
        "0.50",
        "4.26",
        "0.48",
    )
    assert row["Paid at"] == "2026-01-09 23:30:00"
    [yen] = [r for r in rows.values() if r["Currency"] == "JPY"]
    assert (yen["Status"], yen["Price"], yen["Paid"]) == ("Needs attention", "500", "0")

    response = manager_client.get(reverse(INDEX), {"export": "xlsx"})
    book = load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    assert book.sheetnames == ["Orders"]
    sheet = book["Orders"]
    header = [cell.value for cell in sheet[1]]
    widths = {name: sheet.column_dimensions[chr(65 + i)].width for i, name in enumerate(header)}
    assert widths["Order"] >= 36  # a whole UUID
    assert widths["Customer email"] >= len("buyer@example.com")
    assert all(width >= 8 for width in widths.values())
    data = {
        values[0]: dict(zip(header, values, strict=True))
        for values in sheet.iter_rows(min_row=2, values_only=True)
    }
    assert (data[str(job.pk)]["Price"], data[str(job.pk)]["Status"]) == (5.76, "Completed")
    assert data[str(job.pk)]["Paid at"] == datetime(2026, 1, 9, 23, 30)


def test_the_list_filters_one_customers_orders_by_email(manager_client, make_job):
    first = make_job("completed", email="Ann@Example.com")
    second = make_job("refunded", email="ann@example.com")
    make_job("completed", email="joanne@example.com")
    assert listed(manager_client, {"email": "ann@example.com"}) == {str(first.pk), str(second.pk)}


def test_xlsx_export_escapes_formulas(manager_client, make_job):
    make_job("completed", email="=1+2@example.com")
    response = manager_client.get(reverse(INDEX), {"export": "xlsx"})
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    header = [cell.value for cell in sheet[1]]
    row = [cell.value for cell in sheet[2]]
    assert row[header.index("Customer email")] == "'=1+2@example.com"


def test_list_query_count_does_not_grow_with_orders(manager_client, make_job, make_image, site):
    """3 orders or 300 (50 shown per page), each with its own image: the same queries."""
    from tests.test_admin_reports import bulk_orders

    images = [make_image(40, 40, title=f"I{i}") for i in range(3)]
    bulk_orders(3, images, site)
    manager_client.get(reverse(INDEX))  # renditions are made on the first view
    with CaptureQueriesContext(connection) as few:
        manager_client.get(reverse(INDEX))
    more = [make_image(40, 40, title=f"J{i}") for i in range(6)]
    bulk_orders(297, images + more, site, start=3)
    manager_client.get(reverse(INDEX))
    with CaptureQueriesContext(connection) as many:
        manager_client.get(reverse(INDEX))
    assert len(few.captured_queries) == len(many.captured_queries)
