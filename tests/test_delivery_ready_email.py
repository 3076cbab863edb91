"""The "download ready" email: a failed send is reported (log, note, admin alert) and the
sweeper sends it again for a day."""

from __future__ import annotations

import smtplib
from datetime import timedelta

import pytest
from django.core import mail
from django.core.mail.backends import locmem
from django.utils import timezone

from tests.conftest import make_image_file
from wagtail_smi.models import JobEvent, PurchaseJob
from wagtail_smi.operations import maintenance, processing
from wagtail_smi.timeline import describe


class RefusingCustomerBackend(locmem.EmailBackend):
    """A mail server that refuses the customer's address and delivers everything else."""

    def send_messages(self, messages):
        for message in messages:
            if "buyer@example.com" in message.to:
                raise smtplib.SMTPRecipientsRefused(
                    {"buyer@example.com": (550, b"mailbox unavailable")}
                )
        return super().send_messages(messages)


REFUSING = "tests.test_delivery_ready_email.RefusingCustomerBackend"


@pytest.fixture
def processed(make_job, settings, tmp_path):
    """A job the worker has just finished upscaling (the result file is in hand)."""
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "PUBLIC_BASE_URL": "http://testserver"}
    settings.ADMINS = [("Ops", "ops@example.com")]
    job = make_job(
        "processing", paid_at=timezone.now(), email="buyer@example.com", image_title="Old Mill"
    )
    result = tmp_path / "result.png"
    result.write_bytes(make_image_file(8, 8, fmt="PNG"))
    return job, result


def email_failures(job):
    return JobEvent.objects.filter(job=job, code="email_failed")


def test_download_email_that_cannot_be_sent_is_reported_not_swallowed(
    processed, settings, django_capture_on_commit_callbacks
):
    job, result = processed
    settings.EMAIL_BACKEND = REFUSING
    with django_capture_on_commit_callbacks(execute=True):
        assert processing.deliver(job.pk, result) is True

    job.refresh_from_db()
    assert job.status == "completed"
    assert job.delivery_email_sent_at is None
    [note] = email_failures(job)
    assert "SMTPRecipientsRefused" in describe(note)
    [alert] = mail.outbox
    assert alert.to == ["ops@example.com"] and job.short_id in alert.subject
    assert "could not be sent" in alert.body


def test_sweeper_sends_an_unsent_download_email_again_with_a_working_link(
    processed, settings, client, django_capture_on_commit_callbacks
):
    job, result = processed
    settings.EMAIL_BACKEND = REFUSING
    with django_capture_on_commit_callbacks(execute=True):
        processing.deliver(job.pk, result)
    mail.outbox.clear()

    # The mail server takes the customer's address again: nothing before 15 minutes...
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    with django_capture_on_commit_callbacks(execute=True):
        assert maintenance.sweep()["emails_retried"] == 0
    assert mail.outbox == []

    # ...then one retry, with a new link that works.
    earlier = timezone.now() - timedelta(minutes=20)
    PurchaseJob.objects.filter(pk=job.pk).update(completed_at=earlier)
    email_failures(job).update(created_at=earlier)
    with django_capture_on_commit_callbacks(execute=True):
        assert maintenance.sweep()["emails_retried"] == 1
    [message] = mail.outbox
    assert message.to == ["buyer@example.com"]
    link = next(word for word in message.body.split() if "/smi/download/" in word)
    assert client.get(link.removeprefix("http://testserver")).status_code == 200
    job.refresh_from_db()
    assert job.delivery_email_sent_at is not None
    with django_capture_on_commit_callbacks(execute=True):
        assert maintenance.sweep()["emails_retried"] == 0


def test_sweeper_gives_up_on_the_download_email_after_a_day(
    processed, settings, django_capture_on_commit_callbacks
):
    job, result = processed
    settings.EMAIL_BACKEND = REFUSING
    with django_capture_on_commit_callbacks(execute=True):
        processing.deliver(job.pk, result)
    PurchaseJob.objects.filter(pk=job.pk).update(completed_at=timezone.now() - timedelta(hours=25))
    email_failures(job).update(created_at=timezone.now() - timedelta(hours=1))
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert maintenance.sweep()["emails_retried"] == 0
    assert mail.outbox == []
