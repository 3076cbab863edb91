"""The server-rendered pages: purchase without JavaScript, and the order status page."""

from datetime import timedelta

import pytest
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from tests.html_support import classes, one, parse, select, text
from tests.storefront_support import FAILING_PROVIDER, PROVIDER, plain, publish_gallery
from wagtail_smi.models import JobStatus, PurchaseJob, SmiSiteSettings

pytestmark = pytest.mark.django_db


def buy_url(image, page):
    return f"/smi/buy/{image.pk}/?page={page.pk}"


# --- purchase page ---------------------------------------------------------------------


def test_the_purchase_page_lists_prices_with_4x_preselected(client, offer):
    image, page = offer

    response = client.get(buy_url(image, page))

    assert response.status_code == 200
    doc = parse(response)
    radios = {
        radio["value"]: radio
        for radio in select(doc, "form.smi-form input[type=radio][name=resolution]")
    }
    assert list(radios) == ["4x", "8x"]
    assert (radios["4x"].has_attr("checked"), radios["8x"].has_attr("checked")) == (True, False)
    assert (
        radios["4x"]["id"] == "smi-res-4x"
        and radios["4x"]["aria-describedby"] == "smi-res-4x-detail"
    )
    prices = {
        key: (price["data-price-cents"], price.get_text())
        for key in radios
        for price in [one(doc, f"label[for=smi-res-{key}] .smi-option__price")]
    }
    assert prices == {"4x": ("50", "$0.50"), "8x": ("192", "$1.92")}
    assert "1000×1000 becomes 8000×8000" in text(doc, "#smi-res-8x-detail")
    assert "original_images" not in response.content.decode()  # anywhere, attributes included
    assert one(doc, "form.smi-form input[type=hidden][name=csrfmiddlewaretoken]")["value"]


@override_settings(WAGTAIL_SMI={"PAYMENT_BACKEND": PROVIDER})
def test_posting_the_purchase_form_redirects_to_the_checkout(offer):
    image, page = offer
    browser = Client(enforce_csrf_checks=True)
    form = browser.get(buy_url(image, page))
    token = form.cookies["csrftoken"].value

    response = browser.post(
        buy_url(image, page),
        {"resolution": "8x", "email": "buyer@example.com", "csrfmiddlewaretoken": token},
    )

    job = PurchaseJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == job.checkout_url
    assert (job.resolution, job.amount_cents, job.email) == ("8x", 192, "buyer@example.com")


def test_the_purchase_form_needs_csrf(offer):
    image, page = offer

    response = Client(enforce_csrf_checks=True).post(buy_url(image, page), {"resolution": "4x"})

    assert response.status_code == 403
    assert not PurchaseJob.objects.exists()


@override_settings(WAGTAIL_SMI={"PAYMENT_BACKEND": PROVIDER})
def test_purchase_form_errors_are_shown_in_the_page(client, offer, site):
    image, page = offer
    settings_row = SmiSiteSettings.for_site(site)
    settings_row.terms_url = "https://example.com/terms"
    settings_row.save()

    bad_email = client.post(
        buy_url(image, page), {"resolution": "4x", "email": "nope", "terms_accepted": "1"}
    )
    no_terms = client.post(buy_url(image, page), {"resolution": "4x"})

    assert bad_email.status_code == 400 and "valid email" in text(
        bad_email, ".smi-errors[role=alert]"
    )
    assert no_terms.status_code == 400 and "accept the terms" in text(
        no_terms, ".smi-errors[role=alert]"
    )
    assert one(no_terms, ".smi-field--check a")["href"] == "https://example.com/terms"
    assert one(no_terms, "input[name=terms_accepted]").has_attr("required")
    assert not PurchaseJob.objects.exists()


@override_settings(WAGTAIL_SMI={"PAYMENT_BACKEND": FAILING_PROVIDER})
def test_a_provider_failure_is_explained_in_the_page(client, offer):
    image, page = offer

    response = client.post(buy_url(image, page), {"resolution": "4x"})

    assert response.status_code == 502
    assert "try again" in text(response, ".smi-errors[role=alert]")


def test_the_purchase_page_is_a_404_when_not_for_sale(client, make_image, root_page):
    image = make_image()
    page = publish_gallery(root_page, [plain(image)])

    assert client.get(buy_url(image, page)).status_code == 404


def test_the_purchase_page_is_a_404_for_an_unpublished_page(client, offer):
    image, page = offer
    page.unpublish()

    assert client.get(buy_url(image, page)).status_code == 404


def test_the_purchase_page_needs_a_page_id(client, offer):
    image, _page = offer

    response = client.get(f"/smi/buy/{image.pk}/?page=abc")

    assert response.status_code == 400
    assert b"page" in response.content


# --- order status page -----------------------------------------------------------------


def order_url(job, key):
    return reverse("wagtail_smi:order_status", args=[job.pk]) + (
        f"?key={key}" if key is not None else ""
    )


@pytest.mark.parametrize("key", [None, "", "wrong"])
def test_the_order_page_needs_the_key(client, make_job, key):
    job = make_job("paid")

    assert client.get(order_url(job, key)).status_code == 404


def test_the_order_page_shows_the_order_and_its_stage(client, make_job):
    job = make_job("processing", amount_cents=192, factor=8)

    response = client.get(order_url(job, job.access_key))

    assert response.status_code == 200
    doc = parse(response)
    assert [dd.get_text() for dd in select(doc, ".smi-order dl dd")][:3] == [
        job.image_title,
        "8x · 8000×8000",
        "$1.92",
    ]
    paid, upscaling = one(doc, "li[data-stage=paid]"), one(doc, "li[data-stage=upscaling]")
    assert (classes(paid), paid.get("aria-current")) == ({"is-done"}, None)
    assert (classes(upscaling), upscaling.get("aria-current")) == ({"is-current"}, "step")
    assert (
        one(doc, ".smi-order")["data-status-url"]
        == f"/smi/v1/job-status/{job.pk}?key={job.access_key}"
    )
    assert one(doc, "script[src]")["src"].endswith("/order.js")
    assert "no-store" in response["Cache-Control"]
    assert response["Referrer-Policy"] == "strict-origin"  # the key stays on the page


def test_a_ready_order_shows_the_download_button(client, make_job):
    job = make_job(
        "completed", token_expires_at=timezone.now() + timedelta(hours=24), result_path="x.png"
    )

    doc = parse(client.get(order_url(job, job.access_key)))

    download = one(doc, "p.smi-download")
    assert not download.has_attr("hidden")
    assert (
        one(download, "a")["href"]
        == f"http://127.0.0.1:8000/smi/orders/{job.pk}/download/?key={job.access_key}"
    )
    assert one(doc, ".smi-order")["data-final"] == "1"


@pytest.mark.parametrize(
    "status, words",
    [
        ("refunded", "refunded"),
        ("failed", "refunding your payment"),
        ("needs_attention", "closer look"),
    ],
)
def test_a_failed_or_refunded_order_is_explained(client, make_job, site, status, words):
    settings_row = SmiSiteSettings.for_site(site)
    settings_row.support_email = "help@example.com"
    settings_row.save()
    job = make_job(status)

    doc = parse(client.get(order_url(job, job.access_key)))

    message = one(doc, "p.smi-message[role=status]")
    assert words in message.get_text()
    assert "smi-notice" in classes(message)
    assert "help@example.com" in text(doc, ".smi-problem")
    assert one(doc, "p.smi-download").has_attr("hidden")


def test_the_demo_mailbox_link_shows_only_in_debug_with_a_mailbox(client, make_job, tmp_path):
    job = make_job("completed")
    url = order_url(job, job.access_key)
    mailbox = reverse("demo_mailbox")

    def mailbox_links():
        return [
            link for link in select(client.get(url), "a[href]") if link["href"].startswith(mailbox)
        ]

    assert mailbox_links() == []
    with override_settings(DEBUG=True, SMI_DEMO_MAILBOX_DIR=str(tmp_path)):
        assert len(mailbox_links()) == 1


def test_the_order_page_is_rate_limited(client, make_job):
    job = make_job("paid")
    limits = {
        "prices": (60, 60),
        "checkout": (10, 60),
        "click": (120, 60),
        "status": (1, 60),
        "download": (30, 60),
        "purchase_page": (60, 60),
    }
    with override_settings(WAGTAIL_SMI={"RATE_LIMITS_ENABLED": True, "RATE_LIMITS": limits}):
        codes = [client.get(order_url(job, job.access_key)).status_code for _ in range(2)]

    assert codes == [200, 429]
    assert JobStatus.PAID == PurchaseJob.objects.get().status
