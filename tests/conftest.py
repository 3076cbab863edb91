"""Shared fixtures: real images made with Pillow, real pages, and service requirements.

Services: tests marked ``postgres`` need the database to be PostgreSQL (set DATABASE_URL);
``redis`` tests need Redis; ``browser`` tests need Chromium; ``nginx`` tests need nginx. Elsewhere they skip with the
reason. ``SMI_REQUIRE_SERVICES`` (CI) lists the services that must be there, e.g.
``postgres,redis,browser``: a missing one then fails its tests instead of skipping them.
"""

from __future__ import annotations

import io
import os
import socket

import pytest
from django.core.files.images import ImageFile
from django.db import connection
from PIL import Image as PILImage
from wagtail.images import get_image_model
from wagtail.models import Page, Site

# Fixture modules shared by the whole suite: test modules use their fixtures by name,
# and import plain helpers (functions, constants) from them explicitly.
pytest_plugins = [
    "tests.admin_support",
    "tests.browser",
    "tests.fault_support",
    "tests.moto_support",
    # Every /smi/v1/ answer a test gets is checked against the OpenAPI document.
    "tests.openapi_support",
    "tests.operations_support",
    "tests.pages_support",
    "tests.storefront_support",
    "tests.stripe_fixtures",
]

REQUIRED_SERVICES = {
    s.strip() for s in os.environ.get("SMI_REQUIRE_SERVICES", "").split(",") if s.strip()
}
CHROMIUM = os.environ.get("SMI_CHROMIUM", "/usr/bin/chromium")
NGINX = os.environ.get("SMI_NGINX", "/usr/sbin/nginx")


def _missing(service: str, reason: str):
    if service in REQUIRED_SERVICES:
        pytest.fail(f"required service missing: {reason}", pytrace=False)
    pytest.skip(reason)


def redis_reachable(host: str = "127.0.0.1", port: int = 6379) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(autouse=True)
def _fresh_caches():
    """Cached site settings and renditions must not outlive a rolled-back test."""
    from django.core.cache import caches

    for cache in caches.all():
        cache.clear()
    yield
    for cache in caches.all():
        cache.clear()


@pytest.fixture(autouse=True)
def _service_requirements(request):
    if request.node.get_closest_marker("postgres") and connection.vendor != "postgresql":
        _missing(
            "postgres",
            "needs PostgreSQL: run with DATABASE_URL=postgres://postgres@127.0.0.1:5432/test",
        )
    if request.node.get_closest_marker("redis") and not redis_reachable():
        _missing("redis", "needs Redis on 127.0.0.1:6379")
    if request.node.get_closest_marker("browser") and not os.path.exists(CHROMIUM):
        _missing("browser", f"needs Chromium at {CHROMIUM} (apt-get install -y chromium)")
    if request.node.get_closest_marker("nginx") and not os.path.exists(NGINX):
        _missing("nginx", f"needs Debian's nginx at {NGINX} (apt-get install -y nginx-light)")


def make_image_file(width: int, height: int, *, fmt: str = "JPEG", color=(30, 120, 200)) -> bytes:
    img = PILImage.new("RGB", (width, height), color)
    # A little structure so resampling has something to do.
    for x in range(0, width, max(width // 16, 1)):
        for y in range(height):
            img.putpixel((x, y), (255, 255, 255))
    buffer = io.BytesIO()
    img.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture
def make_image(db):
    """Create a Wagtail image of the given size, made with Pillow."""

    def factory(width: int = 1000, height: int = 1000, title: str = "Test image"):
        Image = get_image_model()
        image = Image(title=title)
        image.file = ImageFile(io.BytesIO(make_image_file(width, height)), name="test.jpg")
        image.save()
        return image

    return factory


def ensure_wagtail_baseline() -> Site:
    """The rows Wagtail's migrations create: locale, root collection, root and home pages,
    default site. Recreated when a transactional test flushed them (such a test empties
    every table when it ends, so the tests after it may find none of them)."""
    from django.conf import settings
    from django.contrib.contenttypes.models import ContentType
    from wagtail.coreutils import get_supported_content_language_variant
    from wagtail.models import Collection, Locale

    ContentType.objects.clear_cache()  # ids cached before a flush are stale
    locale, _ = Locale.objects.get_or_create(
        language_code=get_supported_content_language_variant(settings.LANGUAGE_CODE)
    )
    if Collection.get_first_root_node() is None:
        Collection.add_root(name="Root")
    site = Site.objects.filter(is_default_site=True).select_related("root_page").first()
    if site is not None:
        return site
    root = Page.get_first_root_node() or Page.add_root(
        instance=Page(title="Root", slug="root", locale=locale)
    )
    home = root.get_children().first() or root.add_child(
        instance=Page(title="Home", slug="home", locale=locale)
    )
    return Site.objects.create(hostname="localhost", port=80, root_page=home, is_default_site=True)


@pytest.fixture
def site(db) -> Site:
    return ensure_wagtail_baseline()


@pytest.fixture
def wagtail_baseline(site) -> Site:
    """For transactional tests: Wagtail's baseline rows, whatever ran before."""
    return site


@pytest.fixture
def root_page(site) -> Page:
    return site.root_page


@pytest.fixture
def make_job(make_image, site):
    """Create a purchase job directly in a given state (for tests of later steps)."""
    from wagtail_smi.models import PurchaseJob

    def factory(status: str = "awaiting_payment", *, image=None, page=None, **fields):
        image = image or make_image(1000, 1000)
        page = page or site.root_page
        factor = fields.pop("factor", 4)
        values = {
            "site": site,
            "image": image,
            "image_ref": image.pk,
            "image_title": image.title,
            "page": page,
            "page_ref": page.pk,
            "page_title": page.title,
            "resolution": f"{factor}x",
            "factor": factor,
            "original_width": image.width,
            "original_height": image.height,
            "output_width": image.width * factor,
            "output_height": image.height * factor,
            "amount_cents": 50,
            "currency": "usd",
            "status": status,
        }
        values.update(fields)
        return PurchaseJob.objects.create(**values)

    return factory
