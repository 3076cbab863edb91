"""Refresh the price list screenshot in docs/screenshots (``admin-price-list.png``): the
settings page with fixed prices per resolution, a self-hosted upscaling cost, a price for a
collection, and the live preview pricing a library image of that collection that has its
own 8x price.

Run from the repository root, with the test dependencies installed (Playwright) and
Debian's Chromium (``SMI_CHROMIUM``, default /usr/bin/chromium)::

    .venv/bin/python bench/price_list_screenshots.py
    .venv/bin/python bench/price_list_screenshots.py --out /tmp/shots

The demo is built in a temporary folder by ``bench/admin_screenshots.py``'s
``throwaway_demo``; the image is put in a collection and given its own price with
``catalog.set_image_prices`` (as the image's edit page does), and the other values are
typed into the form in the browser and priced by the preview without being saved.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.admin_screenshots import ADMIN, SCREENSHOTS, throwaway_demo  # noqa: E402
from tests.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

VIEWPORT = {"width": 1280, "height": 900}
NAME = "admin-price-list.png"


def an_image_with_its_own_price() -> tuple[str, str]:
    """The demo's first image for sale, moved into a "Landscapes" collection and given its
    own 8x price of 49.00: its id and the collection's."""
    import django  # noqa: PLC0415  (configured only once the demo's settings are in place)

    django.setup()
    from wagtail.models import Collection  # the app registry is ready only now

    from wagtail_smi import catalog
    from wagtail_smi.models.settings import preview_images

    image = preview_images()[0]
    root = Collection.get_first_root_node()
    landscapes = root.get_children().filter(name="Landscapes").first() or root.add_child(
        name="Landscapes"
    )
    image.collection = landscapes
    image.save(update_fields=["collection"])
    catalog.set_image_prices(image, {"8x": 4900})
    return str(image.pk), str(landscapes.pk)


def collapse(page, stream: str) -> None:
    """Fold a StreamField's blocks to their headings, to keep the picture short."""
    toggles = page.locator(
        f"#{stream}-root [data-streamfield-child] > section > .w-panel__header [data-panel-toggle]"
    )
    for index in range(toggles.count()):
        toggles.nth(index).click()


def take(base: str, out: Path) -> Path:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    image_id, collection_id = an_image_with_its_own_price()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(20_000)
            page.goto(f"{base}/admin/login/")
            page.fill("input[name=username]", ADMIN[0])
            page.fill("input[name=password]", ADMIN[1])
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/admin/")
            page.goto(f"{base}/admin/settings/wagtail_smi/smisitesettings/")
            page.wait_for_load_state("networkidle")
            # Fixed prices, a self-hosted upscaler's cost, and a price for the collection.
            page.select_option("select[name=pricing_strategy]", "fixed")
            page.fill("input[name=resolutions-0-value-price]", "29")
            page.fill("input[name=resolutions-1-value-price]", "59")
            page.fill("input[name=cost_per_megapixel]", "0.02")
            page.click("#collection_prices-root .c-sf-add-button")
            page.select_option("select[name=collection_prices-0-value-collection]", collection_id)
            page.fill("input[name=collection_prices-0-value-resolution]", "4x")
            page.fill("input[name=collection_prices-0-value-price]", "19")
            collapse(page, "resolutions")
            collapse(page, "licences")
            # The preview, pricing the library image: 4x from its collection, 8x its own.
            page.select_option("[data-smi-price-preview-image]", image_id)
            page.wait_for_selector(
                f"tr[data-image='{image_id}'][data-resolution='4x'][data-price-cents='1900']"
            )
            page.wait_for_load_state("networkidle")
            # The admin scrolls inside <main>: make the window as tall as the form, then
            # keep the part from the pricing rules down to the preview.
            height = page.evaluate("() => document.querySelector('main').scrollHeight")
            page.set_viewport_size({"width": VIEWPORT["width"], "height": height})
            top = page.locator("#panel-pricing-section").bounding_box()
            bottom = page.locator("#panel-price_preview-section").bounding_box()
            clip = {
                "x": 0,
                "y": top["y"] - 16,
                "width": VIEWPORT["width"],
                "height": bottom["y"] + bottom["height"] - top["y"] + 32,
            }
            path = out / NAME
            page.screenshot(path=str(path), clip=clip)
            return path
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=SCREENSHOTS,
        help="where to write the PNG (default: docs/screenshots)",
    )
    args = parser.parse_args(argv)
    with throwaway_demo() as base:
        print(take(base, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
