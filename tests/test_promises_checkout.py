"""Checkout keeps its promises: a double click or the back button does not make a second
order, and an image that cannot be sold (not a raster image, too small) is never offered,
priced or bought."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.images import ImageFile
from django.test import Client, override_settings
from django.utils import timezone
from PIL import Image as PILImage
from wagtail.images import get_image_model

from tests.html_support import select
from tests.operations_support import codes
from tests.storefront_support import PROVIDER, RecordingProvider, publish_gallery, sellable
from wagtail_smi import catalog, rendering
from wagtail_smi.models import PurchaseJob, SmiSiteSettings
from wagtail_smi.operations import InvalidInput, start_checkout

pytestmark = pytest.mark.django_db

PRICES = "/smi/v1/calculate-all-prices"
CHECKOUT = "/smi/v1/create-checkout"


def browser(secret: str = "a" * 32) -> Client:
    """A browser with its CSRF cookie (the API's checks pass it: the test client)."""
    client = Client()
    client.cookies["csrftoken"] = secret
    return client


def checkout(client, image, page, **fields):
    body = {"image_id": image.pk, "page_id": page.pk, "resolution": "4x", **fields}
    return client.post(CHECKOUT, json.dumps(body), content_type="application/json")


@pytest.fixture
def recording():
    RecordingProvider.calls.clear()
    with override_settings(WAGTAIL_SMI={"PAYMENT_BACKEND": PROVIDER}):
        yield RecordingProvider.calls


# --- duplicate checkouts -----------------------------------------------------------------------


def test_the_same_browser_asking_twice_gets_the_same_order_and_checkout(offer, recording):
    image, page = offer
    client = browser()

    first = checkout(client, image, page, email="b@example.com").json()
    second = checkout(client, image, page, email="b@example.com").json()

    assert second == first  # job_id, checkout_url, amount, currency, status_url
    assert PurchaseJob.objects.count() == 1
    assert len(recording) == 1  # the provider was asked once
    job = PurchaseJob.objects.get()
    assert codes(job) == ["checkout_started", "checkout_reused"]
    assert job.browser_ref and "a" * 32 not in job.browser_ref  # a hash, not the cookie


@pytest.mark.parametrize(
    "change",
    [
        {"email": "other@example.com"},  # someone else's purchase
        {"resolution": "8x"},
        {"secret": "b" * 32},  # another browser, the same email
        {"secret": ""},  # a browser we cannot tell apart
    ],
)
def test_anything_else_makes_a_new_order(offer, recording, change):
    image, page = offer
    secret = change.pop("secret", "a" * 32)
    first = checkout(browser(), image, page, email="b@example.com").json()
    client = browser(secret) if secret else Client()

    second = checkout(client, image, page, **{"email": "b@example.com", **change}).json()

    assert second["job_id"] != first["job_id"]
    assert PurchaseJob.objects.count() == 2


def test_an_order_older_than_ten_minutes_or_with_a_failed_payment_is_not_reused(offer, recording):
    image, page = offer
    client = browser()
    first = checkout(client, image, page).json()
    PurchaseJob.objects.filter(pk=first["job_id"]).update(
        created_at=timezone.now() - timedelta(minutes=11)
    )
    second = checkout(client, image, page).json()
    PurchaseJob.objects.filter(pk=second["job_id"]).update(last_error="The payment failed.")
    third = checkout(client, image, page).json()

    assert len({first["job_id"], second["job_id"], third["job_id"]}) == 3


def test_a_paid_order_is_never_handed_out_again(offer, recording):
    image, page = offer
    client = browser()
    first = checkout(client, image, page).json()
    PurchaseJob.objects.filter(pk=first["job_id"]).update(status="paid", paid_at=timezone.now())

    assert checkout(client, image, page).json()["job_id"] != first["job_id"]


def test_an_order_whose_checkout_was_not_opened_yet_gets_the_same_session(offer):
    """A second click while the first one's provider call is still on its way: the provider
    is asked again for the same order (idempotent per order), not for a new one."""
    image, page = offer
    sale = catalog.sale_offer(image.pk, page.pk)
    job = start_checkout(offer=sale, resolution_key="4x", browser="s" * 32)
    PurchaseJob.objects.filter(pk=job.pk).update(checkout_session_id="", checkout_url="")

    again = start_checkout(offer=sale, resolution_key="4x", browser="s" * 32)

    assert again.pk == job.pk
    assert (again.checkout_session_id, again.checkout_url) == (
        job.checkout_session_id,
        job.checkout_url,
    )


def test_reuse_can_be_turned_off(offer, recording):
    image, page = offer
    client = browser()
    with override_settings(WAGTAIL_SMI={"PAYMENT_BACKEND": PROVIDER, "CHECKOUT_REUSE_MINUTES": 0}):
        first = checkout(client, image, page).json()
        second = checkout(client, image, page).json()
    assert first["job_id"] != second["job_id"]


# --- what can be sold ----------------------------------------------------------------------------

SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="800" height="600"><rect/></svg>'


def svg_image():
    return get_image_model().objects.create(
        title="Logo", file=ContentFile(SVG, name="logo.svg"), width=800, height=600
    )


def raster_image(width: int, height: int, fmt: str, name: str):
    data = io.BytesIO()
    PILImage.new("RGB", (width, height), (40, 90, 160)).save(data, format=fmt)
    image = get_image_model()(title=name)
    image.file = ImageFile(io.BytesIO(data.getvalue()), name=name)
    image.save()
    return image


def prices(image, page):
    body = {"image_id": image.pk, "page_id": page.pk}
    return Client().post(PRICES, json.dumps(body), content_type="application/json")


def test_an_svg_is_not_offered_and_the_price_endpoint_says_why(root_page):
    image = svg_image()
    page = publish_gallery(root_page, [sellable(image)])

    answer = prices(image, page)
    refused = checkout(Client(), image, page)

    assert answer.status_code == refused.status_code == 422
    assert answer.json()["error"] == "image_not_offered"
    assert answer.json()["reason"] == "not_raster"
    assert "pixel images" in answer.json()["message"]
    assert refused.json() == answer.json()
    assert not PurchaseJob.objects.exists()


def test_a_small_image_is_not_offered_until_the_site_lowers_its_minimum(make_image, root_page):
    image = make_image(400, 90, title="Banner")
    page = publish_gallery(root_page, [sellable(image)])

    answer = prices(image, page)
    assert answer.status_code == 422
    assert answer.json()["reason"] == "too_small"
    assert "short side is 90 px" in answer.json()["message"]
    assert "at least 100 px" in answer.json()["message"]

    row = SmiSiteSettings.for_site(page.get_site())
    row.min_short_side = 90
    row.save()
    assert prices(image, page).status_code == 200


def test_checkout_itself_refuses_an_image_that_cannot_be_sold(make_image, root_page):
    image = make_image(99, 300)
    page = publish_gallery(root_page, [sellable(image)])
    sale = catalog.sale_offer(image.pk, page.pk)

    with pytest.raises(InvalidInput) as refused:
        start_checkout(offer=sale, resolution_key="4x")

    assert refused.value.code == "image_not_offered"
    quotes, _currency = sale.quotes()  # every price says why, for the no-script page too
    assert {q.available for q in quotes.values()} == {False}
    assert {q.reason for q in quotes.values()} == {refused.value.message}
    assert not PurchaseJob.objects.exists()


def test_the_page_renders_no_button_for_an_image_that_cannot_be_sold(client, make_image, root_page):
    small = make_image(80, 80, title="Thumbnail")
    fine = make_image(1000, 800, title="Photo")
    page = publish_gallery(root_page, [sellable(small), sellable(fine)])

    html = client.get(page.url).content
    buttons = select(html, ".smi-get-button")

    assert [int(b["data-image-id"]) for b in buttons] == [fine.pk]


@pytest.mark.parametrize(
    ("fmt", "name"), [("PNG", "a.png"), ("WEBP", "a.webp"), ("GIF", "a.gif"), ("JPEG", "a.jpg")]
)
def test_raster_formats_pillow_reads_are_offered(fmt, name, site):
    image = raster_image(300, 200, fmt, name)
    row = SmiSiteSettings.for_site(site)
    assert row.sale_refusal(image) is None
    assert rendering.button_for(None, image, site.root_page.pk) is not None


def test_an_svg_gets_no_button(site):
    image = svg_image()
    assert SmiSiteSettings.for_site(site).sale_refusal(image).code == "not_raster"
    assert rendering.button_for(None, image, site.root_page.pk) is None
