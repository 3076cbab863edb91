"""Helpers for the storefront tests: payment providers standing in for Stripe, pages, and
the ``offer`` fixture (registered for the suite in ``tests/conftest.py``).

The providers are real ``PaymentProvider`` subclasses selected through
``WAGTAIL_SMI["PAYMENT_BACKEND"]`` (a dotted path), exactly as a third-party one would be.
"""

from __future__ import annotations

import pytest
from wagtail.models import Page

from demo_site.home.models import GalleryPage
from wagtail_smi.payments.base import CheckoutSession, PaymentProvider

PROVIDER = "tests.storefront_support.RecordingProvider"
FAILING_PROVIDER = "tests.storefront_support.FailingProvider"


class RecordingProvider(PaymentProvider):
    """Sends the buyer straight to the order's status page, tagged, and remembers calls."""

    name = "testpay"
    calls: list[dict] = []

    def create_checkout(self, job, *, success_url: str, cancel_url: str) -> CheckoutSession:
        RecordingProvider.calls.append(
            {"job_id": job.pk, "success_url": success_url, "cancel_url": cancel_url}
        )
        return CheckoutSession(
            url=success_url + "&checkout=testpay", session_id=f"cs_test_{job.pk.hex}"
        )


class FailingProvider(PaymentProvider):
    name = "brokenpay"

    def create_checkout(self, job, *, success_url: str, cancel_url: str) -> CheckoutSession:
        raise ConnectionError("payment provider unreachable")


def sellable(image, *, for_sale=True, resolutions=(), caption=""):
    return {
        "type": "sellable_image",
        "value": {
            "image": image.pk,
            "caption": caption or image.title,
            "resolutions": list(resolutions),
            "for_sale": for_sale,
        },
    }


def plain(image):
    return {
        "type": "image",
        "value": {"image": image.pk, "alt_text": image.title, "decorative": False},
    }


def rich_text_with(image):
    return {
        "type": "paragraph",
        "value": f'<p>Inline</p><embed embedtype="image" id="{image.pk}" alt="inline" format="fullwidth"/>',
    }


def publish_gallery(
    parent: Page, body, *, slug="gallery-test", title="Gallery test"
) -> GalleryPage:
    """A demo GalleryPage under ``parent`` with ``body``, saved and published."""
    page = GalleryPage(title=title, slug=slug, body=body)
    parent.add_child(instance=page)
    page.save_revision().publish()
    page.refresh_from_db()
    return page


def republish(page: GalleryPage, body) -> GalleryPage:
    page.body = body
    page.save_revision().publish()
    page.refresh_from_db()
    return page


@pytest.fixture
def offer(make_image, root_page):
    """An image for sale on a published gallery page: ``(image, page)``."""
    image = make_image(1000, 1000, title="Aurora")
    return image, publish_gallery(root_page, [sellable(image)])
