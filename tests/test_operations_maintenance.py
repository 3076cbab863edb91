"""Downloads and scheduled work, called directly: check_downloadable and record_download,
the sweeper and the daily cleanup."""

from __future__ import annotations

import os
import re
import time
from datetime import timedelta

import pytest
from django.core import mail
from django.core.files.base import ContentFile
from django.utils import timezone

from tests.operations_support import codes, event, log
from wagtail_smi import fetching, tokens
from wagtail_smi.models import DownloadEvent, EventCode, PurchaseJob
from wagtail_smi.operations import (
    DownloadRefused,
    check_downloadable,
    cleanup,
    record_download,
    sweep,
)
from wagtail_smi.storage import private_storage
from wagtail_smi.workflow import transition

pytestmark = pytest.mark.django_db


def ago(**delta) -> timezone.datetime:
    return timezone.now() - timedelta(**delta)


# --- check_downloadable / record_download -----------------------------------------------------


@pytest.fixture
def downloadable(make_job):
    def factory(status: str = "completed", **fields):
        values = {
            "paid_at": ago(hours=1),
            "result_path": "wagtail_smi/x/result.jpg",
            "token_expires_at": timezone.now() + timedelta(hours=1),
            "download_limit": 2,
        }
        return make_job(status, **{**values, **fields})

    return factory


def test_downloads_count_against_the_limit_and_resumes_do_not(downloadable):
    job = downloadable()

    counted = []
    for _ in range(2):
        check_downloadable(job)
        counted.append(record_download(job, client="client-a", range_start=None))
    job.refresh_from_db()
    with pytest.raises(DownloadRefused) as used_up:
        check_downloadable(job)
    check_downloadable(job, range_start=1024, client="client-a")  # a resume still goes through
    resumed = record_download(job, client="client-a", range_start=1024)

    assert counted == [True, True] and resumed is False
    assert used_up.value.code == "limit_reached"
    assert PurchaseJob.objects.get(pk=job.pk).download_count == 2
    assert list(
        DownloadEvent.objects.filter(job=job).order_by("pk").values_list("counted", "ranged")
    ) == [
        (True, False),
        (True, False),
        (False, True),
    ]


def test_a_range_from_byte_zero_or_from_another_client_is_a_new_copy(downloadable):
    job = downloadable(download_limit=1)
    record_download(job, client="client-a", range_start=None)
    job.refresh_from_db()

    for range_start, client in [(0, "client-a"), (1024, "client-b")]:
        with pytest.raises(DownloadRefused):
            check_downloadable(job, range_start=range_start, client=client)
        with pytest.raises(DownloadRefused):
            record_download(job, client=client, range_start=range_start)

    assert DownloadEvent.objects.filter(job=job).count() == 1


@pytest.mark.parametrize(
    ("status", "fields", "code"),
    [
        ("completed", {"access_revoked_at": timezone.now()}, "revoked"),
        ("refunded", {}, "revoked"),
        ("completed", {"token_expires_at": ago(seconds=1)}, "expired"),
        ("completed", {"file_deleted_at": timezone.now()}, "expired"),
        ("processing", {"result_path": "", "token_expires_at": None}, "not_ready"),
        ("needs_attention", {"result_path": "", "token_expires_at": None}, "not_ready"),
        ("awaiting_payment", {"result_path": "", "token_expires_at": None}, "not_found"),
    ],
)
def test_a_download_is_refused_with_the_reason(downloadable, status, fields, code):
    job = downloadable(status, **fields)

    with pytest.raises(DownloadRefused) as refused:
        check_downloadable(job)

    assert refused.value.code == code and refused.value.message
    assert not DownloadEvent.objects.exists()


# --- sweep --------------------------------------------------------------------------------------


def failed_job(make_job, reason: str, *, failed_minutes_ago: int):
    job = make_job("processing", paid_at=ago(hours=1))
    transition(
        job, "failed", code=EventCode.PROCESSING_FAILED, data={"reason": reason, "detail": "x"}
    )
    PurchaseJob.objects.filter(pk=job.pk).update(failed_at=ago(minutes=failed_minutes_ago))
    return job


def test_the_sweeper_hands_out_lost_and_due_work_again(make_job, queued):
    lost = make_job("paid", paid_at=ago(minutes=2))
    make_job("paid", paid_at=timezone.now())  # its task is surely still on its way
    due = make_job("processing", paid_at=ago(minutes=5), next_attempt_at=ago(minutes=2))
    # Due a moment ago: its own schedule polls it, the sweeper leaves it alone.
    make_job("processing", paid_at=ago(minutes=5), next_attempt_at=ago(seconds=1))
    make_job(
        "processing", paid_at=ago(minutes=5), next_attempt_at=timezone.now() + timedelta(minutes=1)
    )
    unrefunded = failed_job(make_job, "result_invalid", failed_minutes_ago=10)
    failed_job(make_job, "upscale_failed", failed_minutes_ago=1)  # its refund task is on its way

    counts = sweep()

    assert counts == {
        "started": 1,
        "polled": 1,
        "refunds": 1,
        "emails_retried": 0,
        "auto_refunds": 0,
        "schedules_dropped": 0,
        "rollup_days": 0,  # every order is today's: today is read live
    }
    assert sorted(queued) == sorted(
        [
            ("process", str(lost.pk)),
            ("process", str(due.pk)),
            ("refund", str(unrefunded.pk), "result_invalid"),
        ]
    )


def test_the_sweeper_sends_a_download_email_that_failed_with_a_new_link(
    make_job, queued, django_capture_on_commit_callbacks
):
    job = make_job(
        "completed",
        paid_at=ago(hours=1),
        completed_at=ago(minutes=20),
        email="buyer@example.com",
        result_path="wagtail_smi/x/result.jpg",
        token_hash="old",
        token_expires_at=timezone.now() + timedelta(hours=20),
        download_count=1,
    )
    make_job(
        "completed", completed_at=ago(minutes=20), email="", result_path="x.jpg"
    )  # no one to write to

    with django_capture_on_commit_callbacks(execute=True):
        counts = sweep()

    job.refresh_from_db()
    assert counts["emails_retried"] == 1
    assert log(job) == [("email_retried", "", {"email": "download_ready"})]
    # (The admins also hear that these made-up orders have no stored file: the invariants.)
    [message] = [m for m in mail.outbox if m.to == ["buyer@example.com"]]
    [token] = re.findall(r"/smi/download/([A-Za-z0-9_-]{64})", message.body)
    assert (message.to, job.token_hash) == (["buyer@example.com"], tokens.hash_token(token))
    assert job.download_count == 1  # the expiry and the downloads so far are kept
    assert job.delivery_email_sent_at is not None
    assert queued == []


# --- cleanup ------------------------------------------------------------------------------------


def stored(job, name: str) -> str:
    return private_storage().save(f"wagtail_smi/{job.pk}/{name}", ContentFile(b"result"))


def test_cleanup_deletes_files_that_can_no_longer_be_downloaded_and_keeps_the_orders(
    make_job, django_capture_on_commit_callbacks
):
    # Expired longer ago than the days a customer may still ask for a fresh link (7).
    expired = make_job("completed", paid_at=ago(days=10), token_expires_at=ago(days=8))
    valid = make_job(
        "completed", paid_at=ago(days=2), token_expires_at=timezone.now() + timedelta(hours=1)
    )
    PurchaseJob.objects.filter(pk=expired.pk).update(result_path=stored(expired, "a.jpg"))
    PurchaseJob.objects.filter(pk=valid.pk).update(result_path=stored(valid, "b.jpg"))

    with django_capture_on_commit_callbacks(execute=True):
        counts = cleanup()

    expired.refresh_from_db()
    valid.refresh_from_db()
    assert counts["files_deleted"] == 1
    assert (expired.status, expired.file_deleted_at is not None) == ("completed", True)
    assert not private_storage().exists(expired.result_path)
    assert (valid.file_deleted_at, private_storage().exists(valid.result_path)) == (None, True)
    assert codes(expired) == codes(valid) == []


def test_cleanup_abandons_checkouts_unpaid_for_a_day_unless_a_payment_is_on_its_way(
    make_job, queued
):
    stale, clearing, recent = make_job(), make_job(payment_intent_id="pi_debit"), make_job()
    PurchaseJob.objects.filter(pk__in=[stale.pk, clearing.pk]).update(created_at=ago(hours=25))

    counts = cleanup()

    assert counts["abandoned"] == 1
    statuses = dict(PurchaseJob.objects.values_list("pk", "status"))
    assert (statuses[stale.pk], statuses[clearing.pk], statuses[recent.pk]) == (
        "abandoned",
        "awaiting_payment",
        "awaiting_payment",
    )
    assert log(stale) == [("checkout_abandoned", "abandoned", {"hours": 24})]
    assert event(stale, "checkout_abandoned").actor is None
    assert (mail.outbox, queued) == ([], [])


def test_cleanup_removes_temporary_files_older_than_a_day(db):
    folder = fetching.temp_dir()
    old, fresh = folder / f"ops-test-old-{os.getpid()}", folder / f"ops-test-fresh-{os.getpid()}"
    old.write_bytes(b"x")
    fresh.write_bytes(b"x")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(old, (two_days_ago, two_days_ago))

    try:
        counts = cleanup()
        assert counts["temp_files_removed"] >= 1
        assert (old.exists(), fresh.exists()) == (False, True)
    finally:
        old.unlink(missing_ok=True)
        fresh.unlink(missing_ok=True)
