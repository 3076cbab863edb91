"""The processing and delivery operations called directly, with the local (Pillow)
upscaler: process_job, upscaler_callback, install_result and redeliver."""

from __future__ import annotations

import re
import uuid

import pytest
from django.core import mail
from django.test import override_settings
from django.utils import timezone
from PIL import Image

from tests.conftest import make_image_file
from tests.operations_support import codes, event, log
from wagtail_smi import tokens
from wagtail_smi.models import EventCode, PurchaseJob
from wagtail_smi.operations import (
    DeliveryError,
    install_result,
    process_job,
    redeliver,
    upscaler_callback,
)
from wagtail_smi.operations.callbacks import EARLY_CALLBACK
from wagtail_smi.storage import private_storage

pytestmark = pytest.mark.django_db

LOCAL = {
    "UPSCALER": {"CLASS": "wagtail_smi.upscalers.local.LocalUpscaler", "OPTIONS": {}},
    "ALLOW_DUMMY_PAYMENTS": True,
    "PUBLIC_BASE_URL": "http://testserver",
}


@pytest.fixture(autouse=True)
def local_upscaler():
    with override_settings(WAGTAIL_SMI=LOCAL):
        yield


@pytest.fixture
def small_job(make_job, make_image):
    """An order for a 40×30 image at 4x (160×120), with an email address."""

    def factory(status: str = "paid", **fields):
        values = {
            "paid_at": timezone.now(),
            "email": "buyer@example.com",
            "payment_provider": "dummy",
        }
        return make_job(
            status, image=make_image(40, 30, title="Lighthouse"), **{**values, **fields}
        )

    return factory


def emailed_token(message) -> str:
    [token] = re.findall(r"/smi/download/([A-Za-z0-9_-]{64})", message.body)
    return token


def stored_files(job) -> list[str]:
    _dirs, files = private_storage().listdir(f"wagtail_smi/{job.pk}")
    return sorted(files)


@pytest.fixture
def result_file(tmp_path):
    """A validated result as the pipeline holds it just before delivery."""
    path = tmp_path / "result.jpg"
    path.write_bytes(make_image_file(160, 120))
    return path


# --- process_job --------------------------------------------------------------------------------


def test_process_job_upscales_stores_and_emails_a_working_link(
    small_job, queued, django_capture_on_commit_callbacks
):
    job = small_job()

    with django_capture_on_commit_callbacks(execute=True):
        process_job(job.pk)

    job.refresh_from_db()
    assert (job.status, job.upscaler, job.last_error) == ("completed", "local", "")
    with private_storage().open(job.result_path, "rb") as f, Image.open(f) as result:
        assert result.size == (160, 120)
    assert [(code, to) for code, to, _data in log(job)] == [
        ("processing_started", "processing"),
        ("delivered", "completed"),
    ]
    assert event(job, "processing_started").data == {"upscaler": "local"}
    assert event(job, "delivered").data == {"size_bytes": job.result_size_bytes}
    [message] = mail.outbox
    assert message.to == ["buyer@example.com"]
    assert tokens.hash_token(emailed_token(message)) == job.token_hash
    assert job.delivery_email_sent_at is not None
    assert queued == []


@pytest.mark.parametrize("status", ["awaiting_payment", "completed", "refunded", "needs_attention"])
def test_process_job_leaves_orders_outside_the_pipeline_alone(small_job, status):
    job = small_job(status)

    process_job(job.pk)

    assert (PurchaseJob.objects.get(pk=job.pk).status, codes(job), mail.outbox) == (status, [], [])


def test_process_job_for_an_unknown_order_does_nothing(small_job):
    job = small_job()

    process_job(uuid.uuid4())

    assert (PurchaseJob.objects.get(pk=job.pk).status, codes(job)) == ("paid", [])


# --- upscaler_callback --------------------------------------------------------------------------


def test_a_callback_with_the_wrong_secret_is_refused_and_changes_nothing(small_job, queued):
    job = small_job("processing", upscaler_job_id="up_1", upscaler_status="IN_PROGRESS")

    assert upscaler_callback(job.pk, "not-the-secret", "up_1") is False
    assert upscaler_callback(job.pk, "", "up_1") is False

    current = PurchaseJob.objects.get(pk=job.pk)
    assert (current.status, current.upscaler_status, codes(job)) == (
        "processing",
        "IN_PROGRESS",
        [],
    )
    assert queued == []


def test_a_callback_for_an_order_that_does_not_exist_is_refused(small_job, queued):
    job = small_job("processing")
    other = small_job("processing")
    other_id = other.pk
    other.delete()

    assert upscaler_callback(other_id, job.callback_secret) is False
    assert queued == []


def test_a_callback_for_a_submitted_order_checks_its_status_in_a_worker(
    small_job, queued, django_capture_on_commit_callbacks
):
    job = small_job("processing", upscaler_job_id="up_1", upscaler_status="IN_PROGRESS")

    with django_capture_on_commit_callbacks(execute=True):
        assert upscaler_callback(job.pk, job.callback_secret, "up_1") is True

    assert queued == [("process", str(job.pk))]
    assert PurchaseJob.objects.get(pk=job.pk).upscaler_status == "IN_PROGRESS"  # only a hint


def test_a_callback_before_the_upscalers_id_was_saved_leaves_a_mark(small_job, queued):
    job = small_job("processing")

    assert upscaler_callback(job.pk, job.callback_secret) is True

    assert PurchaseJob.objects.get(pk=job.pk).upscaler_status == EARLY_CALLBACK
    assert (codes(job), queued) == ([], [])


def test_a_callback_for_a_finished_order_is_acknowledged_and_ignored(small_job, queued):
    job = small_job("completed")

    assert upscaler_callback(job.pk, job.callback_secret, "up_1") is True
    assert (PurchaseJob.objects.get(pk=job.pk).status, codes(job), queued) == ("completed", [], [])


# --- install_result -----------------------------------------------------------------------------


def test_installing_a_result_twice_delivers_and_emails_once(
    small_job, result_file, django_capture_on_commit_callbacks
):
    job = small_job("processing")

    with django_capture_on_commit_callbacks(execute=True):
        first = install_result(
            job.pk, result_file, from_states={"processing"}, code=EventCode.DELIVERED
        )
    with django_capture_on_commit_callbacks(execute=True):
        second = install_result(
            job.pk, result_file, from_states={"processing"}, code=EventCode.DELIVERED
        )

    job.refresh_from_db()
    assert first.pk == job.pk and second is None
    assert (job.status, job.result_content_type, job.download_count) == (
        "completed",
        "image/jpeg",
        0,
    )
    assert job.token_expires_at > timezone.now()
    assert codes(job) == ["delivered"]
    [stored] = stored_files(job)  # the second copy was removed again
    assert stored == job.result_path.rsplit("/", 1)[1]
    assert re.fullmatch(r"lighthouse-4x-[0-9a-f]{8}\.jpg", stored)
    [message] = mail.outbox
    assert tokens.hash_token(emailed_token(message)) == job.token_hash


def test_a_result_for_an_order_that_moved_on_is_not_stored(small_job, result_file):
    job = small_job("refunded")

    assert (
        install_result(job.pk, result_file, from_states={"processing"}, code=EventCode.DELIVERED)
        is None
    )
    assert not private_storage().exists(f"wagtail_smi/{job.pk}")
    assert (codes(job), mail.outbox) == ([], [])


# --- redeliver ----------------------------------------------------------------------------------


def test_redeliver_rebuilds_a_deleted_file_and_emails_a_new_link(
    small_job, result_file, admin_user, django_capture_on_commit_callbacks
):
    job = small_job("processing")
    with django_capture_on_commit_callbacks(execute=True):
        install_result(job.pk, result_file, from_states={"processing"}, code=EventCode.DELIVERED)
    first = PurchaseJob.objects.get(pk=job.pk)
    private_storage().delete(first.result_path)
    PurchaseJob.objects.filter(pk=job.pk).update(
        file_deleted_at=timezone.now(), access_revoked_at=timezone.now()
    )

    with django_capture_on_commit_callbacks(execute=True):
        again = redeliver(job.pk, actor=admin_user)

    assert again.status == "completed"
    assert (again.file_deleted_at, again.access_revoked_at) == (None, None)
    assert private_storage().exists(again.result_path)
    assert again.token_hash != first.token_hash
    redelivered = event(job, "redelivered")
    assert (redelivered.to_status, redelivered.actor, redelivered.data) == (
        "",
        admin_user,
        {"size_bytes": again.result_size_bytes},
    )
    assert len(mail.outbox) == 2
    assert tokens.hash_token(emailed_token(mail.outbox[-1])) == again.token_hash


def test_redeliver_is_refused_for_an_order_not_delivered_yet(small_job):
    job = small_job("paid")

    with pytest.raises(DeliveryError) as refused:
        redeliver(job.pk)

    assert refused.value.code == "delivery_failed"
    assert (codes(job), mail.outbox) == ([], [])
