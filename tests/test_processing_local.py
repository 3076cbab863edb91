"""The local (Pillow) upscaler, run through the real pipeline in the worker."""

from __future__ import annotations

import pytest
from django.core import mail
from django.test import override_settings
from django.utils import timezone
from PIL import Image

from wagtail_smi import fetching, queue
from wagtail_smi.models import SmiSiteSettings
from wagtail_smi.operations import delivery as delivery_ops
from wagtail_smi.operations import processing
from wagtail_smi.operations.upscaling import upscale_request
from wagtail_smi.storage import private_storage
from wagtail_smi.timeline import describe

LOCAL = {
    "UPSCALER": {"CLASS": "wagtail_smi.upscalers.local.LocalUpscaler", "OPTIONS": {}},
    "ALLOW_DUMMY_PAYMENTS": True,
    "PUBLIC_BASE_URL": "http://testserver",
}


@pytest.fixture(autouse=True)
def local_upscaler():
    with override_settings(WAGTAIL_SMI=LOCAL):
        yield


def paid(make_job, make_image, width, height, factor):
    image = make_image(width, height, title="Lighthouse")
    return make_job(
        "paid",
        image=image,
        factor=factor,
        paid_at=timezone.now(),
        email="b@example.com",
        payment_provider="dummy",
    )


def test_local_upscaler_delivers_exactly_four_times_the_original(
    make_job, make_image, django_capture_on_commit_callbacks
):
    job = paid(make_job, make_image, 120, 90, 4)
    before = set(fetching.temp_dir().iterdir())
    with django_capture_on_commit_callbacks(execute=True):
        queue.enqueue_processing(job.pk)
    job.refresh_from_db()

    assert job.status == "completed"
    assert job.upscaler == "local"
    with private_storage().open(job.result_path, "rb") as f, Image.open(f) as result:
        assert result.size == (480, 360)
        assert result.format == "JPEG"
    assert job.result_content_type == "image/jpeg"
    assert job.result_size_bytes == private_storage().size(job.result_path)
    assert len(mail.outbox) == 1
    assert not [
        p for p in set(fetching.temp_dir().iterdir()) - before if p.name.startswith("local-")
    ]


def test_local_upscaler_refuses_outputs_over_the_sites_limit_before_allocating(
    make_job, make_image, site, django_capture_on_commit_callbacks
):
    site_settings = SmiSiteSettings.for_site(site)
    site_settings.max_output_megapixels = 1
    site_settings.save()
    job = paid(make_job, make_image, 400, 300, 4)  # 1600×1200 = 1.92 MP
    with django_capture_on_commit_callbacks(execute=True):
        queue.enqueue_processing(job.pk)
    job.refresh_from_db()

    assert job.status == "refunded"
    assert "output_too_large" in describe(job.events.get(to_status="failed"))
    assert not job.result_path


def test_running_the_local_task_twice_delivers_once(
    make_job, make_image, django_capture_on_commit_callbacks
):
    job = paid(make_job, make_image, 40, 30, 4)
    with django_capture_on_commit_callbacks(execute=True):
        queue.enqueue_processing(job.pk)
        queue.enqueue_processing(job.pk)
    job.refresh_from_db()
    assert job.status == "completed"
    assert len(mail.outbox) == 1
    assert job.events.filter(to_status="completed").count() == 1
    assert len(private_storage().listdir(f"wagtail_smi/{job.pk}")[1]) == 1


def test_delivery_rerun_after_a_crash_keeps_a_single_file_and_email(
    make_job, make_image, django_capture_on_commit_callbacks
):
    """A worker that stored the file and then died is re-run: nothing is duplicated."""
    from wagtail_smi.upscalers import get_upscaler

    job = paid(make_job, make_image, 40, 30, 4)
    from wagtail_smi.workflow import transition

    transition(job, "processing", code="processing_started")
    job.refresh_from_db()
    request = upscale_request(job)
    size = (job.output_width, job.output_height)
    first = fetching.validate_result(get_upscaler().upscale(request, fetching.temp_dir()), *size)
    second = fetching.validate_result(get_upscaler().upscale(request, fetching.temp_dir()), *size)
    with django_capture_on_commit_callbacks(execute=True):
        assert processing.deliver(job.pk, first) is True
        assert processing.deliver(job.pk, second) is False
    job.refresh_from_db()
    assert job.status == "completed"
    assert len(mail.outbox) == 1
    assert private_storage().listdir(f"wagtail_smi/{job.pk}")[1] == [
        job.result_path.rsplit("/", 1)[-1]
    ]
    first.unlink(missing_ok=True)
    second.unlink(missing_ok=True)


def test_redeliver_rebuilds_a_deleted_file_and_sends_a_new_link(
    make_job, make_image, admin_user, django_capture_on_commit_callbacks
):
    job = paid(make_job, make_image, 40, 30, 4)
    with django_capture_on_commit_callbacks(execute=True):
        queue.enqueue_processing(job.pk)
    job.refresh_from_db()
    old_hash = job.token_hash
    private_storage().delete(job.result_path)
    job.file_deleted_at = timezone.now()
    job.save()

    with django_capture_on_commit_callbacks(execute=True):
        delivery_ops.redeliver(job.pk, actor=admin_user)
    job.refresh_from_db()
    assert job.file_deleted_at is None
    assert private_storage().exists(job.result_path)
    assert job.token_hash != old_hash
    assert len(mail.outbox) == 2
    assert job.events.filter(kind="note", actor=admin_user).exists()


def test_local_upscaling_leaves_pillows_bomb_guard_as_it_was(
    make_job, make_image, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    job = paid(make_job, make_image, 20, 10, 4)  # 80×40 = 3200 pixels out
    with django_capture_on_commit_callbacks(execute=True):
        queue.enqueue_processing(job.pk)
    job.refresh_from_db()
    assert job.status == "completed"
    assert Image.MAX_IMAGE_PIXELS == 1000
