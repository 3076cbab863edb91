"""The processing pipeline (SPEC §1 steps 7–8): paid → processing → completed.

    paid ──claim──► processing ──submit──► (callback or polling) ──► fetch ──► validate
         ──► private storage ──► token ──► email (on commit) ──► completed

Every entry point loads the job by id and is safe to run twice: claiming ``paid →
processing`` is a locked transition only one worker wins; a job that has an upscaler job
id is polled, never resubmitted, and neither is one stamped as submitted whose answer was
lost (it waits for the upscaler's callback, then for an admin); delivery re-checks the
state under the row lock, so a replayed callback or a re-run task never delivers or
emails twice.

Business retries live in the job (``attempts``, ``next_attempt_at``, exponential backoff
with jitter, ``MAX_ATTEMPTS``); ``next_attempt_at`` doubles as a lease while a worker
submits or upscales, so the sweeper only takes over work whose worker died.

Failures: a final upscaler error, an invalid result, or a result that cannot be fetched
after retries → ``failed`` → automatic refund (``payments.refund_job``, whose email tells
the customer). A job past its deadline while the upscaler still works on it, or whose
submission kept failing, → ``needs_attention`` and the admins are emailed.
"""

from __future__ import annotations

import json
import logging
import random
import re
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.http import JsonResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from PIL import Image

from . import delivery
from .conf import smi_settings
from .models import JobStatus, PurchaseJob
from .upscalers import (
    FAILED,
    SUCCESS,
    FinalUpscalerError,
    RetryableUpscalerError,
    UpscalerError,
    get_upscaler,
)
from .upscalers.base import pixel_limit
from .upscalers.results import (
    ResultFetcher,
    ResultRejected,
    any_address,
    is_public_address,
)
from .workflow import TransitionNotAllowed, locked_job, record_note, transition, update_job

logger = logging.getLogger(__name__)

S = JobStatus
RESULT_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}
MAX_REDIRECTS = 3
# Failure reasons (passed to refund_job and shown, explained, in the customer's email).
REASON_UPSCALE_FAILED = "upscale_failed"
REASON_RESULT_INVALID = "result_invalid"
REASON_RESULT_UNAVAILABLE = "result_unavailable"
# ``upscaler_status`` while a callback arrived before the upscaler's id was recorded.
EARLY_CALLBACK = "CALLBACK_RECEIVED"
# Errors that mean the shop's own setup is broken: the admins hear about them at once.
SETUP_ERRORS = {"invalid_api_key", "insufficient_credits"}


# Small helpers ---------------------------------------------------------------------------


def temp_dir() -> Path:
    """Where results are streamed and upscaled before storage (cleaned daily)."""
    path = Path(tempfile.gettempdir()) / "wagtail_smi"
    path.mkdir(parents=True, exist_ok=True)
    return path


def job_deadline(job: PurchaseJob):
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


def poll_interval(job: PurchaseJob, now) -> float:
    """Poll from POLL_START after submission, backing off to at most POLL_MAX."""
    started = job.processing_at or now
    elapsed = (now - started).total_seconds()
    return min(
        max(smi_settings.POLL_START_SECONDS, elapsed / 2), smi_settings.POLL_MAX_INTERVAL_SECONDS
    )


# Entry points ----------------------------------------------------------------------------


def process_job(job_id) -> None:
    """Move a job forward from wherever it is; the queue and the sweeper call this."""
    job = PurchaseJob.objects.filter(pk=job_id).first()
    if job is None:
        logger.warning("process_job: no job %s", job_id)
        return
    if job.status == S.PAID:
        _start(job)
    elif job.status == S.PROCESSING:
        _continue(job)
    # Any other state: nothing to do (already delivered, refunded, waiting for an admin).


def handle_upscaler_callback(request, job_id, secret: str):
    """The upscaler says something happened. A hint only: the status is confirmed with the
    upscaler's API (using the id we stored, never anything from the body) before acting.

    One exception, confirmed too: a job whose submission's answer was lost (stamped, but
    without the upscaler's id) adopts the id the callback names, once the upscaler's API
    confirms it (``_adopt_from_callback``).
    """
    job = (
        PurchaseJob.objects.filter(pk=job_id)
        .only("id", "status", "upscaler_job_id", "upscaler_submitted_at")
        .first()
    )
    if job is None or not job.check_callback_secret(secret):
        return JsonResponse({"error": "not_found", "message": _("Not found.")}, status=404)
    if job.status != S.PROCESSING:
        return JsonResponse({"received": True})
    if not job.upscaler_job_id and job.upscaler_submitted_at:
        _adopt_from_callback(job, _callback_job_id(request))
    with locked_job(job) as current:
        if current.status == S.PROCESSING and current.upscaler_job_id:
            from .tasks import enqueue_processing

            transaction.on_commit(lambda: enqueue_processing(current.pk), robust=True)
        elif current.status == S.PROCESSING:
            # The callback beat us to recording the upscaler's id (the submitting worker
            # has not saved it yet): leave a mark, under the same lock, so that worker polls
            # as soon as it saves the id instead of waiting for the first scheduled poll.
            current.upscaler_status = EARLY_CALLBACK
            current.save(update_fields=["upscaler_status", "updated_at"])
    return JsonResponse({"received": True})


CALLBACK_MAX_BYTES = 64 * 1024
_UPSCALER_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def _callback_job_id(request) -> str:
    """The upscaler's job id named in a callback's JSON body, or ``""``."""
    body = request.body
    if not body or len(body) > CALLBACK_MAX_BYTES:
        return ""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return ""
    value = data.get("id") if isinstance(data, dict) else None
    value = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    return value if _UPSCALER_JOB_ID.fullmatch(value) else ""


def _adopt_from_callback(job: PurchaseJob, candidate: str) -> None:
    """Record the upscaler's job id from a callback, as if the lost answer had arrived.

    The callback's URL carries the job's secret, which only the upscaler was given; still,
    the id counts only once the upscaler's API confirms that it knows this job, and never
    when another order already has it.
    """
    if not candidate:
        return
    upscaler = get_upscaler()
    if upscaler.synchronous:
        return
    if PurchaseJob.objects.filter(upscaler_job_id=candidate).exclude(pk=job.pk).exists():
        logger.warning("job %s: callback named an upscaler job another order has; ignored", job.pk)
        record_note(job, f"callback named {upscaler.name} job {candidate}, which belongs to another order; ignored")
        return
    try:
        status = upscaler.status(candidate)
    except UpscalerError as exc:
        record_note(job, f"callback named {upscaler.name} job {candidate}, not confirmed ({exc}); not adopted")
        return
    except Exception:  # a bug, or an answer the client did not expect: the grace period goes on
        logger.exception("job %s: confirming the callback's upscaler job failed", job.pk)
        return
    now = timezone.now()
    with locked_job(job) as current:
        if current.status != S.PROCESSING or current.upscaler_job_id or not current.upscaler_submitted_at:
            return
        current.upscaler_job_id = candidate
        current.upscaler_status = status.status
        if status.credits is not None:
            current.upscaler_credits = status.credits
        current.attempts = 0
        current.last_error = ""
        current.next_attempt_at = now
        current.save(
            update_fields=[
                "upscaler_job_id", "upscaler_status", "upscaler_credits", "attempts",
                "last_error", "next_attempt_at", "updated_at",
            ]
        )
    record_note(current, f"submitted to {upscaler.name} as {candidate} (the answer was lost; taken from its confirmed callback)")


def retry_job(job_id, *, actor=None) -> PurchaseJob:
    """Admin: a job that needs attention goes back to ``paid`` and is processed again.

    If the upscaler still has a live job for it, that job is polled rather than paid for
    twice. The original payment time is kept (reports count revenue by it).
    """
    job = PurchaseJob.objects.get(pk=job_id)
    keep_remote = bool(job.upscaler_job_id) and job.upscaler_status not in {"", FAILED}
    now = timezone.now()
    job = transition(
        job,
        S.PAID,
        only_from={S.NEEDS_ATTENTION},
        reason="retried by an admin",
        actor=actor,
        attempts=0,
        next_attempt_at=None,
        last_error="",
        deadline_at=now + timedelta(minutes=smi_settings.JOB_DEADLINE_MINUTES),
        upscaler_job_id=job.upscaler_job_id if keep_remote else "",
        upscaler_status=job.upscaler_status if keep_remote else "",
        # The admin has checked that the upscaler does not have the job: submit again.
        upscaler_submitted_at=job.upscaler_submitted_at if keep_remote else None,
    )
    from .tasks import enqueue_processing

    transaction.on_commit(lambda: enqueue_processing(job.pk), robust=True)
    return job


def redeliver(job_id, *, actor=None) -> PurchaseJob:
    """Admin: rebuild a lost delivery (file deleted or missing, or stuck after the result
    arrived) from the upscaler's result or, for a local upscaler, from the original; then
    a new link is emailed. Runs in the caller's process."""
    job = PurchaseJob.objects.select_related("site", "image").get(pk=job_id)
    if job.status not in {S.COMPLETED, S.NEEDS_ATTENTION}:
        raise delivery.DeliveryError(_("Only completed orders or orders that need attention can be redelivered."))
    upscaler = get_upscaler()
    try:
        if upscaler.synchronous:
            path = upscaler.upscale(job, temp_dir())
        else:
            if not job.upscaler_job_id:
                raise delivery.DeliveryError(_("The upscaler never accepted this order; retry it instead."))
            status = upscaler.status(job.upscaler_job_id)
            if status.status != SUCCESS:
                raise delivery.DeliveryError(
                    _("The upscaler has no result for this order (status: %(status)s).")
                    % {"status": status.status or "?"}
                )
            path = fetch_result(status.image_url)
        path = validate_result(path, job)
    except (FinalUpscalerError, RetryableUpscalerError, ResultRejected) as exc:
        raise delivery.DeliveryError(str(exc))
    try:
        name, size, content_type = delivery.store_result(job, path)
    finally:
        path.unlink(missing_ok=True)
    with transaction.atomic():
        current = PurchaseJob.objects.select_for_update().get(pk=job.pk)
        token, fields = delivery.token_fields(current)
        fields.update(
            result_path=name,
            result_size_bytes=size,
            result_content_type=content_type,
            file_deleted_at=None,
            access_revoked_at=None,
            last_error="",
        )
        old_path = current.result_path
        if current.status == S.NEEDS_ATTENTION:
            current = transition(current, S.COMPLETED, reason="redelivered by an admin", actor=actor, **fields)
        elif current.status == S.COMPLETED:
            current = update_job(current, **fields)
            record_note(current, "redelivered with a new file and link", actor=actor)
        else:
            delivery.delete_stored_file(name)
            raise delivery.DeliveryError(_("The order changed meanwhile; nothing was redelivered."))
        if old_path and old_path != name:
            transaction.on_commit(lambda: delivery.delete_stored_file(old_path), robust=True)
        transaction.on_commit(lambda: delivery._send_ready(current.pk, token), robust=True)
    return current


# Steps -----------------------------------------------------------------------------------


def _start(job: PurchaseJob) -> None:
    now = timezone.now()
    deadline = job_deadline(job)
    if now >= deadline and not job.upscaler_job_id:
        _needs_attention(job, "the deadline passed before processing started", from_states={S.PAID})
        return
    upscaler = get_upscaler()
    try:
        job = transition(
            job,
            S.PROCESSING,
            only_from={S.PAID},
            reason="processing started",
            upscaler=upscaler.name,
            deadline_at=deadline,
            next_attempt_at=now + timedelta(seconds=lease_seconds()),
        )
    except TransitionNotAllowed:
        return  # another worker claimed it
    if job.upscaler_job_id and not upscaler.synchronous:
        _poll(job, upscaler)  # an admin retry while the upscaler still has the job
    else:
        _run(job, upscaler)


def _continue(job: PurchaseJob) -> None:
    # The deadline comes first, whatever else happens: a job whose polling or delivery
    # keeps breaking must still reach an admin instead of being re-enqueued forever.
    now = timezone.now()
    if now >= job_deadline(job):
        if job.upscaler_job_id:
            _needs_attention(job, f"deadline passed while the upscaler reports {job.upscaler_status or '?'}")
        elif job.upscaler_submitted_at:
            _needs_attention(job, f"deadline passed; {_lost_submission_message(job)}")
        else:
            _needs_attention(job, "the deadline passed before the upscaler accepted the job")
        return
    upscaler = get_upscaler()
    if job.upscaler_job_id and not upscaler.synchronous:
        _poll(job, upscaler)
        return
    # No upscaler job id yet: a crashed worker, a retry waiting for its backoff, or a
    # submission whose answer was lost.
    with locked_job(job) as current:
        due = current.next_attempt_at is None or current.next_attempt_at <= now
        if current.status != S.PROCESSING or current.upscaler_job_id or not due:
            return
        if current.upscaler_submitted_at is None:
            current.next_attempt_at = now + timedelta(seconds=lease_seconds())
            current.save(update_fields=["next_attempt_at", "updated_at"])
    if current.upscaler_submitted_at:
        _await_lost_submission(current, now)
    else:
        _run(current, upscaler)


def _run(job: PurchaseJob, upscaler) -> None:
    """Submit to an asynchronous upscaler, or upscale right here with a synchronous one."""
    if upscaler.synchronous:
        _upscale_here(job, upscaler)
    else:
        _submit(job, upscaler)


def _upscale_here(job: PurchaseJob, upscaler) -> None:
    try:
        path = upscaler.upscale(job, temp_dir())
    except FinalUpscalerError as exc:
        _fail(job, REASON_UPSCALE_FAILED, f"{exc.code}: {exc}", alert=exc.code in SETUP_ERRORS)
        return
    except RetryableUpscalerError as exc:
        _retry_later(job, str(exc), on_exhausted="attention")
        return
    except Image.UnidentifiedImageError as exc:
        _fail(job, REASON_UPSCALE_FAILED, f"original_unreadable: {exc}")
        return
    except Exception as exc:  # a bug or a broken disk: counted, retried, then an admin
        logger.exception("job %s: %s failed unexpectedly", job.pk, upscaler.name)
        _retry_later(job, f"{exc.__class__.__name__}: {exc}", on_exhausted="attention")
        return
    try:
        _validate_and_deliver(job, path)
    except Exception as exc:
        _unexpected_failure(job, "delivering the result", exc)
    finally:
        path.unlink(missing_ok=True)


def _submit(job: PurchaseJob, upscaler) -> None:
    """Submit to an asynchronous upscaler, which charges for every submission it receives.

    The attempt is stamped, and committed, before the request leaves: when the worker dies
    or the answer is lost, the next worker finds the stamp and does not submit again; it
    waits for the upscaler's callback instead (``_await_lost_submission``). Only an error
    that proves the request never arrived (no connection, 429, 503...) clears the stamp
    and lets a later attempt submit again.
    """
    job = update_job(job, upscaler_submitted_at=timezone.now())
    try:
        result = upscaler.submit(job)
    except FinalUpscalerError as exc:  # an answer refusing the job: nothing was started
        _fail(job, REASON_UPSCALE_FAILED, f"{exc.code}: {exc}", alert=exc.code in SETUP_ERRORS)
        return
    except RetryableUpscalerError as exc:
        if exc.may_have_arrived:
            _submission_in_doubt(job, str(exc))
        else:
            job = update_job(job, upscaler_submitted_at=None)
            _retry_later(job, str(exc), on_exhausted="attention")
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
                fields.update(
                    attempts=0,
                    last_error="",
                    next_attempt_at=now + timedelta(seconds=smi_settings.POLL_START_SECONDS),
                )
            for name, value in fields.items():
                setattr(current, name, value)
            current.save(update_fields=[*fields, "updated_at"])
    if adopted:
        if adopted != result.external_id:
            logger.warning("job %s: %s answered %s, but %s was adopted already", job.pk, upscaler.name, result.external_id, adopted)
            record_note(current, f"{upscaler.name} also answered with {result.external_id}; keeping {adopted}")
        return
    record_note(current, f"submitted to {upscaler.name} as {result.external_id}")
    if called_back and current.status == S.PROCESSING:
        _poll(current, upscaler)


def _submission_in_doubt(job: PurchaseJob, error: str) -> None:
    """The upscaler may have received the submission, and charged for it, though no usable
    answer came back: wait for its callback (which names its job) rather than pay twice."""
    stamp = job.upscaler_submitted_at or timezone.now()
    wait_until = min(stamp + timedelta(minutes=smi_settings.SUBMISSION_GRACE_MINUTES), job_deadline(job))
    job = update_job(job, last_error=f"submission unconfirmed: {error}"[:1000], next_attempt_at=wait_until)
    record_note(
        job,
        f"submission unconfirmed ({error[:200]}); not submitting again, waiting for the upscaler's "
        f"callback until {wait_until:%Y-%m-%d %H:%M} UTC",
    )


def _await_lost_submission(job: PurchaseJob, now) -> None:
    """A job stamped as submitted but without the upscaler's id: its callback may still
    come; once the grace period is over, an admin decides (the upscaler's dashboard shows
    whether it has the job)."""
    grace_end = job.upscaler_submitted_at + timedelta(minutes=smi_settings.SUBMISSION_GRACE_MINUTES)
    if now >= grace_end:
        _needs_attention(job, _lost_submission_message(job))
    else:
        update_job(job, next_attempt_at=min(grace_end, job_deadline(job)))


def _lost_submission_message(job: PurchaseJob) -> str:
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
        _needs_attention(job, f"deadline passed while the upscaler reports {job.upscaler_status or '?'}")
        return
    try:
        status = upscaler.status(job.upscaler_job_id)
    except FinalUpscalerError as exc:
        _fail(job, REASON_UPSCALE_FAILED, f"{exc.code}: {exc}", alert=exc.code in SETUP_ERRORS)
        return
    except RetryableUpscalerError as exc:
        if now >= job_deadline(job):
            _needs_attention(job, f"deadline passed; last status check failed: {exc}")
        else:
            update_job(
                job,
                last_polled_at=now,
                last_error=str(exc),
                next_attempt_at=now + timedelta(seconds=poll_interval(job, now)),
            )
        return
    except Exception as exc:  # a bug, or an answer the client did not expect
        _unexpected_failure(job, "checking the upscaler's status", exc)
        return
    fields = {"last_polled_at": now, "upscaler_status": status.status}
    if status.credits is not None:
        fields["upscaler_credits"] = status.credits
    job = update_job(job, **fields)
    if status.status == SUCCESS:
        try:
            _fetch_and_deliver(job, status.image_url)
        except Exception as exc:  # storage down, a malformed URL, a bug
            _unexpected_failure(job, "fetching and delivering the result", exc)
    elif status.status == FAILED:
        _fail(job, REASON_UPSCALE_FAILED, f"upscaler_failed: {status.error}")
    elif now >= job_deadline(job):
        _needs_attention(job, f"deadline passed while the upscaler reports {status.status or '?'}")
    else:
        update_job(job, next_attempt_at=now + timedelta(seconds=poll_interval(job, now)))


def _fetch_and_deliver(job: PurchaseJob, url: str) -> None:
    if job.status != S.PROCESSING:
        return
    try:
        path = fetch_result(url)
    except ResultRejected as exc:
        _fail(job, REASON_RESULT_INVALID, f"result_rejected: {exc}")
        return
    except RetryableUpscalerError as exc:
        _retry_later(job, f"fetching the result: {exc}", on_exhausted="fail")
        return
    try:
        _validate_and_deliver(job, path)
    finally:
        path.unlink(missing_ok=True)


def _validate_and_deliver(job: PurchaseJob, path: Path) -> None:
    try:
        path = validate_result(path, job)
    except ResultRejected as exc:
        _fail(job, REASON_RESULT_INVALID, f"result_invalid: {exc}")
        return
    try:
        deliver(job.pk, path)
    finally:
        path.unlink(missing_ok=True)


def deliver(job_id, path: Path) -> bool:
    """Store a validated result, issue a token and complete the job; email on commit.

    Safe to run twice: the state is re-checked under the row lock and a second copy of the
    file is removed again. Returns whether this call delivered.
    """
    job = PurchaseJob.objects.select_related("site").get(pk=job_id)
    if job.status != S.PROCESSING:
        return False
    name, size, content_type = delivery.store_result(job, path)
    try:
        with transaction.atomic():
            current = PurchaseJob.objects.select_for_update().get(pk=job_id)
            if current.status != S.PROCESSING:
                raise TransitionNotAllowed(job_id, current.status, S.COMPLETED, "already moved on")
            token, fields = delivery.token_fields(current)
            current = transition(
                current,
                S.COMPLETED,
                only_from={S.PROCESSING},
                reason="delivered",
                result_path=name,
                result_size_bytes=size,
                result_content_type=content_type,
                next_attempt_at=None,
                last_error="",
                file_deleted_at=None,
                access_revoked_at=None,
                **fields,
            )
            transaction.on_commit(lambda: delivery._send_ready(current.pk, token), robust=True)
    except TransitionNotAllowed:
        delivery.delete_stored_file(name)
        return False
    return True


def _retry_later(job: PurchaseJob, error: str, *, on_exhausted: str) -> None:
    attempts = job.attempts + 1
    if attempts >= smi_settings.MAX_ATTEMPTS:
        message = f"gave up after {attempts} attempts: {error}"
        if on_exhausted == "fail":
            _fail(job, REASON_RESULT_UNAVAILABLE, message)
        else:
            _needs_attention(job, message)
        return
    delay = backoff_seconds(attempts)
    update_job(
        job,
        attempts=attempts,
        last_error=error[:1000],
        next_attempt_at=timezone.now() + timedelta(seconds=delay),
    )
    record_note(job, f"attempt {attempts} failed ({error[:200]}); retrying in {int(delay)} s")


def _unexpected_failure(job: PurchaseJob, step: str, exc: Exception) -> None:
    """An exception no upscaler contract covers (a bug, a full disk, storage down, an answer
    the client did not expect): logged with its traceback, then counted like a retryable
    error so that it ends with ``needs_attention`` and an admin alert, never in a loop."""
    logger.exception("job %s: %s failed unexpectedly", job.pk, step)
    current = PurchaseJob.objects.filter(pk=job.pk).first()
    if current is None or current.status != S.PROCESSING:
        return
    error = f"{step}: {exc.__class__.__name__}: {exc}"
    if timezone.now() >= job_deadline(current):
        _needs_attention(current, f"deadline passed; {error}")
    else:
        _retry_later(current, error, on_exhausted="attention")


def _fail(job: PurchaseJob, reason: str, detail: str, *, alert: bool = False) -> None:
    """``failed``, then refund after commit (refund_job emails the customer)."""
    try:
        job = transition(
            job,
            S.FAILED,
            only_from={S.PAID, S.PROCESSING},
            reason=f"{reason}: {detail}"[:2000],
            last_error=detail[:1000],
            next_attempt_at=None,
        )
    except TransitionNotAllowed:
        return
    logger.warning("job %s failed (%s): %s", job.pk, reason, detail)
    from .tasks import refund_failed_job

    transaction.on_commit(lambda: refund_failed_job(str(job.pk), reason), robust=True)
    if alert:
        _alert_on_commit(job, _("Processing failed and the order is being refunded: %(detail)s") % {"detail": detail})


def _needs_attention(job: PurchaseJob, message: str, *, from_states=None) -> None:
    try:
        job = transition(
            job,
            S.NEEDS_ATTENTION,
            only_from=from_states or {S.PAID, S.PROCESSING},
            reason=message[:2000],
            last_error=message[:1000],
            next_attempt_at=None,
        )
    except TransitionNotAllowed:
        return
    _alert_on_commit(job, message)


def _alert_on_commit(job: PurchaseJob, message: str) -> None:
    from . import emails

    transaction.on_commit(lambda: emails.send_admin_alert(job, message), robust=True)


def refund_failed(job_id, reason: str) -> None:
    """Ask the payment provider to refund a failed job (idempotent per job and reason)."""
    from .payments import refund_job

    job = PurchaseJob.objects.filter(pk=job_id).only("status").first()
    if job is None or job.status != S.FAILED:
        return
    refund_job(job_id, reason=reason)


# Fetching and validating results ---------------------------------------------------------


def result_fetcher(**overrides) -> ResultFetcher:
    """The result fetcher the settings describe: https from public addresses, or (with
    ``ALLOW_PRIVATE_URLS``, tests only) http too and any address. ``overrides`` replace
    its parts (the address policy, the resolver, the trusted certificates)."""
    allow_private = smi_settings.ALLOW_PRIVATE_URLS
    options = {
        "max_bytes": smi_settings.RESULT_MAX_BYTES,
        "time_limit": smi_settings.FETCH_TIMEOUT_SECONDS,
        "policy": any_address if allow_private else is_public_address,
        "schemes": ("https", "http") if allow_private else ("https",),
        "max_redirects": MAX_REDIRECTS,
    }
    options.update(overrides)
    return ResultFetcher(**options)


def check_result_url(url: str, *, fetcher: ResultFetcher | None = None) -> None:
    """Refuse a result URL that may not be fetched (see ``upscalers.results``)."""
    (fetcher or result_fetcher()).check(url)


def fetch_result(url: str, *, fetcher: ResultFetcher | None = None) -> Path:
    """Stream a result to a temporary file: checked and pinned addresses, every redirect
    checked again, a size cap and one deadline for the whole download.

    Raises ``ResultRejected`` (final) or ``RetryableUpscalerError``.
    """
    return (fetcher or result_fetcher()).fetch(url, temp_dir())


def validate_result(path: Path, job: PurchaseJob) -> Path:
    """Accept only JPEG/PNG/WebP of exactly the ordered size; return it with its suffix.

    Only the header is decoded plus Pillow's ``verify()``: a full decode of a 400-megapixel
    image would need gigabytes of memory in the worker.
    """
    expected = (job.output_width, job.output_height)
    try:
        # Pillow's bomb guard is lifted to the ordered size only while the header is read
        # (Image.open is where it is checked), then restored for everyone else.
        with pixel_limit(expected[0] * expected[1]):
            image = Image.open(path)
        with image:
            fmt, size = image.format, image.size
            image.verify()
    except Exception as exc:
        path.unlink(missing_ok=True)
        raise ResultRejected(f"the result is not a readable image ({exc.__class__.__name__})")
    if fmt not in RESULT_FORMATS:
        path.unlink(missing_ok=True)
        raise ResultRejected(f"the result is {fmt}, not JPEG, PNG or WebP")
    if tuple(size) != expected:
        path.unlink(missing_ok=True)
        raise ResultRejected(f"the result is {size[0]}×{size[1]}, expected {expected[0]}×{expected[1]}")
    final = path.with_suffix(RESULT_FORMATS[fmt])
    path.rename(final)
    return final


# Scheduled work --------------------------------------------------------------------------


def sweep() -> dict[str, int]:
    """Every minute: restart paid jobs whose task was lost, poll/resume processing jobs
    that are due (this also enforces deadlines), retry refunds that did not happen and
    "download ready" emails that could not be sent."""
    from .tasks import enqueue_processing, enqueue_refund

    now = timezone.now()
    started = 0
    lost = PurchaseJob.objects.filter(status=S.PAID, paid_at__lte=now - timedelta(seconds=60))
    for job_id in lost.values_list("pk", flat=True)[:500]:
        enqueue_processing(job_id)
        started += 1
    due = PurchaseJob.objects.filter(status=S.PROCESSING).exclude(next_attempt_at__gt=now)
    polled = 0
    for job_id in due.values_list("pk", flat=True)[:500]:
        enqueue_processing(job_id)
        polled += 1
    stuck = PurchaseJob.objects.filter(status=S.FAILED, failed_at__lte=now - timedelta(minutes=5))
    refunds = 0
    for job_id in stuck.values_list("pk", flat=True)[:100]:
        enqueue_refund(job_id, _failure_reason(job_id))
        refunds += 1
    emails_retried = 0
    for job_id in delivery.unsent_ready_emails(now).values_list("pk", flat=True)[:50]:
        emails_retried += delivery.retry_ready_email(job_id, now)
    return {"started": started, "polled": polled, "refunds": refunds, "emails_retried": emails_retried}


def _failure_reason(job_id) -> str:
    """The reason code this job failed with (the start of its ``failed`` event)."""
    from .models import JobEvent

    event = (
        JobEvent.objects.filter(job_id=job_id, to_status=S.FAILED, kind=JobEvent.Kind.TRANSITION)
        .order_by("-created_at")
        .first()
    )
    code = (event.reason.split(":", 1)[0] if event else "") or REASON_UPSCALE_FAILED
    return code


def _deletable_files(now):
    """Jobs whose delivered file can no longer be downloaded."""
    from django.db.models import Q

    return (
        PurchaseJob.objects.filter(file_deleted_at__isnull=True)
        .exclude(result_path="")
        .filter(Q(token_expires_at__lt=now) | Q(status=S.REFUNDED) | Q(access_revoked_at__isnull=False))
    )


def delete_expired_file(job_id, name: str, now) -> bool:
    """Delete one job's file if it is still the one cleanup saw and still not downloadable.

    An admin may have resent the link (new expiry) or redelivered (new file) since cleanup
    listed the job: the row is locked and the same conditions, plus the same file name,
    are checked again; the file itself is deleted only once that has committed.
    """
    with transaction.atomic():
        job = (
            _deletable_files(now)
            .select_for_update()
            .filter(pk=job_id, result_path=name)
            .only("pk")
            .first()
        )
        if job is None:
            return False
        PurchaseJob.objects.filter(pk=job_id).update(file_deleted_at=now, updated_at=now)
        transaction.on_commit(lambda: delivery.delete_stored_file(name), robust=True)
    return True


def cleanup() -> dict[str, int]:
    """Daily: delete delivered files that can no longer be downloaded (the job row stays),
    abandon checkouts unpaid for ABANDON_AFTER_HOURS, remove stale temporary files."""
    now = timezone.now()
    deleted = 0
    for job_id, name in _deletable_files(now).values_list("pk", "result_path"):
        deleted += delete_expired_file(job_id, name, now)
    abandoned = 0
    cutoff = now - timedelta(hours=smi_settings.ABANDON_AFTER_HOURS)
    # A payment already on its way (a bank debit still clearing) is not abandoned: the
    # buyer would be told to start again and could end up paying twice.
    for job_id in PurchaseJob.objects.filter(
        status=S.AWAITING_PAYMENT, created_at__lt=cutoff, payment_intent_id=""
    ).values_list("pk", flat=True):
        try:
            transition(
                job_id,
                S.ABANDONED,
                only_from={S.AWAITING_PAYMENT},
                reason=f"unpaid for {smi_settings.ABANDON_AFTER_HOURS} hours",
            )
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
