"""The processing pipeline (SPEC §1 steps 7–8): paid → processing → completed.

    paid ──claim──► processing ──submit──► (callback or polling) ──► fetch ──► validate
         ──► install the result (storage, token, email on commit) ──► completed

``process_job`` is the one entry point (the queue and the sweeper call it) and is safe to
run twice: claiming ``paid → processing`` is a locked transition only one worker wins; a
job with an upscaler job id is polled, never resubmitted, and neither is one stamped as
submitted whose answer was lost (it waits for the upscaler's callback, then for an admin);
installing the result re-checks the state under the row lock, so a replayed callback or a
re-run task never delivers or emails twice.

Business retries live in the job (``attempts``, ``next_attempt_at``, exponential backoff
with jitter, ``MAX_ATTEMPTS``); ``next_attempt_at`` doubles as a lease while a worker
submits, polls or upscales, so the sweeper only takes over work whose worker died. Each
next poll or retry also gets a django-q2 schedule of its own at ``next_attempt_at``
(``common.process_at``): the first poll comes ``POLL_START_SECONDS`` after submission, not
at the sweeper's next round. The sweeper polls a job only once it is 90 seconds overdue
(its schedule was lost or the scheduler fell behind); should both still hand out the same
poll, whichever comes first claims it and the other finds it not due and does nothing.

Failures: a final upscaler error, an invalid result, or a result that cannot be fetched
after retries → ``failed`` → automatic refund (whose email tells the customer). A job past
its deadline while the upscaler still works on it, or whose submission kept failing, →
``needs_attention`` and the admins are emailed.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from PIL import Image

from ..conf import smi_settings
from ..fetching import ResultRejected, fetch_result, temp_dir, validate_result
from ..models import EventCode, JobEvent, JobStatus, PurchaseJob
from ..models.states import IN_PIPELINE
from ..upscalers import (
    FAILED,
    SUCCESS,
    FinalUpscalerError,
    RetryableUpscalerError,
    UpscaleRequest,
    get_upscaler,
)
from ..workflow import TransitionNotAllowed, locked_job, record_event, transition, update_job
from .callbacks import EARLY_CALLBACK
from .common import (
    JobId,
    after_commit,
    alert_admins,
    forget_schedule,
    process_at,
    tell_customer_of_delay,
)
from .delivery import install_result
from .refunds import refund_failed_job
from .upscaling import upscale_request

logger = logging.getLogger(__name__)

S = JobStatus
# Failure reasons (the refund email explains each one to the customer).
REASON_UPSCALE_FAILED = "upscale_failed"
REASON_RESULT_INVALID = "result_invalid"
REASON_RESULT_UNAVAILABLE = "result_unavailable"
# Errors that mean the shop's own setup is broken: the admins hear about them at once.
SETUP_ERRORS = {"invalid_api_key", "insufficient_credits"}


# Timing ----------------------------------------------------------------------------------


def job_deadline(job: PurchaseJob) -> datetime:
    if job.deadline_at:
        return job.deadline_at
    start = job.paid_at or job.created_at or timezone.now()
    return start + timedelta(minutes=smi_settings.JOB_DEADLINE_MINUTES)


def lease_seconds() -> int:
    """How long a worker may hold a job while submitting or upscaling: past the queue's
    own task timeout, so a live worker is never doubled."""
    return int(getattr(settings, "Q_CLUSTER", {}).get("timeout") or 300) + 60


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with jitter: base·2^(n−1), capped, then 50–100 % of it."""
    ceiling = min(
        smi_settings.RETRY_BASE_SECONDS * 2 ** max(attempt - 1, 0), smi_settings.RETRY_MAX_SECONDS
    )
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def poll_interval(job: PurchaseJob, now: datetime) -> float:
    """Poll from POLL_START after submission, backing off to at most POLL_MAX."""
    started = job.processing_at or now
    elapsed = (now - started).total_seconds()
    return min(
        max(smi_settings.POLL_START_SECONDS, elapsed / 2), smi_settings.POLL_MAX_INTERVAL_SECONDS
    )


# The entry point ---------------------------------------------------------------------------


def process_job(job_id: JobId) -> None:
    """Move a job forward from wherever it is; the queue and the sweeper call this."""
    # The image and the site come with the row: the upscaler's request needs both.
    job = PurchaseJob.objects.select_related("site", "image").filter(pk=job_id).first()
    if job is None:
        logger.warning("process_job: no job %s", job_id)
        return
    if job.status == S.PAID:
        _start(job)
    elif job.status == S.PROCESSING:
        _continue(job)
    # Any other state: nothing to do (already delivered, refunded, waiting for an admin).


def _start(job: PurchaseJob) -> None:
    now = timezone.now()
    deadline = job_deadline(job)
    if now >= deadline and not job.upscaler_job_id:
        needs_attention(job, "the deadline passed before processing started", from_states={S.PAID})
        return
    upscaler = get_upscaler()
    submitting = not upscaler.synchronous and not job.upscaler_job_id
    # Built from the row just read (plain values that the claim does not change), so the
    # stamp below is committed as close as possible to the moment the request leaves.
    request = upscale_request(job)
    fields = {
        "upscaler": upscaler.name,
        "deadline_at": deadline,
        "next_attempt_at": now + timedelta(seconds=lease_seconds()),
    }
    if submitting:
        # The submission's stamp (see ``_submit``) rides on the claim's transaction.
        fields["upscaler_submitted_at"] = now
    try:
        job = transition(
            job,
            S.PROCESSING,
            code=EventCode.PROCESSING_STARTED,
            data={"upscaler": upscaler.name},
            only_from={S.PAID},
            **fields,
        )
    except TransitionNotAllowed:
        return  # another worker claimed it
    if job.upscaler_job_id and not upscaler.synchronous:
        _poll(job, upscaler)  # an admin retry while the upscaler still has the job
    else:
        _run(job, upscaler, request, stamped=submitting)


def _continue(job: PurchaseJob) -> None:
    # The deadline comes first, whatever else happens: a job whose polling or delivery
    # keeps breaking must still reach an admin instead of being re-enqueued forever.
    now = timezone.now()
    if now >= job_deadline(job):
        if job.upscaler_job_id:
            needs_attention(
                job, f"deadline passed while the upscaler reports {job.upscaler_status or '?'}"
            )
        elif job.upscaler_submitted_at:
            needs_attention(job, f"deadline passed; {lost_submission_message(job)}")
        else:
            needs_attention(job, "the deadline passed before the upscaler accepted the job")
        return
    upscaler = get_upscaler()
    if job.upscaler_job_id and not upscaler.synchronous:
        if _claim_poll(job, now):
            _poll(job, upscaler)
        return
    # No upscaler job id yet: a crashed worker, a retry waiting for its backoff, or a
    # submission whose answer was lost.
    stamped = False
    with locked_job(job) as current:
        due = current.next_attempt_at is None or current.next_attempt_at <= now
        if current.status != S.PROCESSING or current.upscaler_job_id or not due:
            return
        lost = current.upscaler_submitted_at is not None
        if not lost:
            current.next_attempt_at = now + timedelta(seconds=lease_seconds())
            update_fields = ["next_attempt_at", "updated_at"]
            if not upscaler.synchronous:
                # The submission's stamp (see ``_submit``), with the lease, in one write.
                current.upscaler_submitted_at = now
                update_fields.append("upscaler_submitted_at")
                stamped = True
            current.save(update_fields=update_fields)
    if lost:
        _await_lost_submission(current, now)
    else:
        # The request's values (sizes, image, site, callback secret) never change once
        # paid: the row read with its image and site will do.
        _run(current, upscaler, upscale_request(job), stamped=stamped)


def _claim_poll(job: PurchaseJob, now: datetime) -> bool:
    """Take the job's due poll, as a lease: the sweeper and the job's own schedule may both
    hand it out at the same moment, and only one of them should ask the upscaler."""
    claimed = (
        PurchaseJob.objects.filter(pk=job.pk, status=S.PROCESSING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .update(next_attempt_at=now + timedelta(seconds=lease_seconds()), updated_at=now)
    )
    return bool(claimed)


def _next_attempt(job: PurchaseJob, at: datetime, **fields) -> PurchaseJob:
    """Save when the job is to be looked at again, and have it run then."""
    job = update_job(job, next_attempt_at=at, **fields)
    process_at(job.pk, at)
    return job


def _run(job: PurchaseJob, upscaler, request: UpscaleRequest, *, stamped: bool = False) -> None:
    """Submit to an asynchronous upscaler, or upscale right here with a synchronous one."""
    if upscaler.synchronous:
        _upscale_here(job, upscaler, request)
    else:
        _submit(job, upscaler, request, stamped=stamped)


def _upscale_here(job: PurchaseJob, upscaler, request: UpscaleRequest) -> None:
    try:
        path = upscaler.upscale(request, temp_dir())
    except FinalUpscalerError as exc:
        fail(job, REASON_UPSCALE_FAILED, f"{exc.code}: {exc}", alert=exc.code in SETUP_ERRORS)
        return
    except RetryableUpscalerError as exc:
        retry_later(job, str(exc), on_exhausted="attention")
        return
    except Image.UnidentifiedImageError as exc:
        fail(job, REASON_UPSCALE_FAILED, f"original_unreadable: {exc}")
        return
    except Exception as exc:  # a bug or a broken disk: counted, retried, then an admin
        logger.exception("job %s: %s failed unexpectedly", job.pk, upscaler.name)
        retry_later(job, f"{exc.__class__.__name__}: {exc}", on_exhausted="attention")
        return
    try:
        _validate_and_deliver(job, path)
    except Exception as exc:
        _unexpected_failure(job, "delivering the result", exc)
    finally:
        path.unlink(missing_ok=True)


def _submit(job: PurchaseJob, upscaler, request: UpscaleRequest, *, stamped: bool) -> None:
    """Submit to an asynchronous upscaler, which charges for every submission it receives.

    The attempt is stamped, and committed, before the request leaves: when the worker dies
    or the answer is lost, the next worker finds the stamp and does not submit again; it
    waits for the upscaler's callback instead (``_await_lost_submission``). Only an error
    that proves the request never arrived (no connection, 429, 503...) clears the stamp
    and lets a later attempt submit again. The callers usually stamp it in the transaction
    that claimed the job (``stamped``), which saves a transaction per job.
    """
    if not stamped:
        job = update_job(job, upscaler_submitted_at=timezone.now())
    try:
        result = upscaler.submit(request)
    except FinalUpscalerError as exc:  # an answer refusing the job: nothing was started
        fail(job, REASON_UPSCALE_FAILED, f"{exc.code}: {exc}", alert=exc.code in SETUP_ERRORS)
        return
    except RetryableUpscalerError as exc:
        if exc.may_have_arrived:
            _submission_in_doubt(job, str(exc))
        else:
            job = update_job(job, upscaler_submitted_at=None)
            retry_later(job, str(exc), on_exhausted="attention")
        return
    except Exception as exc:  # a bug, or an answer the client did not expect
        logger.exception("job %s: submitting to %s failed unexpectedly", job.pk, upscaler.name)
        _submission_in_doubt(job, f"{exc.__class__.__name__}: {exc}")
        return
    _record_submission(job, upscaler, result)


def _record_submission(job: PurchaseJob, upscaler, result) -> None:
    now = timezone.now()
    with locked_job(job) as current:
        adopted = current.upscaler_job_id  # from a confirmed callback that came first
        called_back = current.upscaler_status == EARLY_CALLBACK
        if not adopted:
            fields = {
                "upscaler_job_id": result.external_id,
                "upscaler_status": result.status,
                "upscaler_credits": result.credits,
            }
            if current.status == S.PROCESSING:
                first_poll = now + timedelta(seconds=smi_settings.POLL_START_SECONDS)
                fields.update(attempts=0, last_error="", next_attempt_at=first_poll)
                process_at(current.pk, first_poll)
            for name, value in fields.items():
                setattr(current, name, value)
            current.save(update_fields=[*fields, "updated_at"])
            record_event(
                current,
                EventCode.SUBMITTED,
                {"upscaler": upscaler.name, "external_id": result.external_id, "via": "answer"},
            )
    if adopted:
        if adopted != result.external_id:
            logger.warning(
                "job %s: %s answered %s, but %s was adopted already",
                job.pk,
                upscaler.name,
                result.external_id,
                adopted,
            )
            record_event(
                current,
                EventCode.CALLBACK_IGNORED,
                {
                    "upscaler": upscaler.name,
                    "external_id": result.external_id,
                    "why": "answer_after_callback",
                    "kept": adopted,
                },
            )
        return
    if called_back and current.status == S.PROCESSING:
        _poll(current, upscaler)


def _submission_in_doubt(job: PurchaseJob, error: str) -> None:
    """The upscaler may have received the submission, and charged for it, though no usable
    answer came back: wait for its callback (which names its job) rather than pay twice."""
    stamp = job.upscaler_submitted_at or timezone.now()
    wait_until = min(
        stamp + timedelta(minutes=smi_settings.SUBMISSION_GRACE_MINUTES), job_deadline(job)
    )
    job = _next_attempt(job, wait_until, last_error=f"submission unconfirmed: {error}"[:1000])
    record_event(
        job,
        EventCode.SUBMISSION_UNCONFIRMED,
        {"error": error[:200], "wait_until": wait_until.isoformat()},
    )


def _await_lost_submission(job: PurchaseJob, now) -> None:
    """A job stamped as submitted but without the upscaler's id: its callback may still
    come; once the grace period is over, an admin decides (the upscaler's dashboard shows
    whether it has the job)."""
    grace_end = job.upscaler_submitted_at + timedelta(minutes=smi_settings.SUBMISSION_GRACE_MINUTES)
    if now >= grace_end:
        needs_attention(job, lost_submission_message(job))
    else:
        _next_attempt(job, min(grace_end, job_deadline(job)))


def lost_submission_message(job: PurchaseJob) -> str:
    return (
        f"the submission to {job.upscaler or 'the upscaler'} at "
        f"{job.upscaler_submitted_at:%Y-%m-%d %H:%M:%S} UTC got no usable answer "
        f"({job.last_error or 'the worker stopped'}) and no callback named its job within "
        f"{smi_settings.SUBMISSION_GRACE_MINUTES} minutes. The upscaler may have the job, and "
        "have charged for it: look for this order in its dashboard before retrying, since a "
        "retry submits again."
    )[:1000]


def _poll(job: PurchaseJob, upscaler) -> None:
    now = timezone.now()
    if now >= job_deadline(job):
        needs_attention(
            job, f"deadline passed while the upscaler reports {job.upscaler_status or '?'}"
        )
        return
    try:
        status = upscaler.status(job.upscaler_job_id)
    except FinalUpscalerError as exc:
        fail(job, REASON_UPSCALE_FAILED, f"{exc.code}: {exc}", alert=exc.code in SETUP_ERRORS)
        return
    except RetryableUpscalerError as exc:
        _next_attempt(
            job,
            now + timedelta(seconds=poll_interval(job, now)),
            last_polled_at=now,
            last_error=str(exc),
        )
        return
    except Exception as exc:  # a bug, or an answer the client did not expect
        _unexpected_failure(job, "checking the upscaler's status", exc)
        return
    # What the poll saw is saved with whatever the poll leads to (the delivery, the failure
    # or the next poll), in that step's own write, rather than in a write of its own.
    seen = {"last_polled_at": now, "upscaler_status": status.status}
    if status.credits is not None:
        seen["upscaler_credits"] = status.credits
    for name, value in seen.items():
        setattr(job, name, value)
    if status.status == SUCCESS:
        try:
            _fetch_and_deliver(job, status.image_url, seen)
        except Exception as exc:  # storage down, a malformed URL, a bug
            _unexpected_failure(job, "fetching and delivering the result", exc, seen)
    elif status.status == FAILED:
        fail(job, REASON_UPSCALE_FAILED, f"upscaler_failed: {status.error}", **seen)
    else:
        _next_attempt(job, now + timedelta(seconds=poll_interval(job, now)), **seen)


def _fetch_and_deliver(job: PurchaseJob, url: str, seen: dict) -> None:
    if job.status != S.PROCESSING:
        return
    try:
        path = fetch_result(url)
    except ResultRejected as exc:
        fail(job, REASON_RESULT_INVALID, f"result_rejected: {exc}", **seen)
        return
    except RetryableUpscalerError as exc:
        retry_later(job, f"fetching the result: {exc}", on_exhausted="fail", **seen)
        return
    try:
        _validate_and_deliver(job, path, seen)
    finally:
        path.unlink(missing_ok=True)


def _validate_and_deliver(job: PurchaseJob, path: Path, seen: dict | None = None) -> None:
    seen = seen or {}
    try:
        path = validate_result(path, job.output_width, job.output_height)
    except ResultRejected as exc:
        fail(job, REASON_RESULT_INVALID, f"result_invalid: {exc}", **seen)
        return
    try:
        deliver(job.pk, path, **seen)
    finally:
        path.unlink(missing_ok=True)


def deliver(job_id: JobId, path: Path, **fields) -> bool:
    """Install a validated result for a processing job; returns whether this call did.
    ``fields`` are saved with the delivery (what the last poll saw).

    Safe to run twice: see ``delivery.install_result``.
    """
    delivered = install_result(
        job_id,
        path,
        from_states={S.PROCESSING},
        code=EventCode.DELIVERED,
        next_attempt_at=None,
        **fields,
    )
    if delivered is None:
        return False
    forget_schedule(job_id)
    return True


# Outcomes ----------------------------------------------------------------------------------


def retry_later(job: PurchaseJob, error: str, *, on_exhausted: str, **fields) -> None:
    """Count a failed attempt and try again after a backoff, or give up after the last.
    ``fields`` are saved with it (what the last poll saw)."""
    attempts = job.attempts + 1
    if attempts >= smi_settings.MAX_ATTEMPTS:
        message = f"gave up after {attempts} attempts: {error}"
        if on_exhausted == "fail":
            fail(job, REASON_RESULT_UNAVAILABLE, message, **fields)
        else:
            needs_attention(job, message, **fields)
        return
    delay = backoff_seconds(attempts)
    _next_attempt(
        job,
        timezone.now() + timedelta(seconds=delay),
        attempts=attempts,
        last_error=error[:1000],
        **fields,
    )
    record_event(
        job,
        EventCode.ATTEMPT_FAILED,
        {"attempt": attempts, "error": error[:200], "delay_seconds": int(delay)},
    )


def _unexpected_failure(
    job: PurchaseJob, step: str, exc: Exception, seen: dict | None = None
) -> None:
    """An exception no upscaler contract covers (a bug, a full disk, storage down, an answer
    the client did not expect): logged with its traceback, then counted like a retryable
    error so that it ends with ``needs_attention`` and an admin alert, never in a loop."""
    logger.exception("job %s: %s failed unexpectedly", job.pk, step)
    current = PurchaseJob.objects.filter(pk=job.pk).first()
    if current is None or current.status != S.PROCESSING:
        return
    error = f"{step}: {exc.__class__.__name__}: {exc}"
    if timezone.now() >= job_deadline(current):
        needs_attention(current, f"deadline passed; {error}", **(seen or {}))
    else:
        retry_later(current, error, on_exhausted="attention", **(seen or {}))


def fail(job: PurchaseJob, reason: str, detail: str, *, alert: bool = False, **fields) -> None:
    """``failed``, then refund after commit (the refund's email tells the customer).
    ``fields`` are saved with the transition."""
    try:
        job = transition(
            job,
            S.FAILED,
            code=EventCode.PROCESSING_FAILED,
            data={"reason": reason, "detail": detail[:2000]},
            only_from=IN_PIPELINE,
            last_error=detail[:1000],
            next_attempt_at=None,
            **fields,
        )
    except TransitionNotAllowed:
        return
    logger.warning("job %s failed (%s): %s", job.pk, reason, detail)
    forget_schedule(job.pk)
    after_commit(lambda: refund_failed_job(str(job.pk), reason))
    if alert:
        alert_admins(
            job,
            _("Processing failed and the order is being refunded: %(detail)s") % {"detail": detail},
        )


def needs_attention(
    job: PurchaseJob, message: str, *, from_states: Iterable[str] | None = None, **fields
) -> None:
    """An admin must look at the job (they are alerted, the customer told of the delay).
    ``fields`` are saved with the transition."""
    try:
        job = transition(
            job,
            S.NEEDS_ATTENTION,
            code=EventCode.NEEDS_ATTENTION,
            data={"detail": message[:2000]},
            only_from=from_states or IN_PIPELINE,
            last_error=message[:1000],
            next_attempt_at=None,
            **fields,
        )
    except TransitionNotAllowed:
        return
    forget_schedule(job.pk)
    alert_admins(job, message)
    tell_customer_of_delay(job)


def failure_reason(job_id: JobId) -> str:
    """The reason a failed job failed with (from the event that moved it to ``failed``)."""
    event = (
        JobEvent.objects.filter(job_id=job_id, kind=JobEvent.Kind.TRANSITION, to_status=S.FAILED)
        .order_by("-created_at", "-id")
        .first()
    )
    return (event.data.get("reason") if event else "") or REASON_UPSCALE_FAILED
