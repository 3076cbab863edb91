"""The price list settings in a real Chromium: a library image picked in the preview is
priced with its collection's and its own prices, and a fixed price typed in major units is
priced at once, with its upscaling cost and margin, before anything is saved."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from wagtail.models import Collection

from tests.storefront_support import publish_gallery, sellable
from wagtail_smi import catalog
from wagtail_smi.models import SmiSiteSettings

# Transactional (the live server is another thread); Chromium comes from tests/browser.py.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def row(page, image_id, key, licence="personal"):
    return page.locator(
        f'[data-smi-price-preview] tr[data-image="{image_id}"]'
        f'[data-resolution="{key}"][data-licence="{licence}"]'
    )


def test_the_preview_prices_a_chosen_image_as_checkout_would(
    live_server, new_browser_page, site, root_page, make_image
):
    get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-boss")
    SmiSiteSettings.for_site(site)  # created with the defaults (cost plus)
    image = make_image(1000, 1000, title="Lake at dusk")
    image.collection = Collection.get_first_root_node().add_child(name="Landscapes")
    image.save()
    publish_gallery(root_page, [sellable(image)])
    catalog.set_image_prices(image, {"8x": 4900})

    page = new_browser_page()
    page.goto(live_server.url + reverse("wagtailadmin_login"))
    page.fill("input[name=username]", "boss")
    page.fill("input[name=password]", "pw-boss")
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url + reverse("wagtailadmin_home"))
    page.goto(
        live_server.url
        + reverse("wagtailsettings:edit", args=["wagtail_smi", "smisitesettings", site.pk])
    )
    page.select_option("[data-smi-price-preview-image]", str(image.pk))
    page.wait_for_selector(f'[data-smi-price-preview] tr[data-image="{image.pk}"]')

    # Columns: original, resolution, output, price, cost, margin, licence, source.
    cells = row(page, image.pk, "8x").locator("td")
    assert cells.nth(3).inner_text() == "$49.00"  # the image's own price
    assert cells.nth(7).inner_text() == "The image's own price"
    assert row(page, image.pk, "8x", "commercial").locator("td").nth(3).inner_text() == "$147.00"
    assert row(page, image.pk, "4x").locator("td").nth(3).inner_text() == "$0.50"

    # A fixed 4x price, in dollars, and a self-hosted cost: priced before saving.
    page.select_option("select[name=pricing_strategy]", "fixed")
    page.fill("input[name=resolutions-0-value-price]", "29")
    page.fill("input[name=resolutions-1-value-price]", "59")
    page.fill("input[name=cost_per_megapixel]", "0.02")
    page.wait_for_function(
        f"""() => document.querySelector(
            '[data-smi-price-preview] tr[data-image="{image.pk}"][data-resolution="4x"]'
            + '[data-licence="personal"]')?.dataset.priceCents === '2900'"""
    )
    cells = row(page, image.pk, "4x").locator("td")
    # 4000 × 4000 = 16 MP at 0.02 = 0.32 to make; 29.00 − 0.32 = 28.68 kept.
    assert [cells.nth(i).inner_text() for i in (3, 4, 5, 7)] == [
        "$29.00",
        "$0.32",
        "$28.68",
        "Fixed price",
    ]
    assert SmiSiteSettings.for_site(site).pricing_strategy == "cost_plus"  # nothing saved
