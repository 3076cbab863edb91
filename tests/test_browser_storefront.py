"""The storefront in a real Chromium: the modal with a mouse, with the keyboard only, on a
phone-sized screen, and the purchase page with JavaScript switched off.

Runs on the demo content (``smi_demo_content``) served by pytest-django's live server,
with the dummy payment provider, whose checkout page lives on the same server.
The docs' screenshots of the modal are taken by ``bench/screenshots.py``, not here.
"""

from __future__ import annotations

import os
import re

import pytest
from django.core.cache import caches
from django.core.management import call_command
from wagtail.images import get_image_model

from demo_site.home.models import GalleryPage
from wagtail_smi import pricing
from wagtail_smi.models import PurchaseJob, SmiSiteSettings

pytestmark = [
    pytest.mark.browser,
    # Transactional (the live server is another thread) without serialized rollback: the
    # fixture rebuilds the little of Wagtail's initial data the demo content needs.
    pytest.mark.django_db(transaction=True),
]

CHECKOUT_URL = re.compile(r"/smi/dummy-checkout/[0-9a-f-]{36}/\?key=")


@pytest.fixture
def shop(wagtail_baseline, live_server, settings):
    """Demo content on the live server; returns the gallery's absolute URL."""
    caches["default"].clear()
    settings.WAGTAIL_SMI = {
        **settings.WAGTAIL_SMI,
        "PUBLIC_BASE_URL": live_server.url,
        "PAYMENT_BACKEND": "dummy",
    }
    call_command("smi_demo_content", stdout=open(os.devnull, "w"))
    gallery = GalleryPage.objects.get(slug="gallery")
    yield live_server.url + gallery.url
    caches["default"].clear()


def expected_prices(image_id: int) -> dict[str, int]:
    image = get_image_model().objects.get(pk=image_id)
    rules = SmiSiteSettings.objects.get().pricing_rules()
    return {
        key: pricing.quote(image.width, image.height, rules.option(key), rules).price_cents
        for key in ("4x", "8x")
    }


def shown_prices(page) -> dict[str, int]:
    dialog = page.locator("dialog.smi-dialog")
    dialog.locator(".smi-option__price").first.wait_for()
    prices = {}
    for option in dialog.locator(".smi-option").all():
        key = option.locator("input[name=resolution]").get_attribute("value")
        price = option.locator(".smi-option__price")
        prices[key] = int(price.get_attribute("data-price-cents"))
        assert price.inner_text() == pricing.format_price(prices[key], "usd")
    return prices


def test_buying_through_the_modal_lands_on_the_checkout(shop, browser_page):
    page = browser_page
    page.goto(shop)
    button = page.locator(".smi-get-button").first
    image_id = int(button.get_attribute("data-image-id"))

    button.click()

    dialog = page.locator("dialog.smi-dialog")
    assert dialog.is_visible()
    assert shown_prices(page) == expected_prices(image_id)
    assert dialog.locator("input[value='4x']").is_checked()
    dialog.locator("input[value='8x']").check()
    dialog.locator("button[type=submit]").click()
    page.wait_for_url(CHECKOUT_URL)
    job = PurchaseJob.objects.get()
    assert (job.image_id, job.resolution) == (image_id, "8x")
    assert job.amount_cents == expected_prices(image_id)["8x"]
    assert page.url == job.checkout_url


def test_the_modal_works_with_the_keyboard_only(shop, browser_page):
    page = browser_page
    page.goto(shop)
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('smi-get-button')"):
            break
    else:
        pytest.fail("Tab never reached a purchase button")
    image_id = int(page.evaluate("document.activeElement.dataset.imageId"))

    # Enter opens the modal with focus inside; Escape closes it and focus comes back.
    page.keyboard.press("Enter")
    dialog = page.locator("dialog.smi-dialog")
    dialog.locator(".smi-option").first.wait_for()
    assert page.evaluate(
        "document.querySelector('dialog.smi-dialog').contains(document.activeElement)"
    )
    page.keyboard.press("Escape")
    assert not dialog.is_visible()
    assert page.evaluate("document.activeElement.classList.contains('smi-get-button')")

    page.keyboard.press("Enter")
    assert shown_prices(page) == expected_prices(image_id)
    page.keyboard.press("Tab")  # the close button
    assert page.evaluate("document.activeElement.classList.contains('smi-close')")
    page.keyboard.press("Tab")  # the resolution group, on the pre-selected 4x
    assert page.evaluate("document.activeElement.value") == "4x"
    page.keyboard.press("ArrowDown")
    assert dialog.locator("input[value='8x']").is_checked()
    page.keyboard.press("Tab")  # the licence group, on the default licence
    assert page.evaluate("document.activeElement.value") == "personal"
    page.keyboard.press("ArrowDown")
    assert dialog.locator("input[value='commercial']").is_checked()
    page.keyboard.press("Tab")
    page.keyboard.type("keys@example.com")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.type") == "submit"
    page.keyboard.press("Enter")

    page.wait_for_url(CHECKOUT_URL)
    job = PurchaseJob.objects.get()
    assert (job.image_id, job.resolution, job.licence_key, job.email) == (
        image_id,
        "8x",
        "commercial",
        "keys@example.com",
    )


def test_the_controls_are_labelled(shop, browser_page):
    page = browser_page
    page.goto(shop)
    page.locator(".smi-get-button").first.click()
    dialog = page.locator("dialog.smi-dialog")
    dialog.locator(".smi-option").first.wait_for()

    assert dialog.get_attribute("aria-labelledby")
    assert page.get_by_role("dialog", name="Buy a high-resolution copy").is_visible()
    assert page.get_by_role("button", name="Close").is_visible()
    assert page.get_by_label("Email for the download link (optional)").is_visible()
    assert page.get_by_role("group", name="Choose a resolution").get_by_role("radio").count() == 2
    assert page.get_by_role("group", name="Choose a licence").get_by_role("radio").count() == 2
    assert dialog.locator("[role=status][aria-live=polite]").count() == 1


@pytest.mark.parametrize("width", [320, 375])
def test_the_modal_fits_a_phone_screen(shop, new_browser_page, width):
    page = new_browser_page(
        viewport={"width": width, "height": 740}, is_mobile=True, has_touch=True
    )
    page.goto(shop)
    page.locator(".smi-get-button").first.click()
    dialog = page.locator("dialog.smi-dialog")
    dialog.locator(".smi-option").first.wait_for()

    box = dialog.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= width
    assert (
        page.evaluate("document.querySelector('dialog.smi-dialog').scrollWidth") <= box["width"] + 1
    )
    submit = dialog.locator("button[type=submit]")
    submit.scroll_into_view_if_needed()
    submit_box = submit.bounding_box()
    assert submit.is_visible() and submit_box["x"] + submit_box["width"] <= width


def test_a_price_error_is_worded_for_people(shop, browser_page):
    page = browser_page
    page.goto(shop)
    # The page was rendered while the image was for sale; then it is taken off sale.
    GalleryPage.objects.get(slug="gallery").unpublish()

    page.locator(".smi-get-button").first.click()

    status = page.locator("dialog.smi-dialog .smi-status")
    status.filter(has_text="This image is no longer for sale.").wait_for()


def test_the_purchase_page_works_without_javascript(shop, new_browser_page):
    page = new_browser_page(java_script_enabled=False)
    page.goto(shop)
    button = page.locator(".smi-get-button").first
    image_id = int(button.get_attribute("data-image-id"))

    button.click()

    page.wait_for_url(re.compile(rf"/smi/buy/{image_id}/\?page=\d+$"))
    prices = {
        option.get_attribute("value"): int(
            page.locator(
                f"label[for={option.get_attribute('id')}] .smi-option__price"
            ).get_attribute("data-price-cents")
        )
        for option in page.locator("input[name=resolution]").all()
    }
    assert prices == expected_prices(image_id)
    page.locator("input[value='8x']").check()
    page.locator("button[type=submit]").click()
    page.wait_for_url(CHECKOUT_URL)
    assert PurchaseJob.objects.get().resolution == "8x"


def test_paying_leads_to_the_order_page_with_the_download(shop, browser_page):
    page = browser_page
    page.goto(shop)
    page.locator(".smi-get-button").first.click()
    dialog = page.locator("dialog.smi-dialog")
    dialog.locator("input[name=email]").fill("buyer@example.com")
    dialog.locator("button[type=submit]").click()
    page.wait_for_url(CHECKOUT_URL)

    page.locator("button[value=pay]").click()  # tasks run synchronously in the tests

    page.wait_for_url(re.compile(r"/smi/orders/[0-9a-f-]{36}/\?key="))
    job = PurchaseJob.objects.get()
    assert job.status == "completed"
    page.locator(".smi-stages li[data-stage=ready][aria-current=step]").wait_for()
    download = page.locator(".smi-download a")
    assert download.is_visible()
    assert download.get_attribute("href").endswith(
        f"/smi/orders/{job.pk}/download/?key={job.access_key}"
    )


def test_the_order_page_follows_the_job_by_polling(shop, browser_page):
    from datetime import timedelta

    from django.utils import timezone

    from wagtail_smi import workflow
    from wagtail_smi.catalog import sale_offer
    from wagtail_smi.links import order_url as order_status_url
    from wagtail_smi.models import SaleListing
    from wagtail_smi.operations import start_checkout

    listing = SaleListing.objects.filter(via_block=True).first()
    job = start_checkout(
        offer=sale_offer(listing.image_id, listing.page_id),
        resolution_key="4x",
        email="a@example.com",
    )
    workflow.transition(job, "paid", code="payment_received")
    page = browser_page
    page.goto(order_status_url(job))
    page.locator(".smi-stages li[data-stage=paid][aria-current=step]").wait_for()
    assert not page.locator(".smi-download").is_visible()

    workflow.transition(job, "processing", code="processing_started")
    page.locator(".smi-stages li[data-stage=upscaling][aria-current=step]").wait_for()
    workflow.transition(
        job,
        "completed",
        code="delivered",
        result_path="smi/test.png",
        token_expires_at=timezone.now() + timedelta(hours=24),
    )

    page.locator(".smi-stages li[data-stage=ready][aria-current=step]").wait_for()
    assert page.locator(".smi-download a").is_visible()
    assert page.locator(".smi-expiry").inner_text().startswith("The link works until")
    assert page.locator(".smi-progress").get_attribute("value") == "100"
