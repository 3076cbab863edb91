"""Originals and delivered files on S3-compatible object storage (django-storages against a
local moto server): no step of an order needs a local file.

Each test gets two fresh buckets (``s3`` fixture, tests/moto_support.py): Wagtail's images
in one, delivered files in the other. Everything goes through the storage API over HTTP,
as with AWS S3, MinIO or R2.
"""

from __future__ import annotations

import io
import re

import pytest
import requests
from django.core import mail
from django.core.checks import ERROR, WARNING
from django.test import override_settings
from django.utils import timezone
from PIL import Image

from tests.storefront_support import publish_gallery, sellable
from wagtail_smi import checks, invariants, links, queue, storage
from wagtail_smi.models import PurchaseJob
from wagtail_smi.operations import delivery as delivery_ops
from wagtail_smi.operations.maintenance import cleanup
from wagtail_smi.operations.upscaling import upscale_request

PAYLOAD = bytes(range(256)) * 40  # 10240 bytes
LOCAL = {
    "UPSCALER": {"CLASS": "wagtail_smi.upscalers.local.LocalUpscaler", "OPTIONS": {}},
    "ALLOW_DUMMY_PAYMENTS": True,
    "PUBLIC_BASE_URL": "http://testserver",
}


@pytest.fixture(autouse=True)
def local_upscaler():
    with override_settings(WAGTAIL_SMI=LOCAL):
        yield


def smi(settings, **values) -> None:
    settings.WAGTAIL_SMI = {**LOCAL, **values}


def emailed_token(message) -> str:
    return re.search(r"/smi/download/([A-Za-z0-9_-]{64})", message.body).group(1)


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.fixture
def delivered(s3, make_job, tmp_path):
    """A completed order whose file was stored in the private bucket, and its token."""

    def factory(**fields):
        job = make_job(
            "processing", paid_at=timezone.now(), email="b@example.com", image_title="Old Mill"
        )
        result = tmp_path / "result.png"
        result.write_bytes(PAYLOAD)
        name, size, content_type = storage.store_result(job, result)
        token, values = delivery_ops.token_fields(job)
        values.update(
            status="completed",
            result_path=name,
            result_size_bytes=size,
            result_content_type=content_type,
            **fields,
        )
        for key, value in values.items():
            setattr(job, key, value)
        job.save()
        return job, token

    return factory


def test_an_order_on_object_storage_is_upscaled_delivered_and_downloaded(
    s3, make_job, make_image, client, django_capture_on_commit_callbacks
):
    image = make_image(60, 40, title="Harbour")
    assert s3.keys(s3.media) == [image.file.name]  # the original is in the bucket
    job = make_job("paid", image=image, paid_at=timezone.now(), email="b@example.com")

    with django_capture_on_commit_callbacks(execute=True):
        queue.enqueue_processing(job.pk)  # the local upscaler reads the original from S3
    job.refresh_from_db()

    assert job.status == "completed"
    assert s3.keys(s3.private) == [job.result_path]
    stored = s3.client.get_object(Bucket=s3.private, Key=job.result_path)["Body"].read()
    with Image.open(io.BytesIO(stored)) as result:
        assert result.size == (240, 160)
    assert job.result_size_bytes == len(stored)

    [message] = mail.outbox
    url = f"/smi/download/{emailed_token(message)}"
    whole = client.get(url, REMOTE_ADDR="203.0.113.9")
    assert whole.status_code == 200
    assert body(whole) == stored
    assert whole["Content-Length"] == str(len(stored))
    assert whole["Content-Disposition"] == 'attachment; filename="harbour-4x-240x160.jpg"'

    resumed = client.get(url, HTTP_RANGE="bytes=100-199", REMOTE_ADDR="203.0.113.9")
    assert resumed.status_code == 206
    assert body(resumed) == stored[100:200]
    assert resumed["Content-Range"] == f"bytes 100-199/{len(stored)}"
    head = client.head(url, REMOTE_ADDR="203.0.113.9")
    assert (head.status_code, head["Content-Length"]) == (200, str(len(stored)))
    job.refresh_from_db()
    assert job.download_count == 1  # the resume and the HEAD were free


def test_two_results_for_one_order_never_share_a_name_on_object_storage(s3, make_job, tmp_path):
    """S3 overwrites an existing name. Two workers racing to deliver one order both store
    a copy before one of them wins the row lock; the loser deletes its copy. Under one name
    that deleted the winner's file: each copy needs a name of its own."""
    job = make_job("processing", paid_at=timezone.now(), image_title="Old Mill")
    first, second = tmp_path / "first.png", tmp_path / "second.png"
    first.write_bytes(b"first copy")
    second.write_bytes(b"second copy")

    winner, _size, _type = storage.store_result(job, first)
    loser, _size, _type = storage.store_result(job, second)
    storage.delete_stored_file(loser)  # what install_result does for the loser

    assert winner != loser
    assert s3.keys(s3.private) == [winner]
    with storage.private_storage().open(winner, "rb") as f:
        assert f.read() == b"first copy"


def test_redirect_mode_counts_the_download_and_hands_out_a_short_lived_signed_url(
    delivered, client, settings, s3
):
    smi(settings, DOWNLOAD_SERVE="redirect", DOWNLOAD_LIMIT=2)
    job, token = delivered()

    response = client.get(f"/smi/download/{token}", REMOTE_ADDR="203.0.113.9")

    assert response.status_code == 302
    assert response["Cache-Control"] == "no-store, private"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "no-referrer"
    location = response["Location"]
    assert location.startswith(f"{s3.endpoint}/{s3.private}/{job.result_path}?")
    assert "X-Amz-Signature=" in location and "X-Amz-Expires=60&" in location
    job.refresh_from_db()
    assert job.download_count == 1

    # What the browser does next: the storage answers the file as the named attachment.
    fetched = requests.get(location, timeout=10)
    assert fetched.status_code == 200
    assert fetched.content == PAYLOAD
    assert fetched.headers["Content-Disposition"] == (
        'attachment; filename="old-mill-4x-4000x4000.png"'
    )
    assert fetched.headers["Content-Type"] == "image/png"
    assert fetched.headers["Cache-Control"] == "no-store, private"
    part = requests.get(location, headers={"Range": "bytes=10-19"}, timeout=10)
    assert (part.status_code, part.content) == (206, PAYLOAD[10:20])

    # The headers are asked for in the signed query (moto does not check signatures;
    # S3 refuses a URL whose query was changed).
    assert "response-content-disposition=attachment" in location

    assert client.get(f"/smi/download/{token}", REMOTE_ADDR="203.0.113.10").status_code == 302
    refused = client.get(f"/smi/download/{token}", REMOTE_ADDR="203.0.113.11")
    assert refused.status_code == 410  # the limit counts redirects like streamed copies


def test_streaming_stays_the_default_on_object_storage(delivered, client):
    _job, token = delivered()
    response = client.get(f"/smi/download/{token}")
    assert response.status_code == 200
    assert body(response) == PAYLOAD
    assert "Location" not in response


def test_x_sendfile_on_object_storage_is_refused_at_start_up_and_streams_meanwhile(
    delivered, client, settings
):
    smi(settings, DOWNLOAD_SERVE="x-sendfile")
    job, token = delivered()

    [error] = checks.check_download_serving(None)
    assert (error.id, error.level) == ("wagtail_smi.E021", ERROR)
    assert "X-Sendfile" in error.msg

    response = client.get(f"/smi/download/{token}")
    assert response.status_code == 200
    assert "X-Sendfile" not in response
    assert body(response) == PAYLOAD


def test_download_modes_are_checked_against_the_private_storage(s3, settings, tmp_path):
    smi(settings, DOWNLOAD_SERVE="redirect")
    assert checks.check_download_serving(None) == []

    smi(settings, DOWNLOAD_SERVE="x-accel-redirect")
    [warning] = checks.check_download_serving(None)
    assert (warning.id, warning.level) == ("wagtail_smi.W020", WARNING)

    smi(settings, DOWNLOAD_SERVE="sendfile")
    assert [e.id for e in checks.check_download_serving(None)] == ["wagtail_smi.E020"]

    unsigned = settings.STORAGES["smi_private"]
    settings.STORAGES = {
        **settings.STORAGES,
        "smi_private": {
            **unsigned,
            "OPTIONS": {**unsigned["OPTIONS"], "querystring_auth": False},
        },
    }
    smi(settings, DOWNLOAD_SERVE="redirect")
    [error] = checks.check_download_serving(None)
    assert error.id == "wagtail_smi.E022" and "querystring_auth" in error.msg

    settings.STORAGES = {
        **settings.STORAGES,
        "smi_private": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path), "base_url": None},
        },
    }
    [error] = checks.check_download_serving(None)
    assert error.id == "wagtail_smi.E022" and "FileSystemStorage" in error.msg
    smi(settings, DOWNLOAD_SERVE="x-sendfile")
    assert checks.check_download_serving(None) == []


def test_redirect_mode_on_a_local_folder_streams_instead(make_job, client, settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "smi_private": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "private"), "base_url": None},
        },
    }
    smi(settings, DOWNLOAD_SERVE="redirect")
    job = make_job("processing", paid_at=timezone.now(), image_title="Old Mill")
    result = tmp_path / "result.png"
    result.write_bytes(PAYLOAD)
    name, size, content_type = storage.store_result(job, result)
    token, values = delivery_ops.token_fields(job)
    values.update(status="completed", result_path=name, result_size_bytes=size)
    for key, value in values.items():
        setattr(job, key, value)
    job.save()

    response = client.get(f"/smi/download/{token}")
    assert response.status_code == 200
    assert body(response) == PAYLOAD


def test_cleanup_deletes_an_expired_file_from_the_bucket(
    delivered, s3, django_capture_on_commit_callbacks
):
    long_ago = timezone.now() - timezone.timedelta(days=30)
    expired, _token = delivered(token_expires_at=long_ago)
    kept, _token = delivered()
    assert len(s3.keys(s3.private)) == 2

    with django_capture_on_commit_callbacks(execute=True):
        counts = cleanup()

    assert counts["files_deleted"] == 1
    assert s3.keys(s3.private) == [kept.result_path]
    expired.refresh_from_db()
    assert expired.file_deleted_at is not None


def test_redeliver_on_object_storage_replaces_the_file_and_deletes_the_old_one(
    s3, make_job, make_image, admin_user, django_capture_on_commit_callbacks
):
    job = make_job("paid", image=make_image(40, 30), paid_at=timezone.now(), email="b@x.test")
    with django_capture_on_commit_callbacks(execute=True):
        queue.enqueue_processing(job.pk)
    job.refresh_from_db()
    old = job.result_path

    with django_capture_on_commit_callbacks(execute=True):
        delivery_ops.redeliver(job.pk, actor=admin_user)  # upscaled again from the S3 original
    job.refresh_from_db()

    assert job.status == "completed" and job.result_path != old
    assert s3.keys(s3.private) == [job.result_path]
    assert len(mail.outbox) == 2


def test_originals_on_object_storage_reach_the_upscaler(s3, make_job, make_image, client):
    image = make_image(30, 20)
    original = s3.client.get_object(Bucket=s3.media, Key=image.file.name)["Body"].read()
    job = make_job("processing", image=image, paid_at=timezone.now())

    # The signed route of the site streams it from the bucket...
    signed = links.original_url(job).removeprefix("http://testserver")
    response = client.get(signed)
    assert response.status_code == 200 and body(response) == original
    # ...and the storage's own (presigned) URL is what an upscaler is given to fetch.
    request = upscale_request(job)
    assert request.public_source_url.startswith(f"{s3.endpoint}/{s3.media}/")
    assert requests.get(request.public_source_url, timeout=10).content == original
    with request.open_source() as f:
        assert f.read() == original


def test_a_purchase_from_checkout_to_a_redirected_download_on_object_storage(
    s3, make_image, root_page, client, settings, django_capture_on_commit_callbacks
):
    """The storefront's whole path with both storages in buckets: checkout, the dummy
    payment, the local upscaler reading the original from S3, delivery to S3, the email,
    and a download the storage itself serves behind a presigned redirect."""
    smi(settings, DOWNLOAD_SERVE="redirect", PAYMENT_BACKEND="dummy")
    image = make_image(160, 100, title="Lighthouse")
    page = publish_gallery(root_page, [sellable(image)])

    checkout = client.post(
        "/smi/v1/create-checkout",
        {"image_id": image.pk, "page_id": page.pk, "resolution": "4x", "email": "b@x.test"},
    )
    assert checkout.status_code == 200, checkout.content
    pay_url = checkout.json()["checkout_url"].removeprefix("http://testserver")
    with django_capture_on_commit_callbacks(execute=True):
        paid = client.post(pay_url, {"action": "pay"})
    assert paid.status_code in (302, 303), paid.content

    job = PurchaseJob.objects.get(pk=checkout.json()["job_id"])
    assert job.status == "completed"
    assert s3.keys(s3.private) == [job.result_path]
    [message] = [m for m in mail.outbox if "/smi/download/" in m.body]  # after the receipt
    response = client.get(f"/smi/download/{emailed_token(message)}", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 302

    fetched = requests.get(response["Location"], timeout=10)
    assert fetched.status_code == 200
    assert (
        fetched.content
        == s3.client.get_object(Bucket=s3.private, Key=job.result_path)["Body"].read()
    )
    assert fetched.headers["Content-Disposition"] == (
        'attachment; filename="lighthouse-4x-640x400.jpg"'
    )
    with Image.open(io.BytesIO(fetched.content)) as result:
        assert result.size == (640, 400)


def test_cleanup_deletes_a_revoked_file_from_the_bucket(
    delivered, s3, django_capture_on_commit_callbacks
):
    revoked, _token = delivered(access_revoked_at=timezone.now())
    kept, _token = delivered()

    with django_capture_on_commit_callbacks(execute=True):
        assert cleanup()["files_deleted"] == 1

    assert s3.keys(s3.private) == [kept.result_path]
    revoked.refresh_from_db()
    assert revoked.file_deleted_at is not None


def test_the_invariant_checker_lists_the_bucket(delivered, s3):
    """An orphan in the bucket and a completed order whose object is gone are found
    through the storage API, as on a local folder."""
    kept, _token = delivered()
    lost, _token = delivered()
    s3.client.delete_object(Bucket=s3.private, Key=lost.result_path)
    orphan = "wagtail_smi/stray/left-behind.png"
    s3.client.put_object(Bucket=s3.private, Key=orphan, Body=b"nobody's")

    later = timezone.now() + invariants.GRACE * 2
    found = {(v.kind, v.path) for v in invariants.find_violations(later, files=True)}

    assert found == {
        (invariants.ORPHAN_FILE, orphan),
        (invariants.MISSING_FILE, lost.result_path),
    }
