"""Licences on orders: chosen at checkout through the public API, kept as bought, and shown
wherever the order is (Stripe's line item, the order page, the receipt and download
emails, the admin's order page, the exports and the reports), whatever the seller changes
afterwards. Also the EU withdrawal waiver, and orders from before licences."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from tests.html_support import one, select, text
from tests.licence_support import (
    COMMERCIAL_URL,
    read_rights,
    rewrite_commercial_licence,
    sell_with_licences,
)
from tests.stripe_fixtures import deliver
from wagtail_smi import emails, links
from wagtail_smi.models import PurchaseJob, SmiSiteSettings

pytestmark = pytest.mark.django_db

CHECKOUT = "/smi/v1/create-checkout"
ORDERS = "smi_orders:list"
REVENUE = "wagtail_smi_reports:revenue"
ALL_TIME = {"period": "all"}
AS_BOUGHT = "Commercial use, version 2"


def checkout(client, offer, *, status=200, **extra):
    image, page = offer
    body = {"image_id": image.pk, "page_id": page.pk, "resolution": "8x", **extra}
    response = client.post(CHECKOUT, json.dumps(body), content_type="application/json")
    assert response.status_code == status, response.content
    return response.json()


def local(url: str) -> str:
    return re.sub(r"^https?://[^/]+", "", url)


def stripe_product(fake_stripe, job) -> dict:
    [item] = fake_stripe.line_items[job.checkout_session_id]
    return item["price"]["product_data"]


def exported(client) -> dict[str, dict]:
    """The orders CSV and XLSX exports, each as {order id: row}."""
    response = client.get(reverse(ORDERS), {"export": "csv"})
    content = b"".join(response.streaming_content).decode()
    as_csv = {row["Order"]: row for row in csv.DictReader(io.StringIO(content))}
    response = client.get(reverse(ORDERS), {"export": "xlsx"})
    sheet = load_workbook(io.BytesIO(b"".join(response.streaming_content)))["Orders"]
    header = [cell.value for cell in sheet[1]]
    as_xlsx = {
        values[0]: dict(zip(header, values, strict=True))
        for values in sheet.iter_rows(min_row=2, values_only=True)
    }
    return {"csv": as_csv, "xlsx": as_xlsx}


# Checkout ------------------------------------------------------------------------------------


def test_the_licence_chosen_through_the_api_is_kept_on_the_order_and_named_on_stripe(
    client, offer, site, fake_stripe, stripe_settings
):
    sell_with_licences(site)
    data = checkout(client, offer, licence="commercial")
    job = PurchaseJob.objects.get(pk=data["job_id"])

    assert data["amount_cents"] == job.amount_cents == 3 * 192  # 8x of 1000×1000, tripled
    assert (job.licence_key, job.licence_name, job.licence_version) == (
        "commercial",
        "Commercial use",
        "2",
    )
    assert job.licence_summary == "Advertising, products and client work."
    assert job.licence_terms_url == COMMERCIAL_URL
    assert "<b>advertising</b>" in job.licence_terms
    product = stripe_product(fake_stripe, job)
    assert product["name"] == f"High-resolution image (8x), licence: {AS_BOUGHT}"
    assert product["description"].endswith("· Advertising, products and client work.")
    assert fake_stripe.sessions[job.checkout_session_id]["amount_total"] == 576


def test_without_a_licence_the_order_gets_the_default_one(client, offer, site):
    sell_with_licences(site)
    data = checkout(client, offer)
    job = PurchaseJob.objects.get(pk=data["job_id"])
    assert (job.licence_key, job.licence_name, job.amount_cents) == (
        "personal",
        "Personal use",
        192,
    )


def test_an_unknown_licence_is_refused(client, offer, site):
    sell_with_licences(site)
    answer = checkout(client, offer, licence="resale", status=400)
    assert answer["error"] == "unknown_licence"
    assert not PurchaseJob.objects.exists()


# The whole way, after the seller rewrote the licence --------------------------------------


def test_an_order_shows_the_licence_as_bought_everywhere_after_the_licence_changes(
    client,
    offer,
    site,
    fake_stripe,
    stripe_settings,
    sales_manager,
    django_capture_on_commit_callbacks,
):
    """Bought under "Commercial use" version 2; then renamed, re-versioned, its terms and
    address rewritten, before the payment even arrives. Every place the order is shown
    (and the file itself) still says what was bought."""
    sell_with_licences(site)
    data = checkout(client, offer, licence="commercial")
    job = PurchaseJob.objects.get(pk=data["job_id"])
    rewrite_commercial_licence(site)

    # Payment (the receipt), then the local upscaler and delivery (the download email).
    _, payload, signature = fake_stripe.complete_session(
        job.checkout_session_id, email="buyer@example.com"
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert deliver(client, payload, signature).status_code == 200
    job.refresh_from_db()
    assert job.status == "completed", job.last_error

    receipt, ready = mail.outbox
    assert receipt.subject == f"Your receipt for order {job.short_id}"
    assert ready.subject.endswith(" is ready")
    for message in (receipt, ready):
        html = message.alternatives[0][0]
        assert AS_BOUGHT in message.body and AS_BOUGHT in html
        assert "Business" not in message.body + html
        assert "version 3" not in message.body + html
    # The receipt carries the terms as accepted, in both parts.
    assert "Use in advertising, products and client work." in receipt.body
    assert "Use in <b>advertising</b>" in receipt.alternatives[0][0]
    assert COMMERCIAL_URL in receipt.body and COMMERCIAL_URL in ready.body
    assert "Rewritten terms" not in receipt.body + receipt.alternatives[0][0]

    # The order page.
    page = client.get(local(links.order_url(job)))
    assert text(page, ".smi-order__licence").startswith(AS_BOUGHT)
    assert "advertising" in text(page, ".smi-order__terms")
    assert one(page, ".smi-order__terms a")["href"] == COMMERCIAL_URL
    assert "Business" not in page.content.decode()

    # The file, as the customer downloads it from the emailed link.
    token = re.search(r"/smi/download/([A-Za-z0-9_-]{64})", ready.body).group(1)
    download = client.get(f"/smi/download/{token}")
    assert download.status_code == 200
    rights = read_rights(b"".join(download.streaming_content))
    assert AS_BOUGHT in rights["xmp_usage_terms"]
    assert rights["xmp_web_statement"] == COMMERCIAL_URL

    # The admin: the order's page, the exports, the report.
    client.force_login(sales_manager)
    inspect = client.get(reverse("smi_orders:inspect", args=[job.pk]))
    assert text(inspect, "[data-smi-licence-name]").startswith(AS_BOUGHT)
    assert "advertising" in text(inspect, "[data-smi-licence-terms]")
    for kind, rows in exported(client).items():
        row = rows[str(job.pk)]
        assert (row["Licence"], row["Licence version"], row["Licence key"]) == (
            "Commercial use",
            "2",
            "commercial",
        ), kind
    report = client.get(reverse(REVENUE), ALL_TIME)
    rows = [text(row) for row in select(report, "[data-table=licence] tbody tr")]
    assert len(rows) == 1 and rows[0].startswith("Commercial use USD 1 $5.76"), rows


def test_a_renamed_licence_keeps_one_report_row_under_its_newest_name(
    make_job, site, manager_client
):
    now = timezone.now()
    common = {"licence_key": "commercial", "amount_cents": 1000}
    earlier = now - timezone.timedelta(hours=1)
    make_job("completed", paid_at=earlier, licence_name="Commercial use", **common)
    make_job("completed", paid_at=now, licence_name="Business licence", **common)
    make_job("completed", paid_at=now, amount_cents=500)  # from before licences
    report = manager_client.get(reverse(REVENUE), ALL_TIME)
    rows = [text(row).split(" USD ")[0] for row in select(report, "[data-table=licence] tbody tr")]
    assert sorted(rows) == ["Business licence", "None (ordered before licences)"]


# The EU withdrawal waiver -------------------------------------------------------------------


def test_a_site_that_asks_for_the_withdrawal_waiver_refuses_checkout_without_it(
    client, offer, site
):
    sell_with_licences(site, require_withdrawal_waiver=True)
    answer = checkout(client, offer, status=400)
    assert answer["error"] == "withdrawal_waiver_required"
    assert not PurchaseJob.objects.exists()


def test_the_waiver_is_recorded_with_its_time_and_shown_to_the_admins(
    client, offer, site, sales_manager
):
    sell_with_licences(site, require_withdrawal_waiver=True)
    before = timezone.now()
    data = checkout(client, offer, waive_withdrawal=True)
    job = PurchaseJob.objects.get(pk=data["job_id"])
    assert before <= job.withdrawal_waived_at <= timezone.now()
    assert job.withdrawal_waived_at.utcoffset().total_seconds() == 0

    client.force_login(sales_manager)
    inspect = client.get(reverse("smi_orders:inspect", args=[job.pk]))
    assert text(inspect, "[data-smi-withdrawal]").startswith("Waived at ")
    fields = dict(
        zip(
            [text(dt) for dt in select(inspect, ".smi-order__fields dt")],
            [text(dd) for dd in select(inspect, ".smi-order__fields dd")],
            strict=True,
        )
    )
    assert "right of withdrawal waived at" in {name.lower() for name in fields}
    row = exported(client)["csv"][str(job.pk)]
    assert row["Withdrawal right waived at"]


def test_a_waiver_the_site_does_not_ask_for_is_not_recorded(client, offer, site):
    sell_with_licences(site, require_withdrawal_waiver=False)
    data = checkout(client, offer, waive_withdrawal=True)
    assert PurchaseJob.objects.get(pk=data["job_id"]).withdrawal_waived_at is None


# Orders from before licences ---------------------------------------------------------------


def test_orders_from_before_licences_still_render_everywhere(
    make_job, site, client, sales_manager, fake_stripe, stripe_settings
):
    sell_with_licences(site)
    job = make_job(
        "completed",
        email="old@example.com",
        paid_at=timezone.now(),
        completed_at=timezone.now(),
        token_expires_at=timezone.now() + timezone.timedelta(hours=1),
    )
    assert job.licence_key == ""

    page = client.get(local(links.order_url(job)))
    assert page.status_code == 200
    assert not select(page, ".smi-order__licence") and not select(page, ".smi-order__terms")

    assert emails.send_receipt(job) and emails.send_download_ready(job, "t" * 64)
    for message in mail.outbox:
        assert "Licence" not in message.body + message.alternatives[0][0]

    client.force_login(sales_manager)
    inspect = client.get(reverse("smi_orders:inspect", args=[job.pk]))
    assert inspect.status_code == 200
    assert text(inspect, "[data-smi-licence-name]") == "None recorded (ordered before licences)"
    assert text(inspect, "[data-smi-withdrawal]") == "Not waived"
    for kind, rows in exported(client).items():
        row = rows[str(job.pk)]
        assert not row["Licence"] and not row["Licence version"], kind

    report = client.get(reverse(REVENUE), ALL_TIME)
    assert [text(r) for r in select(report, "[data-table=licence] tbody tr")][0].startswith(
        "None (ordered before licences)"
    )


def test_the_stripe_line_item_of_an_order_without_a_licence_names_the_resolution_only(
    make_job, site, fake_stripe, stripe_settings
):
    from tests.stripe_fixtures import open_checkout

    job = make_job("awaiting_payment")
    open_checkout(job)
    job.refresh_from_db()
    assert stripe_product(fake_stripe, job)["name"] == "High-resolution image (4x)"


def test_the_default_licences_of_a_new_site_are_personal_and_commercial(site):
    keys = [option.key for option in SmiSiteSettings.for_site(site).licence_options()]
    assert keys == ["personal", "commercial"]
