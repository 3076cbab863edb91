"""The delivered file carries its rights: copyright, the licence bought and the order, in
its XMP, IPTC and EXIF as the format allows; written with exiv2, read back with Pillow.

Every test here runs the real pipeline (the local upscaler in the worker, delivery to
private storage) from a paid order.
"""

from __future__ import annotations

import io

import pytest
from django.core.files.images import ImageFile
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone
from PIL import Image
from wagtail.images import get_image_model

from tests.conftest import make_image_file
from tests.html_support import one
from tests.licence_support import (
    COMMERCIAL_URL,
    read_rights,
    rewrite_commercial_licence,
    sell_with_licences,
)
from wagtail_smi import fetching, queue
from wagtail_smi.models import SmiSiteSettings
from wagtail_smi.operations import delivery as delivery_ops
from wagtail_smi.storage import private_storage

pytestmark = pytest.mark.django_db

LOCAL = {
    "UPSCALER": {"CLASS": "wagtail_smi.upscalers.local.LocalUpscaler", "OPTIONS": {}},
    "ALLOW_DUMMY_PAYMENTS": True,
    "PUBLIC_BASE_URL": "http://testserver",
}
SUFFIXES = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}


@pytest.fixture(autouse=True)
def local_upscaler():
    with override_settings(WAGTAIL_SMI=LOCAL):
        yield


def original(fmt: str, title: str = "Lake at dusk"):
    """A Wagtail image whose file is a ``fmt`` (the local upscaler keeps the format)."""
    image = get_image_model()(title=title)
    data = make_image_file(60, 40, fmt=fmt)
    image.file = ImageFile(io.BytesIO(data), name=f"lake.{SUFFIXES[fmt]}")
    image.save()
    return image


def paid_order(make_job, site, image, licence_key: str | None = "commercial", **fields):
    """A paid order for ``image`` at 4x, with the site's licence as checkout keeps it."""
    snapshot = {}
    if licence_key:
        snapshot = SmiSiteSettings.for_site(site).licence_snapshot(licence_key)
    return make_job(
        "paid",
        image=image,
        factor=4,
        paid_at=timezone.now(),
        email="buyer@example.com",
        payment_provider="dummy",
        **snapshot,
        **fields,
    )


def process(job, capture) -> bytes:
    """Run the worker's task for the order; the delivered file's bytes."""
    with capture(execute=True):
        queue.enqueue_processing(job.pk)
    job.refresh_from_db()
    assert job.status == "completed", job.last_error
    with private_storage().open(job.result_path, "rb") as f:
        return f.read()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_delivered_files_carry_copyright_licence_and_order_in_every_format(
    fmt, make_job, site, django_capture_on_commit_callbacks
):
    sell_with_licences(site, copyright_holder="Lake Studio")
    job = paid_order(make_job, site, original(fmt))

    rights = read_rights(process(job, django_capture_on_commit_callbacks))

    assert (rights["format"], rights["size"]) == (fmt, (240, 160))
    usage = f"Licence: Commercial use, version 2, terms at {COMMERCIAL_URL}. Order {job.pk}."
    assert rights["xmp_rights"] == "© Lake Studio"
    assert rights["xmp_usage_terms"] == usage
    assert rights["xmp_web_statement"] == COMMERCIAL_URL
    assert rights["xmp_marked"] == "True"
    assert rights["xmp_job_id"] == str(job.pk)
    assert rights["exif_copyright"] == f"© Lake Studio. {usage}"
    assert rights["exif_unique_id"] == job.pk.hex
    if fmt == "JPEG":  # Pillow reads IPTC IIM from JPEG only
        assert rights["iptc"][(2, 116)] == "© Lake Studio"
        assert rights["iptc"][(2, 40)] == usage
        assert rights["iptc"][(2, 103)] == job.pk.hex
    assert rights["png_iptc"] == (fmt == "PNG")  # WebP has no place for IIM
    # The stored size is the file's, metadata included.
    assert job.result_size_bytes == private_storage().size(job.result_path)
    assert job.events.get(code="delivered").data == {"size_bytes": job.result_size_bytes}
    assert not [p for p in fetching.temp_dir().iterdir() if "-rights" in p.name]


def test_the_file_never_carries_the_order_key(make_job, site, django_capture_on_commit_callbacks):
    sell_with_licences(site)
    job = paid_order(make_job, site, original("PNG"))
    data = process(job, django_capture_on_commit_callbacks)
    assert job.access_key.encode() not in data
    assert b"key=" not in data
    assert b"/smi/orders/" not in data


def test_the_file_keeps_the_licence_as_bought_after_the_seller_rewrites_it(
    make_job, site, django_capture_on_commit_callbacks
):
    sell_with_licences(site)
    job = paid_order(make_job, site, original("JPEG"))
    rewrite_commercial_licence(site)

    rights = read_rights(process(job, django_capture_on_commit_callbacks))
    assert "Commercial use, version 2" in rights["xmp_usage_terms"]
    assert rights["xmp_web_statement"] == COMMERCIAL_URL
    assert "Business" not in rights["exif_copyright"]


def test_the_copyright_holder_defaults_to_the_site_name(
    make_job, site, django_capture_on_commit_callbacks
):
    site.site_name = "Harbour Prints"
    site.save()
    sell_with_licences(site, copyright_holder="")
    job = paid_order(make_job, site, original("WEBP"))
    rights = read_rights(process(job, django_capture_on_commit_callbacks))
    assert rights["xmp_rights"] == "© Harbour Prints"


def test_a_licence_without_an_address_points_at_the_sites_terms_of_sale(
    make_job, site, django_capture_on_commit_callbacks
):
    sell_with_licences(site, terms_url="https://shop.example/terms-of-sale/")
    job = paid_order(make_job, site, original("JPEG"), licence_key="personal")
    rights = read_rights(process(job, django_capture_on_commit_callbacks))
    assert rights["xmp_web_statement"] == "https://shop.example/terms-of-sale/"
    assert rights["xmp_usage_terms"].startswith("Licence: Personal use, version 1, terms at ")


def test_an_order_from_before_licences_still_carries_copyright_and_order(
    make_job, site, django_capture_on_commit_callbacks
):
    sell_with_licences(site)
    job = paid_order(make_job, site, original("PNG"), licence_key=None)
    assert job.licence_key == ""
    rights = read_rights(process(job, django_capture_on_commit_callbacks))
    assert rights["xmp_rights"] == "© Lake Studio"
    assert rights["xmp_usage_terms"] == f"Order {job.pk}."
    assert rights["xmp_web_statement"] == ""
    assert rights["exif_unique_id"] == job.pk.hex


def test_redelivery_writes_the_rights_into_the_new_file(
    make_job, site, admin_user, django_capture_on_commit_callbacks
):
    sell_with_licences(site)
    job = paid_order(make_job, site, original("JPEG"))
    process(job, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        delivery_ops.redeliver(job.pk, actor=admin_user)
    job.refresh_from_db()
    with private_storage().open(job.result_path, "rb") as f:
        rights = read_rights(f.read())
    assert rights["exif_unique_id"] == job.pk.hex


@pytest.mark.faults
def test_a_file_whose_rights_cannot_be_written_is_delivered_without_them(
    make_job, site, monkeypatch, superuser, client, django_capture_on_commit_callbacks
):
    """exiv2 refuses (injected at the library's boundary): the customer still gets the
    image, unchanged, and the order says it went out without its metadata."""
    import pyexiv2

    class Refusing:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("exiv2 refused the file")

    monkeypatch.setattr(pyexiv2, "Image", Refusing)
    sell_with_licences(site)
    job = paid_order(make_job, site, original("JPEG"))

    data = process(job, django_capture_on_commit_callbacks)
    with Image.open(io.BytesIO(data)) as image:
        assert (image.format, image.size) == ("JPEG", (240, 160))
        assert not image.getexif()
    assert job.events.get(code="delivered").data == {
        "size_bytes": len(data),
        "rights_metadata": False,
    }
    stored_dir = private_storage().listdir(f"wagtail_smi/{job.pk}")[1]
    assert len(stored_dir) == 1  # no copy left behind either

    client.force_login(superuser)
    page = client.get(reverse("smi_orders:inspect", args=[job.pk]))
    assert "writing them failed" in one(page, "[data-smi-rights-missing]").get_text()
