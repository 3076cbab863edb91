"""Daily cleanup, its command, and the schedules command."""

from __future__ import annotations

import os
import time
from datetime import timedelta

from django.core.files.base import ContentFile
from django.core.management import call_command
from django.utils import timezone
from django_q.models import Schedule

from wagtail_smi import fetching, storage
from wagtail_smi.models import PurchaseJob
from wagtail_smi.operations import delivery as delivery_ops
from wagtail_smi.operations import maintenance
from wagtail_smi.timeline import describe


def stored(job) -> str:
    return storage.private_storage().save(f"wagtail_smi/{job.pk}/file.png", ContentFile(b"png"))


def test_cleanup_deletes_expired_files_and_keeps_the_orders(
    make_job, django_capture_on_commit_callbacks
):
    expired = make_job("completed", paid_at=timezone.now())
    expired.result_path = stored(expired)
    expired.token_expires_at = timezone.now() - timedelta(days=8)  # past the fresh-link days
    expired.save()
    current = make_job("completed", paid_at=timezone.now())
    current.result_path = stored(current)
    current.token_expires_at = timezone.now() + timedelta(hours=1)
    current.save()
    refunded = make_job(
        "refunded", paid_at=timezone.now(), token_expires_at=timezone.now() + timedelta(hours=1)
    )
    refunded.result_path = stored(refunded)
    refunded.save()

    with django_capture_on_commit_callbacks(execute=True):
        counts = maintenance.cleanup()

    assert counts["files_deleted"] == 2
    files = storage.private_storage()
    expired.refresh_from_db()
    refunded.refresh_from_db()
    assert expired.file_deleted_at and not files.exists(expired.result_path)
    assert refunded.file_deleted_at and not files.exists(refunded.result_path)
    assert files.exists(current.result_path)
    assert PurchaseJob.objects.filter(pk__in=[expired.pk, refunded.pk]).count() == 2
    assert maintenance.cleanup()["files_deleted"] == 0


def test_cleanup_keeps_a_file_whose_link_was_resent_after_cleanup_listed_it(
    make_job, admin_user, django_capture_on_commit_callbacks
):
    job = make_job("completed", paid_at=timezone.now(), email="b@example.com")
    job.result_path = stored(job)
    job.token_expires_at = timezone.now() - timedelta(days=8)  # past the fresh-link days
    job.save()
    now = timezone.now()
    # Cleanup has listed the expired job...
    [(job_id, name)] = delivery_ops.deletable_files(now).values_list("pk", "result_path")
    # ...when an admin resends the link (a new token, valid from now).
    with django_capture_on_commit_callbacks(execute=True):
        delivery_ops.resend_link(job.pk, actor=admin_user)

    with django_capture_on_commit_callbacks(execute=True):
        assert delivery_ops.expire_file(job_id, name, now) is False

    job.refresh_from_db()
    assert job.file_deleted_at is None
    assert storage.private_storage().exists(job.result_path)


def test_cleanup_keeps_a_file_redelivered_after_cleanup_listed_the_old_one(
    make_job, django_capture_on_commit_callbacks
):
    job = make_job(
        "completed", paid_at=timezone.now(), token_expires_at=timezone.now() - timedelta(days=8)
    )
    job.result_path = stored(job)
    job.save()
    now = timezone.now()
    [(job_id, old_name)] = delivery_ops.deletable_files(now).values_list("pk", "result_path")
    new_name = storage.private_storage().save(f"wagtail_smi/{job.pk}/new.png", ContentFile(b"png"))
    PurchaseJob.objects.filter(pk=job.pk).update(result_path=new_name)

    with django_capture_on_commit_callbacks(execute=True):
        assert delivery_ops.expire_file(job_id, old_name, now) is False

    job.refresh_from_db()
    assert job.file_deleted_at is None and storage.private_storage().exists(new_name)


def test_cleanup_abandons_checkouts_unpaid_for_a_day(make_job):
    old = make_job("awaiting_payment")
    PurchaseJob.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=25))
    fresh = make_job("awaiting_payment")

    assert maintenance.cleanup()["abandoned"] == 1

    old.refresh_from_db()
    fresh.refresh_from_db()
    assert (
        old.status == "abandoned"
        and describe(old.events.get(to_status="abandoned"))
        == "Not paid within 24 hours: the checkout was given up."
    )
    assert fresh.status == "awaiting_payment"


def test_cleanup_leaves_a_payment_that_is_still_clearing_alone(make_job):
    from wagtail_smi.operations import mark_payment_failed

    clearing = make_job("awaiting_payment", payment_intent_id="pi_sepa_debit")
    failed = make_job("awaiting_payment", payment_intent_id="pi_failed")
    mark_payment_failed(failed.pk, provider="stripe")
    a_day_ago = timezone.now() - timedelta(hours=25)
    PurchaseJob.objects.filter(pk__in=[clearing.pk, failed.pk]).update(created_at=a_day_ago)

    assert maintenance.cleanup()["abandoned"] == 1

    clearing.refresh_from_db()
    failed.refresh_from_db()
    assert clearing.status == "awaiting_payment"  # the money may still arrive
    assert failed.status == "abandoned"  # nothing is on its way any more


def test_cleanup_removes_stale_temporary_files_only(db):
    stale = fetching.temp_dir() / "result-stale.part"
    recent = fetching.temp_dir() / "result-recent.part"
    stale.write_bytes(b"x")
    recent.write_bytes(b"x")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(stale, (two_days_ago, two_days_ago))

    maintenance.cleanup()

    assert not stale.exists()
    assert recent.exists()
    recent.unlink()


def test_cleanup_command_reports_what_it_did(make_job, capsys):
    old = make_job("awaiting_payment")
    PurchaseJob.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=2))
    call_command("smi_cleanup")
    assert "abandoned: 1" in capsys.readouterr().out


def test_schedules_command_is_idempotent(db):
    call_command("smi_schedules")
    call_command("smi_schedules")
    schedules = {s.name: s for s in Schedule.objects.filter(name__startswith="wagtail_smi")}
    assert set(schedules) == {"wagtail_smi sweeper", "wagtail_smi cleanup"}
    assert schedules["wagtail_smi sweeper"].func == "wagtail_smi.tasks.sweep"
    assert schedules["wagtail_smi sweeper"].schedule_type == Schedule.MINUTES
    assert schedules["wagtail_smi sweeper"].minutes == 1
    assert schedules["wagtail_smi cleanup"].schedule_type == Schedule.DAILY
