"""Playwright + Debian's Chromium fixtures for browser tests (``@pytest.mark.browser``).

Registered for the whole suite in ``tests/conftest.py`` (``pytest_plugins``): a test asks
for ``chromium``, ``browser_page`` or ``new_browser_page`` by name. Chromium is launched from
``SMI_CHROMIUM`` (default /usr/bin/chromium) headless and offline; without it the tests skip with the reason, or fail when CI lists
``browser`` in ``SMI_REQUIRE_SERVICES``.

pytest-django's ``live_server`` runs the site in a thread of this process; Playwright's sync
API runs an event loop here too, so Django's async-safety check is relaxed for these tests.
Once that loop runs, Django hands this thread new connection wrappers (same test database)
without the snapshot ``serialized_rollback`` restores from: browser tests should be
``django_db(transaction=True)`` and build the little initial data they need themselves.
"""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("SMI_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 812}


def _require_chromium():
    required = {s.strip() for s in os.environ.get("SMI_REQUIRE_SERVICES", "").split(",")}
    if os.path.exists(CHROMIUM):
        return
    reason = f"needs Chromium at {CHROMIUM} (apt-get install -y chromium)"
    if "browser" in required:
        pytest.fail(f"required service missing: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium():
    """One headless Chromium for the session (Playwright's sync API runs one instance per
    thread, so every browser test shares it)."""
    _require_chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - playwright is a test dependency
        pytest.skip("needs the playwright package")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


def serve_media(context, media_root: str | Path) -> None:
    """Answer ``/media/...`` from disk: the live server does not serve uploaded files."""
    root = Path(media_root).resolve()

    def handle(route):
        path = route.request.url.split("/media/", 1)[1].split("?", 1)[0]
        file = (root / path).resolve()
        if root not in file.parents or not file.is_file():
            route.fulfill(status=404, body="not found")
            return
        route.fulfill(
            status=200,
            body=file.read_bytes(),
            content_type=mimetypes.guess_type(file.name)[0] or "application/octet-stream",
        )

    context.route("**/media/**", handle)


@pytest.fixture
def browser_page(chromium, settings):
    """A fresh page (desktop size, JavaScript on) whose /media/ comes from MEDIA_ROOT."""
    context = chromium.new_context(viewport=DESKTOP)
    serve_media(context, settings.MEDIA_ROOT)
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


@pytest.fixture
def new_browser_page(chromium, settings):
    """Factory for pages with other options (``java_script_enabled=False``, a viewport...)."""
    contexts = []

    def factory(**options):
        options.setdefault("viewport", DESKTOP)
        context = chromium.new_context(**options)
        serve_media(context, settings.MEDIA_ROOT)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        return page

    yield factory
    for context in contexts:
        context.close()
