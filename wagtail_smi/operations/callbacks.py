"""The upscaler's callback: a hint that something happened to a job.

Callbacks carry no signature (SPEC §6): the URL's secret says which job, and nothing in the
body is believed until the upscaler's API confirms it.
"""

from __future__ import annotations

import logging

from django.utils import timezone

from ..models import EventCode, JobStatus, PurchaseJob
from ..upscalers import UpscalerError, get_upscaler
from ..workflow import locked_job, record_event
from .common import JobId, process_later

logger = logging.getLogger(__name__)

S = JobStatus
# ``upscaler_status`` while a callback arrived before the upscaler's id was recorded.
EARLY_CALLBACK = "CALLBACK_RECEIVED"


def upscaler_callback(job_id: JobId, secret: str, named_id: str = "") -> bool:
    """The upscaler says something happened to a job: a hint only. Returns False when the
    job does not exist or the secret is wrong (nothing is changed or revealed).

    The status is confirmed with the upscaler's API, using the id we stored, before acting.
    One exception, confirmed too: a job whose submission's answer was lost (stamped, but
    without the upscaler's id) adopts the id the callback names (``named_id``), once the
    upscaler's API confirms it.
    """
    job = (
        PurchaseJob.objects.filter(pk=job_id)
        .only("id", "status", "upscaler_job_id", "upscaler_submitted_at")
        .first()
    )
    if job is None or not job.check_callback_secret(secret):
        return False
    if job.status != S.PROCESSING:
        return True
    if not job.upscaler_job_id and job.upscaler_submitted_at:
        _adopt_from_callback(job, named_id)
    with locked_job(job) as current:
        if current.status == S.PROCESSING and current.upscaler_job_id:
            # Due now: the poll this starts is not one the job's schedule may skip.
            current.next_attempt_at = timezone.now()
            current.save(update_fields=["next_attempt_at", "updated_at"])
            process_later(current.pk)
        elif current.status == S.PROCESSING:
            # The callback beat us to recording the upscaler's id (the submitting worker
            # has not saved it yet): leave a mark, under the same lock, so that worker polls
            # as soon as it saves the id instead of waiting for the first scheduled poll.
            current.upscaler_status = EARLY_CALLBACK
            current.save(update_fields=["upscaler_status", "updated_at"])
    return True


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
        record_event(
            job,
            EventCode.CALLBACK_IGNORED,
            {"upscaler": upscaler.name, "external_id": candidate, "why": "other_order"},
        )
        return
    try:
        status = upscaler.status(candidate)
    except UpscalerError as exc:
        record_event(
            job,
            EventCode.CALLBACK_IGNORED,
            {
                "upscaler": upscaler.name,
                "external_id": candidate,
                "why": "unconfirmed",
                "error": str(exc)[:200],
            },
        )
        return
    except Exception:  # a bug, or an answer the client did not expect: the grace period goes on
        logger.exception("job %s: confirming the callback's upscaler job failed", job.pk)
        return
    now = timezone.now()
    with locked_job(job) as current:
        if (
            current.status != S.PROCESSING
            or current.upscaler_job_id
            or not current.upscaler_submitted_at
        ):
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
                "upscaler_job_id",
                "upscaler_status",
                "upscaler_credits",
                "attempts",
                "last_error",
                "next_attempt_at",
                "updated_at",
            ]
        )
    record_event(
        current,
        EventCode.SUBMITTED,
        {"upscaler": upscaler.name, "external_id": candidate, "via": "callback"},
    )
