"""Downloads: the emailed token link, the order page's button, and signed originals."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from wagtail_smi import links, storage
from wagtail_smi.models import DownloadEvent
from wagtail_smi.operations import delivery as delivery_ops

PAYLOAD = bytes(range(256)) * 40  # 10240 bytes


@pytest.fixture
def delivered(make_job, settings):
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "PUBLIC_BASE_URL": "http://testserver"}

    def factory(**fields):
        job = make_job(
            "processing", paid_at=timezone.now(), email="b@example.com", image_title="Old Mill"
        )
        name = storage.private_storage().save(
            f"wagtail_smi/{job.pk}/old-mill-4x.png", ContentFile(PAYLOAD)
        )
        token, token_values = delivery_ops.token_fields(job)
        values = {
            "status": "completed",
            "result_path": name,
            "result_size_bytes": len(PAYLOAD),
            "result_content_type": "image/png",
            **token_values,
            **fields,
        }
        for key, value in values.items():
            setattr(job, key, value)
        job.save()
        return job, token

    return factory


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_full_download_streams_the_file_as_an_attachment(client, delivered):
    job, token = delivered()
    response = client.get(f"/smi/download/{token}", REMOTE_ADDR="203.0.113.9")

    assert response.status_code == 200
    assert body(response) == PAYLOAD
    assert response["Content-Type"] == "image/png"
    assert response["Content-Length"] == str(len(PAYLOAD))
    assert response["Content-Disposition"] == 'attachment; filename="old-mill-4x-4000x4000.png"'
    assert response["Cache-Control"] == "no-store, private"
    assert response["Accept-Ranges"] == "bytes"
    job.refresh_from_db()
    assert job.download_count == 1
    event = DownloadEvent.objects.get(job=job)
    assert event.ip_hash and "203.0.113.9" not in event.ip_hash and not event.ranged


def test_ranged_download_resumes_with_206_and_counts_once_per_client(client, delivered):
    job, token = delivered(download_limit=1)
    response = client.get(f"/smi/download/{token}", HTTP_RANGE="bytes=100-1099")
    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes 100-1099/{len(PAYLOAD)}"
    assert response["Content-Length"] == "1000"
    assert body(response) == PAYLOAD[100:1100]

    # The same client resuming: not counted again, even with the limit used up.
    tail = client.get(f"/smi/download/{token}", HTTP_RANGE="bytes=-10")
    assert tail.status_code == 206 and body(tail) == PAYLOAD[-10:]
    job.refresh_from_db()
    assert job.download_count == 1
    assert DownloadEvent.objects.filter(job=job, ranged=True).count() == 2


def test_range_requests_from_new_clients_use_up_the_limit(client, delivered):
    job, token = delivered(download_limit=2)
    first = client.get(f"/smi/download/{token}", HTTP_RANGE="bytes=1-", REMOTE_ADDR="198.51.100.1")
    second = client.get(f"/smi/download/{token}", HTTP_RANGE="bytes=1-", REMOTE_ADDR="198.51.100.2")
    assert first.status_code == second.status_code == 206
    third = client.get(
        f"/smi/download/{token}",
        HTTP_RANGE="bytes=1-",
        REMOTE_ADDR="198.51.100.3",
        HTTP_ACCEPT="application/json",
    )
    assert third.status_code == 410 and third.json()["error"] == "limit_reached"
    job.refresh_from_db()
    assert job.download_count == 2


def test_range_request_long_after_the_last_download_counts_again(client, delivered):
    job, token = delivered(download_limit=5)
    assert client.get(f"/smi/download/{token}", REMOTE_ADDR="198.51.100.1").status_code == 200
    DownloadEvent.objects.filter(job=job).update(created_at=timezone.now() - timedelta(hours=25))
    response = client.get(
        f"/smi/download/{token}", HTTP_RANGE="bytes=1-", REMOTE_ADDR="198.51.100.1"
    )
    assert response.status_code == 206
    job.refresh_from_db()
    assert job.download_count == 2


def test_unsatisfiable_range_is_416(client, delivered):
    _job, token = delivered()
    response = client.get(f"/smi/download/{token}", HTTP_RANGE=f"bytes={len(PAYLOAD)}-")
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(PAYLOAD)}"


def test_expired_link_is_410(client, delivered):
    _job, token = delivered(token_expires_at=timezone.now() - timedelta(seconds=1))
    response = client.get(f"/smi/download/{token}", HTTP_ACCEPT="application/json")
    assert response.status_code == 410
    assert response.json()["error"] == "expired"


def test_download_limit_allows_that_many_downloads_then_410(client, delivered):
    job, token = delivered(download_limit=2)
    assert client.get(f"/smi/download/{token}").status_code == 200
    assert client.get(f"/smi/download/{token}").status_code == 200
    response = client.get(f"/smi/download/{token}", HTTP_ACCEPT="application/json")
    assert response.status_code == 410
    assert response.json()["error"] == "limit_reached"
    job.refresh_from_db()
    assert job.download_count == 2


@pytest.mark.parametrize(
    "token",
    ["A" * 64, "A" * 63, "A" * 65, "*" * 64, "a" * 63 + "=", ""],
)
def test_unknown_or_malformed_tokens_are_404(client, delivered, token):
    delivered()
    assert client.get(f"/smi/download/{token}").status_code == 404


def test_refunded_or_revoked_download_is_410(client, delivered):
    _job, token = delivered(status="refunded", access_revoked_at=timezone.now())
    assert client.get(f"/smi/download/{token}").status_code == 410


def test_revoked_order_waiting_for_an_admin_is_410_not_425(client, delivered):
    # Delivered, refunded (access revoked), then the refund failed: needs attention.
    _job, token = delivered(status="needs_attention", access_revoked_at=timezone.now())
    response = client.get(f"/smi/download/{token}", HTTP_ACCEPT="application/json")
    assert response.status_code == 410
    assert response.json()["error"] == "revoked"


def test_expired_link_of_an_order_waiting_for_an_admin_is_410(client, delivered):
    _job, token = delivered(
        status="needs_attention", token_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert client.get(f"/smi/download/{token}").status_code == 410


def test_odd_resolution_key_cannot_break_the_file_name_or_header(
    client, make_job, settings, tmp_path
):
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "PUBLIC_BASE_URL": "http://testserver"}
    job = make_job(
        "processing", paid_at=timezone.now(), image_title="Old Mill", resolution='x"/\n..'
    )
    result = tmp_path / "result.png"
    result.write_bytes(PAYLOAD)
    name, _size, _type = storage.store_result(job, result)
    assert name.startswith(f"wagtail_smi/{job.pk}/old-mill-x") and name.count("/") == 2
    assert '"' not in name and "\n" not in name and ".." not in name
    token, values = delivery_ops.token_fields(job)
    for key, value in {
        "status": "completed",
        "result_path": name,
        "result_content_type": "image/png",
        **values,
    }.items():
        setattr(job, key, value)
    job.save()

    response = client.get(f"/smi/download/{token}")
    assert response.status_code == 200 and body(response) == PAYLOAD
    assert response["Content-Disposition"] == 'attachment; filename="old-mill-x-4000x4000.png"'


def test_resolution_key_that_slugifies_to_nothing_falls_back_to_image(make_job):
    job = make_job(
        "completed", image_title="Old Mill", resolution="/\n", result_path="wagtail_smi/x/f.png"
    )
    assert storage.download_filename(job) == "old-mill-image-4000x4000.png"


def test_deleted_file_is_410(client, delivered):
    job, token = delivered(file_deleted_at=timezone.now())
    assert client.get(f"/smi/download/{token}").status_code == 410


def test_order_download_uses_the_access_key(client, delivered, make_job):
    job, _token = delivered()
    url = f"/smi/orders/{job.pk}/download/"
    assert client.get(url + "?key=" + "0" * 40).status_code == 404
    assert client.get(url).status_code == 404
    response = client.get(url + "?key=" + job.access_key)
    assert response.status_code == 200 and body(response) == PAYLOAD

    waiting = make_job("processing")
    response = client.get(f"/smi/orders/{waiting.pk}/download/?key={waiting.access_key}")
    assert response.status_code == 425


def test_x_accel_redirect_hands_the_file_to_the_web_server(client, delivered, settings):
    job, token = delivered()
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "DOWNLOAD_SERVE": "x-accel-redirect"}
    response = client.get(f"/smi/download/{token}")
    assert response.status_code == 200
    assert response["X-Accel-Redirect"] == "/smi-private/" + job.result_path
    assert response.content == b""
    assert response["Content-Disposition"].startswith("attachment;")


def test_x_sendfile_names_the_file_path(client, delivered, settings, tmp_path):
    settings.STORAGES = {  # a local folder, also when the suite runs on S3 (SMI_TEST_S3)
        **settings.STORAGES,
        "smi_private": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path), "base_url": None},
        },
    }
    job, token = delivered()
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "DOWNLOAD_SERVE": "x-sendfile"}
    response = client.get(f"/smi/download/{token}")
    assert response["X-Sendfile"] == storage.private_storage().path(job.result_path)


def test_post_is_not_allowed(client, delivered):
    _job, token = delivered()
    assert client.post(f"/smi/download/{token}").status_code == 405


def test_download_is_rate_limited(client, delivered, settings):
    _job, token = delivered()
    settings.WAGTAIL_SMI = {
        **settings.WAGTAIL_SMI,
        "RATE_LIMITS_ENABLED": True,
        "RATE_LIMITS": {**settings.WAGTAIL_SMI.get("RATE_LIMITS", {}), "download": (1, 60)},
    }
    from django.core.cache import cache

    cache.clear()
    assert client.get(f"/smi/download/{token}", REMOTE_ADDR="198.51.100.7").status_code == 200
    assert client.get(f"/smi/download/{token}", REMOTE_ADDR="198.51.100.7").status_code == 429


def test_resend_issues_a_new_link_and_the_old_one_stops_working(
    client, delivered, admin_user, mailoutbox, django_capture_on_commit_callbacks
):
    job, old_token = delivered(
        token_expires_at=timezone.now() + timedelta(minutes=5), download_count=3
    )
    with django_capture_on_commit_callbacks(execute=True):
        delivery_ops.resend_link(job.pk, actor=admin_user)
    job.refresh_from_db()
    assert job.token_expires_at > timezone.now() + timedelta(hours=23)
    assert job.download_count == 0
    [message] = mailoutbox
    new_link = next(line for line in message.body.split() if "/smi/download/" in line)
    assert client.get(new_link.removeprefix("http://testserver")).status_code == 200
    assert client.get(f"/smi/download/{old_token}").status_code == 404


def test_resend_is_refused_when_the_file_is_gone(delivered, admin_user):
    job, _token = delivered(file_deleted_at=timezone.now())
    with pytest.raises(delivery_ops.DeliveryError):
        delivery_ops.resend_link(job.pk, actor=admin_user)


def test_signed_original_url_serves_the_original_while_processing(client, make_job, settings):
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "PUBLIC_BASE_URL": "http://testserver"}
    job = make_job("processing")
    url = links.original_url(job).removeprefix("http://testserver")
    response = client.get(url)
    assert response.status_code == 200
    with job.image.open_file() as f:
        assert body(response) == f.read()
    assert client.get(url[:-3] + "xx/").status_code == 404

    job.status = "completed"
    job.save()
    assert client.get(url).status_code == 404


def test_signed_originals_are_not_rate_limited_per_client(client, make_job, settings):
    settings.WAGTAIL_SMI = {
        **settings.WAGTAIL_SMI,
        "PUBLIC_BASE_URL": "http://testserver",
        "RATE_LIMITS_ENABLED": True,
        "RATE_LIMITS": {**settings.WAGTAIL_SMI.get("RATE_LIMITS", {}), "download": (1, 60)},
    }
    urls = [
        links.original_url(make_job("processing")).removeprefix("http://testserver")
        for _ in range(3)
    ]
    # The upscaler fetches every order's original from the same address.
    assert [client.get(url, REMOTE_ADDR="192.0.2.50").status_code for url in urls] == [
        200,
        200,
        200,
    ]


def test_upsampler_uses_the_signed_original_url_when_storage_is_not_public(make_job, settings):
    from wagtail_smi.operations.upscaling import upscale_request
    from wagtail_smi.upscalers.upsampler import source_url

    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "PUBLIC_BASE_URL": "https://shop.example"}
    request = upscale_request(make_job("processing"))
    assert source_url(request, "public").startswith("https://shop.example/media/original_images/")
    assert source_url(request, "signed").startswith("https://shop.example/smi/originals/")
