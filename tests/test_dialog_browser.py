"""The purchase dialog shows the product: in a real Chromium, on the demo content.

What the buyer reads before paying (the image's title, the whole picture, what each option
delivers, the licence and its price), that the call to action is on screen without
scrolling on a small phone, and that a page of purchase buttons reads as a list of
different images to a screen reader.
"""

from __future__ import annotations

import os
import re

import pytest
from django.core.cache import caches
from django.core.management import call_command
from wagtail.models import Site

from demo_site.home.models import GalleryPage
from wagtail_smi import catalog, rendering
from wagtail_smi.models import PurchaseJob, SaleListing, SmiSiteSettings

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

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


def site_settings(**values) -> SmiSiteSettings:
    """The default site's settings row (made on first use), with ``values`` saved."""
    row = SmiSiteSettings.for_site(Site.objects.get(is_default_site=True))
    for name, value in values.items():
        setattr(row, name, value)
    row.save()
    caches["default"].clear()
    return row


def offer_for(button) -> catalog.SaleOffer:
    return catalog.sale_offer(
        int(button.get_attribute("data-image-id")), int(button.get_attribute("data-page-id"))
    )


def open_dialog(page, index: int = 0):
    button = page.locator(".smi-get-button").nth(index)
    button.click()
    dialog = page.locator("dialog.smi-dialog")
    dialog.locator(".smi-option").first.wait_for()
    return button, dialog


def shown_prices(dialog) -> dict[str, int]:
    return {
        option.locator("input[name=resolution]").get_attribute("value"): int(
            option.locator(".smi-option__price").get_attribute("data-price-cents")
        )
        for option in dialog.locator(".smi-option").all()
    }


def test_each_button_names_its_image_and_announces_a_dialog(shop, browser_page):
    page = browser_page
    page.goto(shop)
    buttons = page.locator(".smi-get-button")
    titles = [
        SaleListing.objects.select_related("image")
        .get(
            image_id=button.get_attribute("data-image-id"),
            page_id=button.get_attribute("data-page-id"),
        )
        .image.title
        for button in buttons.all()
    ]

    assert len(titles) == 6 and len(set(titles)) == 6
    for button, title in zip(buttons.all(), titles, strict=True):
        assert button.get_attribute("aria-haspopup") == "dialog"
        assert button.inner_text() == "Buy high-res"
    # What a screen reader lists: six links, each with its own name.
    for title in titles:
        assert page.get_by_role("link", name=f"Buy high-res: {title}", exact=True).count() == 1


def test_the_dialog_shows_the_title_and_the_whole_picture(shop, browser_page):
    page = browser_page
    page.goto(shop)
    button, dialog = open_dialog(page, 1)
    offer = offer_for(button)

    assert dialog.locator(".smi-product__title").inner_text() == offer.image.title
    preview = dialog.locator("img.smi-preview")
    preview.wait_for()
    preview.evaluate("img => img.decode()")
    shape = preview.evaluate(
        """img => ({fit: getComputedStyle(img).objectFit, box: img.getBoundingClientRect(),
                   natural: [img.naturalWidth, img.naturalHeight]})"""
    )
    # The whole picture, in its own proportions: not cropped to a strip.
    assert shape["fit"] == "contain"
    width, height = shape["natural"]
    assert shape["box"]["width"] / shape["box"]["height"] == pytest.approx(width / height, rel=0.02)
    assert shape["box"]["height"] > 160


def test_the_licence_choice_changes_the_prices_and_the_order(shop, browser_page):
    page = browser_page
    page.goto(shop)
    button, dialog = open_dialog(page, 1)
    quotes, _currency = offer_for(button).quotes()
    licences = page.get_by_role("group", name="Choose a licence")

    assert licences.get_by_role("radio", name="Personal use").is_checked()
    assert shown_prices(dialog) == {key: q.licence_prices["personal"] for key, q in quotes.items()}
    assert licences.get_by_text("Prints and screens at home").is_visible()

    licences.get_by_role("radio", name="Commercial use").check()

    commercial = {key: q.licence_prices["commercial"] for key, q in quotes.items()}
    assert shown_prices(dialog) == commercial
    assert commercial["4x"] > quotes["4x"].price_cents
    dialog.get_by_role("button", name="Continue to payment").click()
    page.wait_for_url(CHECKOUT_URL)
    job = PurchaseJob.objects.get()
    assert (job.resolution, job.licence_key, job.amount_cents) == (
        "4x",
        "commercial",
        commercial["4x"],
    )


def test_the_withdrawal_waiver_is_asked_for_and_recorded(shop, browser_page):
    site_settings(require_withdrawal_waiver=True)
    page = browser_page
    page.goto(shop)
    _button, dialog = open_dialog(page)
    waiver = dialog.get_by_role("checkbox", name=re.compile("right of withdrawal"))
    submit = dialog.get_by_role("button", name="Continue to payment")

    submit.click()
    dialog.locator(".smi-status--error").wait_for()
    assert "right of withdrawal" in dialog.locator(".smi-status").inner_text()
    assert not PurchaseJob.objects.exists()
    waiver.check()
    submit.click()

    page.wait_for_url(CHECKOUT_URL)
    assert PurchaseJob.objects.get().withdrawal_waived_at is not None


@pytest.mark.parametrize(("width", "height"), [(320, 568), (375, 667)])
def test_the_call_to_action_is_on_screen_without_scrolling(shop, new_browser_page, width, height):
    site_settings(require_withdrawal_waiver=True, terms_url="https://example.com/terms")
    page = new_browser_page(
        viewport={"width": width, "height": height}, is_mobile=True, has_touch=True
    )
    page.goto(shop)
    _button, dialog = open_dialog(page, 1)
    submit = dialog.get_by_role("button", name="Continue to payment")

    body = dialog.locator(".smi-dialog__body")
    dialog.locator(".smi-waiver").wait_for()  # the longest form this site can show

    box = submit.bounding_box()  # nothing scrolled: where it is when the dialog opens
    assert body.evaluate("node => node.scrollTop") == 0
    assert box["x"] >= 0 and box["x"] + box["width"] <= width
    assert box["y"] >= 0 and box["y"] + box["height"] <= height
    # The choices scroll inside the dialog, above a call to action that stays put.
    assert body.evaluate("node => node.scrollHeight > node.clientHeight")
    body.evaluate("node => node.scrollTo(0, node.scrollHeight)")
    assert submit.bounding_box() == box


def test_each_option_says_what_file_it_delivers(shop, browser_page):
    page = browser_page
    page.goto(shop)
    button, dialog = open_dialog(page, 1)
    offer = offer_for(button)
    quotes, _currency = offer.quotes()

    for key, quote in quotes.items():
        expected = rendering.deliverable(offer.image, quote.output_width, quote.output_height)
        detail = dialog.locator(f".smi-option:has(input[value='{key}']) .smi-option__detail")
        assert expected.print_display in detail.inner_text()
        assert expected.file_display in detail.inner_text()
