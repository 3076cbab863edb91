"""Scheduled work: the sweeper (every minute) and the cleanup (daily).

The job table, not the queue, is the source of truth: the sweeper finds work whose task
was lost (a worker that died, a broker that dropped it) and hands it out again. It also
keeps the shop's promise to customers: a paid order still not delivered
``AUTO_REFUND_AFTER_HOURS`` after payment is refunded, unless an admin has taken it in
hand. Each run leaves a heartbeat (``models.Heartbeat``), which the system check, the
admin dashboard and ``smi_doctor`` read. Each run also checks the shop's invariants
(``invariants``) and tells the admins about a new violation once.
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import timedelta

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from .. import analytics, invariants, queue
from ..conf import smi_settings
from ..fetching import temp_dir
from ..models import EventCode, Heartbeat, JobStatus, PurchaseJob
from ..models.health import SWEEPER
from ..workflow import TransitionNotAllowed, locked_job, record_event, update_job
from . import clicks
from .common import alert_admins
from .delivery import deletable_files, expire_file, retry_ready_email, unsent_ready_emails
from .errors import OperationError
from .payments import abandon_checkout
from .processing import failure_reason
from .refunds import refund
from .resolution import UNDELIVERED

logger = logging.getLogger(__name__)

S = JobStatus


# Why an order was refunded automatically (the refund email explains it to the customer).
AUTO_REFUND_REASON = "not_delivered_in_time"

# A processing job that is due has a django-q2 schedule of its own, which the scheduler
# runs within about 30 seconds; the sweeper polls it only when it is this far overdue, so
# that the two do not race for the same poll and the sweeper takes over only lost work.
OVERDUE_AFTER = timedelta(seconds=90)


def sweep() -> dict[str, int]:
    """Restart paid jobs whose task was lost, poll/resume processing jobs that are due
    (this also enforces deadlines), retry refunds that did not happen and "download ready"
    emails that could not be sent, refund orders not delivered in time, drop the
    schedules of jobs that moved on, and bring the reports' daily rollups up to date."""
    now = timezone.now()
    Heartbeat.beat(SWEEPER, now)
    started = 0
    lost = PurchaseJob.objects.filter(status=S.PAID, paid_at__lte=now - timedelta(seconds=60))
    for job_id in lost.values_list("pk", flat=True)[:500]:
        queue.enqueue_processing(job_id)
        started += 1
    due = PurchaseJob.objects.filter(status=S.PROCESSING).exclude(
        next_attempt_at__gt=now - OVERDUE_AFTER
    )
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
    auto_refunds = 0
    for job_id in overdue_for_refund(now).values_list("pk", flat=True)[:100]:
        queue.enqueue_auto_refund(job_id)
        auto_refunds += 1
    report_violations(now)
    try:
        clicks.flush_clicks()  # buffered clicks reach the table (and the reports)
    except Exception:
        logger.exception("sweep: writing buffered clicks failed; they stay buffered")
    try:
        rollup_days = analytics.refresh_rollups(now)  # after the clicks: they count
    except Exception:
        rollup_days = 0
        logger.exception("sweep: refreshing the report rollups failed; reports read live")
    return {
        "started": started,
        "polled": polled,
        "refunds": refunds,
        "emails_retried": emails_retried,
        "auto_refunds": auto_refunds,
        "schedules_dropped": drop_stale_schedules(),
        "rollup_days": rollup_days,
    }


def drop_stale_schedules() -> int:
    """Delete the schedules of jobs no longer processing (delivered, failed, refunded,
    waiting for an admin, deleted) that nothing removed on the way."""
    scheduled = queue.job_schedules()
    if not scheduled:
        return 0
    live = set(
        PurchaseJob.objects.filter(pk__in=list(scheduled), status=S.PROCESSING).values_list(
            "pk", flat=True
        )
    )
    return queue.drop_schedules(pk for job_id, pk in scheduled.items() if job_id not in live)


# The invariants ---------------------------------------------------------------------------

# Private storage is listed (unowned and missing files) at most this often; the database
# checks run every time.
FILE_CHECK_EVERY = timedelta(hours=1)
# A violation is reported once; if it is still there this much later, it is reported again.
ALERT_AGAIN_AFTER = timedelta(days=7)
# When the storage was last listed: in the default cache (shared by the processes when it
# is Redis; a process of its own lists it once an hour otherwise).
FILE_CHECK = "wagtail_smi:invariants:files-listed"
# One heartbeat row per violation reported ("inv-d:" found in the database, "inv-f:" in
# the storage, then a digest of its key).
REPORTED_DB, REPORTED_FILES = "inv-d:", "inv-f:"
FILE_KINDS = frozenset({invariants.MISSING_FILE, invariants.ORPHAN_FILE})


def _reported_name(violation: invariants.Violation) -> str:
    prefix = REPORTED_FILES if violation.kind in FILE_KINDS else REPORTED_DB
    digest = hashlib.sha256(violation.key.encode()).hexdigest()
    return prefix + digest[: 32 - len(prefix)]


def _claim_report(name: str, now) -> bool:
    """Whether this run reports the violation: first seen, or reported long enough ago.
    Claimed in the database, so two sweepers in two processes never both report it."""
    if Heartbeat.objects.filter(name=name, beat_at__lte=now - ALERT_AGAIN_AFTER).update(
        beat_at=now
    ):
        return True
    try:
        with transaction.atomic():
            _row, created = Heartbeat.objects.get_or_create(name=name, defaults={"beat_at": now})
    except IntegrityError:  # another sweeper claimed it at the same moment
        return False
    return created


def report_violations(now) -> list[invariants.Violation]:
    """Check the invariants (the storage at most hourly) and alert the admins about each
    violation not reported before: an admin alert about its order, an error in the log for a
    file no order owns. What was reported is remembered in the database (heartbeat rows),
    so it holds across worker processes and restarts; a violation that went away is
    forgotten, and reported again if it comes back. A failure here is logged and never
    stops the sweeper. Returns what was found."""
    try:
        last_listing = cache.get(FILE_CHECK)
        files = last_listing is None or last_listing <= now - FILE_CHECK_EVERY
        found = invariants.find_violations(now, files=files)
        if files:
            cache.set(FILE_CHECK, now, 2 * FILE_CHECK_EVERY.total_seconds())
        names = {_reported_name(v): v for v in found}
        stale = Heartbeat.objects.filter(name__startswith=REPORTED_DB)
        if files:
            stale = stale | Heartbeat.objects.filter(name__startswith=REPORTED_FILES)
        stale.exclude(name__in=list(names)).delete()
        new = [v for name, v in names.items() if _claim_report(name, now)]
        jobs = PurchaseJob.objects.select_related("site").in_bulk(
            [v.job_id for v in new if v.job_id]
        )
    except Exception:
        logger.exception("the invariant check failed")
        return []
    for violation in new:
        logger.error(
            "invariant broken (%s): order %s %s",
            violation.kind,
            violation.job_id or "-",
            violation.path,
        )
        job = jobs.get(violation.job_id)
        if job is not None:
            alert_admins(job, f"{violation.label}. {violation.message}")
    return found


# The automatic refund ---------------------------------------------------------------------


def overdue_for_refund(now) -> QuerySet[PurchaseJob]:
    """Paid orders still not delivered ``AUTO_REFUND_AFTER_HOURS`` after payment, that no
    admin has taken in hand and that were not refunded automatically before."""
    hours = smi_settings.AUTO_REFUND_AFTER_HOURS
    if not hours:
        return PurchaseJob.objects.none()
    return PurchaseJob.objects.filter(
        status__in=UNDELIVERED,
        paid_at__lte=now - timedelta(hours=hours),
        taken_in_hand_at__isnull=True,
        auto_refund_started_at__isnull=True,
    )


def auto_refund(job_id) -> PurchaseJob | None:
    """Refund a paid order that was not delivered in time, once (the customer is emailed
    by the refund). Checked again under the row lock: an order delivered, refunded or
    taken in hand meanwhile is left alone (None)."""
    now = timezone.now()
    with locked_job(job_id) as current:
        if not overdue_for_refund(now).filter(pk=current.pk).exists():
            return None
        current = update_job(current, auto_refund_started_at=now)
        record_event(
            current, EventCode.AUTO_REFUND, {"hours": smi_settings.AUTO_REFUND_AFTER_HOURS}
        )
    try:
        return refund(current.pk, reason=AUTO_REFUND_REASON)
    except OperationError as exc:  # another refund in flight, nothing left to refund
        logger.warning("job %s: automatic refund not made: %s", current.pk, exc.message)
        return None


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
