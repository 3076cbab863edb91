"""The server-rendered pages: purchase without JavaScript, and the order status page."""

from datetime import timedelta

import pytest
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from tests.storefront_support import FAILING_PROVIDER, PROVIDER, plain, publish_gallery, sellable
from wagtail_smi.models import JobStatus, PurchaseJob, SmiSiteSettings

pytestmark = pytest.mark.django_db


@pytest.fixture
def offer(make_image, root_page):
    image = make_image(1000, 1000, title="Aurora")
    page = publish_gallery(root_page, [sellable(image)])
    return image, page


def buy_url(image, page):
    return f"/smi/buy/{image.pk}/?page={page.pk}"


# --- purchase page ---------------------------------------------------------------------


def test_the_purchase_page_lists_prices_with_4x_preselected(client, offer):
    image, page = offer

    response = client.get(buy_url(image, page))

    html = response.content.decode()
    assert response.status_code == 200
    assert 'value="4x" id="smi-res-4x" aria-describedby="smi-res-4x-detail" checked' in html
    assert 'data-price-cents="50">$0.50<' in html
    assert 'data-price-cents="192">$1.92<' in html
    assert "1000×1000 becomes 8000×8000" in html
    assert "original_images" not in html
    assert 'name="csrfmiddlewaretoken"' in html


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

    bad_email = client.post(buy_url(image, page), {"resolution": "4x", "email": "nope", "terms_accepted": "1"})
    no_terms = client.post(buy_url(image, page), {"resolution": "4x"})

    assert bad_email.status_code == 400 and "valid email" in bad_email.content.decode()
    assert no_terms.status_code == 400 and "accept the terms" in no_terms.content.decode()
    assert 'href="https://example.com/terms"' in no_terms.content.decode()
    assert not PurchaseJob.objects.exists()


@override_settings(WAGTAIL_SMI={"PAYMENT_BACKEND": FAILING_PROVIDER})
def test_a_provider_failure_is_explained_in_the_page(client, offer):
    image, page = offer

    response = client.post(buy_url(image, page), {"resolution": "4x"})

    assert response.status_code == 502
    assert "try again" in response.content.decode()


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
    return reverse("wagtail_smi:order_status", args=[job.pk]) + (f"?key={key}" if key is not None else "")


@pytest.mark.parametrize("key", [None, "", "wrong"])
def test_the_order_page_needs_the_key(client, make_job, key):
    job = make_job("paid")

    assert client.get(order_url(job, key)).status_code == 404


def test_the_order_page_shows_the_order_and_its_stage(client, make_job):
    job = make_job("processing", amount_cents=192, factor=8)

    response = client.get(order_url(job, job.access_key))

    html = response.content.decode()
    assert response.status_code == 200
    assert job.image_title in html and "8x · 8000×8000" in html and "$1.92" in html
    assert 'data-stage="paid" class="is-done"' in html
    assert 'data-stage="upscaling" class=" is-current" aria-current="step"' in html
    assert f'data-status-url="/smi/v1/job-status/{job.pk}?key={job.access_key}"' in html
    assert "order.js" in html
    assert "no-store" in response["Cache-Control"]
    assert response["Referrer-Policy"] == "no-referrer"


def test_a_ready_order_shows_the_download_button(client, make_job):
    job = make_job("completed", token_expires_at=timezone.now() + timedelta(hours=24), result_path="x.png")

    html = client.get(order_url(job, job.access_key)).content.decode()

    assert f'href="http://127.0.0.1:8000/smi/orders/{job.pk}/download/?key={job.access_key}"' in html
    assert '<p class="smi-download">' in html  # not hidden
    assert 'data-final="1"' in html


@pytest.mark.parametrize(
    "status, words",
    [("refunded", "refunded"), ("failed", "refunding your payment"), ("needs_attention", "closer look")],
)
def test_a_failed_or_refunded_order_is_explained(client, make_job, site, status, words):
    settings_row = SmiSiteSettings.for_site(site)
    settings_row.support_email = "help@example.com"
    settings_row.save()
    job = make_job(status)

    html = client.get(order_url(job, job.access_key)).content.decode()

    assert words in html
    assert "help@example.com" in html
    assert "smi-notice" in html
    assert 'class="smi-download" hidden' in html


def test_the_demo_mailbox_link_shows_only_in_debug_with_a_mailbox(client, make_job, tmp_path):
    job = make_job("completed")
    url = order_url(job, job.access_key)
    mailbox = reverse("demo_mailbox")

    assert mailbox not in client.get(url).content.decode()
    with override_settings(DEBUG=True, SMI_DEMO_MAILBOX_DIR=str(tmp_path)):
        assert mailbox in client.get(url).content.decode()


def test_the_order_page_is_rate_limited(client, make_job):
    job = make_job("paid")
    limits = {
        "prices": (60, 60), "checkout": (10, 60), "click": (120, 60), "status": (1, 60),
        "download": (30, 60), "purchase_page": (60, 60),
    }
    with override_settings(WAGTAIL_SMI={"RATE_LIMITS_ENABLED": True, "RATE_LIMITS": limits}):
        codes = [client.get(order_url(job, job.access_key)).status_code for _ in range(2)]

    assert codes == [200, 429]
    assert JobStatus.PAID == PurchaseJob.objects.get().status
