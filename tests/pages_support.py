"""Helpers for the tests of the customer pages: a delivered order with its file and token
(the ``delivered`` fixture, registered for the suite in ``tests/conftest.py``), and reading
the demo's layout out of a page."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from tests.html_support import select
from wagtail_smi import storage
from wagtail_smi.operations import delivery as delivery_ops

PAYLOAD = bytes(range(256)) * 40  # 10240 bytes
BUYER = "Buyer@Example.com"


@pytest.fixture
def delivered(make_job, settings):
    """A completed order with its file in private storage, and the emailed token."""
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "PUBLIC_BASE_URL": "http://testserver"}

    def factory(**fields):
        job = make_job("processing", paid_at=timezone.now(), email=BUYER, image_title="Old Mill")
        name = storage.private_storage().save(
            f"wagtail_smi/{job.pk}/old-mill-4x.png", ContentFile(PAYLOAD)
        )
        token, token_values = delivery_ops.token_fields(job)
        values = {
            "status": "completed",
            "result_path": name,
            "result_size_bytes": len(PAYLOAD),
            "result_content_type": "image/png",
            "completed_at": timezone.now(),
            **token_values,
            **fields,
        }
        for key, value in values.items():
            setattr(job, key, value)
        job.save()
        return job, token

    return factory


def demo_navigation(response) -> list[str]:
    """The links of the demo layout's navigation (empty when the page is not in it)."""
    return [a.get_text() for a in select(response, "body > header nav a")]
