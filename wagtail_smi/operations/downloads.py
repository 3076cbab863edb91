"""Who may download a delivered file, and counting each download against the limit.

The download routes (the emailed token link, the order page's button) ask
``check_downloadable`` and then ``record_download``; serving the bytes (ranges, X-Accel)
is the route's business.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import tokens
from ..models import DownloadEvent, JobStatus, PurchaseJob
from .common import JobId
from .errors import OperationError

S = JobStatus
# A ranged request from a client that had a counted download of the same file this
# recently is a resume and is not counted again.
RESUME_WINDOW = timedelta(hours=24)


class DownloadRefused(OperationError):
    """Why a file cannot be downloaded now. ``code``: ``not_found``, ``revoked``,
    ``expired``, ``not_ready``, ``limit_reached`` or ``missing``."""


def refused(code: str) -> DownloadRefused:
    messages = {
        "not_found": _("Not found."),
        "revoked": _("This download is no longer available."),
        "expired": _("This download link has expired."),
        "not_ready": _("Your image is not ready yet."),
        "limit_reached": _("This file has been downloaded too many times."),
        "missing": _("This download is no longer available."),
    }
    return DownloadRefused(messages[code], code=code)


def find_by_token(token: str) -> PurchaseJob | None:
    """The order an emailed download token belongs to (only its hash is stored)."""
    if not tokens.is_download_token(token):
        return None
    return (
        PurchaseJob.objects.filter(token_hash=tokens.hash_token(token))
        .select_related("site")
        .first()
    )


def find_by_key(job_id: JobId, key: str | None) -> PurchaseJob | None:
    job = PurchaseJob.objects.filter(pk=job_id).select_related("site").first()
    if job is None or not job.check_access_key(key):
        return None
    return job


def find_original(signed: str) -> PurchaseJob | None:
    """The order a signed original URL names, while the upscaler may still need it."""
    job_id = tokens.unsign_original(signed)
    if job_id is None:
        return None
    job = PurchaseJob.objects.filter(pk=job_id).select_related("image").first()
    if job is None or job.status not in {S.PAID, S.PROCESSING} or job.image is None:
        return None
    return job


def counted_recently(job: PurchaseJob, client: str) -> bool:
    """Whether this client (a hashed address) has a counted download of this order within
    ``RESUME_WINDOW``. Only counted ones: a free resume must not vouch for the next one, or
    a client could chain resumes past the window and the limit."""
    if not client:
        return False
    since = timezone.now() - RESUME_WINDOW
    return DownloadEvent.objects.filter(
        job=job, ip_hash=client, counted=True, created_at__gte=since
    ).exists()


def is_resume(job: PurchaseJob, range_start: int | None, client: str) -> bool:
    """A ranged request is a free resume only when it starts after byte 0 and the same
    client already had a counted download; ``bytes=0-`` is a whole new copy."""
    return bool(range_start) and range_start > 0 and counted_recently(job, client)


def check_downloadable(
    job: PurchaseJob, *, range_start: int | None = None, client: str = ""
) -> None:
    """Raise ``DownloadRefused`` when this order's file cannot be downloaded now.

    A used-up download limit still lets through what may be a resume (``range_start``
    after byte 0 from a client with a counted download); ``record_download`` decides
    strictly once the route knows the range.
    """
    # Gone for good is checked before "not ready": an order that was delivered, refunded,
    # and then needs attention (say the refund failed) must not look pending.
    if job.status == S.REFUNDED or job.access_revoked_at:
        raise refused("revoked")
    if job.file_deleted_at or (job.token_expires_at and job.token_expires_at <= timezone.now()):
        raise refused("expired")
    if job.status in {S.PAID, S.PROCESSING, S.NEEDS_ATTENTION}:
        raise refused("not_ready")
    if job.status != S.COMPLETED or not job.result_path:
        raise refused("not_found")
    if (
        job.download_limit is not None
        and job.download_count >= job.download_limit
        and not is_resume(job, range_start, client)
    ):
        raise refused("limit_reached")


def record_download(job: PurchaseJob, *, client: str, range_start: int | None) -> bool:
    """Log a download, taking one from the allowance unless it is a resume; returns whether
    it was counted. Raises ``DownloadRefused`` when no download is left.

    Neither repeating ``Range: bytes=0-`` nor chaining resumes can bypass the limit: each
    ``DownloadEvent`` records whether it was counted.
    """
    resuming = is_resume(job, range_start, client)
    if not resuming:
        allowed = Q(download_limit__isnull=True) | Q(download_count__lt=F("download_limit"))
        took = PurchaseJob.objects.filter(allowed, pk=job.pk).update(
            download_count=F("download_count") + 1
        )
        if not took:
            raise refused("limit_reached")
    DownloadEvent.objects.create(
        job=job, ip_hash=client, ranged=range_start is not None, counted=not resuming
    )
    return not resuming
