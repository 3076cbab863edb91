"""Scheduled work: the sweeper (every minute) and the cleanup (daily).

The job table, not the queue, is the source of truth: the sweeper finds work whose task
was lost (a worker that died, a broker that dropped it) and hands it out again.
"""

from __future__ import annotations

import time
from datetime import timedelta

from django.utils import timezone

from .. import queue
from ..conf import smi_settings
from ..fetching import temp_dir
from ..models import JobStatus, PurchaseJob
from ..workflow import TransitionNotAllowed
from .delivery import deletable_files, expire_file, retry_ready_email, unsent_ready_emails
from .payments import abandon_checkout
from .processing import failure_reason

S = JobStatus


def sweep() -> dict[str, int]:
    """Restart paid jobs whose task was lost, poll/resume processing jobs that are due
    (this also enforces deadlines), retry refunds that did not happen and "download ready"
    emails that could not be sent."""
    now = timezone.now()
    started = 0
    lost = PurchaseJob.objects.filter(status=S.PAID, paid_at__lte=now - timedelta(seconds=60))
    for job_id in lost.values_list("pk", flat=True)[:500]:
        queue.enqueue_processing(job_id)
        started += 1
    due = PurchaseJob.objects.filter(status=S.PROCESSING).exclude(next_attempt_at__gt=now)
    polled = 0
    for job_id in due.values_list("pk", flat=True)[:500]:
        queue.enqueue_processing(job_id)
        polled += 1
    stuck = PurchaseJob.objects.filter(status=S.FAILED, failed_at__lte=now - timedelta(minutes=5))
    refunds = 0
    for job_id in stuck.values_list("pk", flat=True)[:100]:
        queue.enqueue_refund(job_id, failure_reason(job_id))
        refunds += 1
    emails_retried = 0
    for job_id in unsent_ready_emails(now).values_list("pk", flat=True)[:50]:
        emails_retried += retry_ready_email(job_id, now)
    return {
        "started": started,
        "polled": polled,
        "refunds": refunds,
        "emails_retried": emails_retried,
    }


def cleanup() -> dict[str, int]:
    """Delete delivered files that can no longer be downloaded (the order stays), abandon
    checkouts unpaid for ``ABANDON_AFTER_HOURS``, remove stale temporary files."""
    now = timezone.now()
    deleted = 0
    for job_id, name in deletable_files(now).values_list("pk", "result_path"):
        deleted += expire_file(job_id, name, now)
    abandoned = 0
    hours = smi_settings.ABANDON_AFTER_HOURS
    cutoff = now - timedelta(hours=hours)
    # A payment already on its way (a bank debit still clearing) is not abandoned: the
    # buyer would be told to start again and could end up paying twice.
    for job_id in PurchaseJob.objects.filter(
        status=S.AWAITING_PAYMENT, created_at__lt=cutoff, payment_intent_id=""
    ).values_list("pk", flat=True):
        try:
            if abandon_checkout(job_id, hours=hours):
                abandoned += 1
        except TransitionNotAllowed:
            pass
    temp_removed = 0
    stale = time.time() - 24 * 3600
    for entry in temp_dir().iterdir():
        try:
            if entry.is_file() and entry.stat().st_mtime < stale:
                entry.unlink()
                temp_removed += 1
        except OSError:
            pass
    return {"files_deleted": deleted, "abandoned": abandoned, "temp_files_removed": temp_removed}
