"""The customer pages in a real Chromium, in the demo's layout: the "email me a fresh link"
flow from an expired link to a working download, the order page's status and Download
button in the first screen of a phone and of a desktop showing a portrait image, and the
order page refreshing itself when JavaScript is off.

Browser tests are transactional (the live server is another thread), so they build the
little data they need themselves (see ``tests/browser.py``).
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.core import mail
from django.core.files.base import ContentFile
from django.utils import timezone

from tests.pages_support import BUYER, PAYLOAD
from tests.storefront_support import publish_gallery
from wagtail_smi import links, storage, workflow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE_SCREEN = {"width": 375, "height": 667}  # a small phone's first screen
TOKEN_IN_EMAIL = re.compile(r"https?://\S+/smi/download/[A-Za-z0-9_-]{64}")


@pytest.fixture
def live(wagtail_baseline, live_server, settings):
    """Absolute links (emails, buttons) point at the live server."""
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "PUBLIC_BASE_URL": live_server.url}
    return live_server.url


@pytest.fixture
def expired_order(live, delivered, settings):
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "PUBLIC_BASE_URL": live}
    job, token = delivered(token_expires_at=timezone.now() - timedelta(hours=2))
    return job, f"{live}/smi/download/{token}"


def ask_for_fresh_link(page, url: str, email: str) -> str:
    """Open the expired link, type the address, send; the answer's text."""
    page.goto(url)
    page.get_by_label("The email address you used for this order").fill(email)
    page.get_by_role("button", name="Email me a fresh link").click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    return page.locator(".smi-fresh-link-sent .smi-message").inner_text()


def test_an_expired_link_leads_to_a_fresh_link_that_downloads(expired_order, browser_page):
    job, old_link = expired_order
    page = browser_page

    page.goto(old_link)
    assert page.get_by_role("heading", name="This download link has expired").is_visible()
    wrong = ask_for_fresh_link(page, old_link, "not.me@example.com")
    assert mail.outbox == []  # a wrong address: nothing is sent...
    right = ask_for_fresh_link(page, old_link, BUYER.upper())

    # ...and the answer reads the same either way.
    assert wrong.replace("not.me@example.com", "@") == right.replace(BUYER.upper(), "@")
    [message] = mail.outbox
    assert message.to == [BUYER]
    [new_link] = TOKEN_IN_EMAIL.findall(message.body)
    with page.expect_download() as download_info:
        page.evaluate(
            """url => { const a = document.createElement("a");
                        a.href = url; document.body.appendChild(a); a.click(); }""",
            new_link,
        )
    download = download_info.value
    assert Path(download.path()).read_bytes() == PAYLOAD
    assert download.suggested_filename.endswith(".png")


def box_inside(page, selector: str, viewport: dict) -> bool:
    box = page.locator(selector).bounding_box()
    return bool(
        box
        and box["x"] >= 0
        and box["y"] >= 0
        and box["x"] + box["width"] <= viewport["width"]
        and box["y"] + box["height"] <= viewport["height"]
    )


@pytest.mark.parametrize(
    "viewport, image_size",
    [
        (PHONE_SCREEN, (1600, 1000)),
        (PHONE_SCREEN, (900, 1800)),
        ({"width": 1280, "height": 800}, (900, 1800)),
    ],
    ids=["phone-landscape-image", "phone-portrait-image", "desktop-portrait-image"],
)
def test_the_status_and_the_download_button_are_in_the_first_screen(
    live, make_image, make_job, new_browser_page, viewport, image_size, root_page
):
    publish_gallery(root_page, [], slug="prints", title="Prints")  # the demo's navigation
    image = make_image(*image_size, title="Tall pines")
    job = make_job(
        "completed",
        image=image,
        email=BUYER,
        result_path="wagtail_smi/x.png",
        token_expires_at=timezone.now() + timedelta(hours=24),
    )
    mobile = viewport is PHONE_SCREEN
    page = new_browser_page(viewport=viewport, is_mobile=mobile, has_touch=mobile)

    page.goto(f"{live}{links.order_path(job)}")

    page.locator("body > header nav").wait_for()  # in the site's layout
    assert page.locator(".smi-order__image").evaluate("img => img.complete")
    assert box_inside(page, ".smi-message", viewport)
    assert box_inside(page, ".smi-download a.smi-button", viewport)
    assert box_inside(page, ".smi-stages", viewport)


def test_without_javascript_the_order_page_refreshes_until_it_is_ready(
    live, make_job, new_browser_page, settings
):
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "NO_SCRIPT_REFRESH_SECONDS": 1}
    job = make_job("processing", email=BUYER)
    page = new_browser_page(java_script_enabled=False)
    page.goto(f"{live}{links.order_path(job)}")
    assert page.locator("li[data-stage=upscaling][aria-current=step]").is_visible()
    assert not page.locator(".smi-download a").is_visible()

    name = storage.private_storage().save(f"wagtail_smi/{job.pk}/x.png", ContentFile(PAYLOAD))
    workflow.transition(
        job,
        "completed",
        code="delivered",
        result_path=name,
        token_expires_at=timezone.now() + timedelta(hours=24),
    )

    page.locator(".smi-download a").wait_for(state="visible")  # the page reloaded itself
    assert page.locator("li[data-stage=ready][aria-current=step]").is_visible()
    refreshes = page.locator("head noscript meta[http-equiv=refresh]").count()
    assert refreshes == 0  # ready: nothing more to wait for


def test_with_javascript_the_noscript_refresh_does_not_reload_the_page(
    live, make_job, new_browser_page, settings
):
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "NO_SCRIPT_REFRESH_SECONDS": 1}
    job = make_job("paid", email=BUYER)
    page = new_browser_page()
    page.goto(f"{live}{links.order_path(job)}")
    page.evaluate("window.smiStillHere = true")

    # Longer than the refresh interval: order.js polls job-status meanwhile.
    with page.expect_response(lambda r: "/smi/v1/job-status/" in r.url):
        pass
    page.wait_for_timeout(2500)

    assert page.evaluate("window.smiStillHere === true")
