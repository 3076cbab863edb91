"""Delivery: private storage, download tokens, and serving delivered files.

Delivered files live in ``storages[WAGTAIL_SMI["PRIVATE_STORAGE"]]`` (any Django storage,
S3-compatible included), never under the public media URL. A download token is 64
URL-safe characters from ``secrets``; only its SHA-256 is stored, so a database dump
unlocks nothing. Files are streamed by Django (with HTTP Range) or handed to the web
server with ``X-Accel-Redirect`` / ``X-Sendfile`` (``DOWNLOAD_SERVE``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import mimetypes
import re
import secrets
from datetime import timedelta
from pathlib import Path

from django.core import signing
from django.core.files import File
from django.core.files.storage import storages
from django.db import transaction
from django.db.models import F, Q
from django.http import FileResponse, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext as _

from .conf import smi_settings
from .models import DownloadEvent, JobStatus, PurchaseJob
from .utils import absolute_url, client_ip, hash_ip
from .workflow import record_note, update_job

logger = logging.getLogger(__name__)

TOKEN_LENGTH = 64
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{64}")
ORIGINAL_SALT = "wagtail_smi.original"
# How long a signed original URL stays valid: long enough for Upsampler's queue.
ORIGINAL_URL_MAX_AGE = 6 * 3600
CHUNK_SIZE = 64 * 1024

CONTENT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}
# A ranged request from a client that had a counted download of the same file this
# recently is a resume and is not counted again.
RESUME_WINDOW = timedelta(hours=24)
# A "download ready" email that could not be sent: the note left on the job, and how
# often and how long the sweeper tries again.
EMAIL_FAILED_NOTE = "download email could not be sent"
EMAIL_RETRY_EVERY = timedelta(minutes=15)
EMAIL_RETRY_FOR = timedelta(hours=24)


class DeliveryError(Exception):
    """An admin action on a delivery that cannot be done (the message says why)."""


# Storage ---------------------------------------------------------------------------------


def resolution_slug(job: PurchaseJob) -> str:
    """The resolution key as it may appear in a file name or a header (never quotes,
    slashes or line breaks, whatever an admin typed as the key)."""
    return slugify(job.resolution or "")[:40] or "image"


def private_storage():
    return storages[smi_settings.PRIVATE_STORAGE]


def store_result(job: PurchaseJob, path: Path) -> tuple[str, int, str]:
    """Copy a validated result into private storage; return (name, size, content type)."""
    suffix = path.suffix.lower()
    stem = slugify(job.image_title or f"image-{job.image_ref}")[:60] or "image"
    name = f"wagtail_smi/{job.id}/{stem}-{resolution_slug(job)}{suffix}"
    with path.open("rb") as f:
        saved = private_storage().save(name, File(f, name=Path(name).name))
    return saved, path.stat().st_size, CONTENT_TYPES.get(suffix, "application/octet-stream")


def delete_stored_file(name: str) -> None:
    if not name:
        return
    try:
        private_storage().delete(name)
    except Exception:  # a missing file is already what we want
        logger.warning("could not delete %s from private storage", name, exc_info=True)


# Tokens ----------------------------------------------------------------------------------


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh (token, sha256 hex) pair; ``token_urlsafe(48)`` is exactly 64 characters."""
    token = secrets.token_urlsafe(48)
    return token, hash_token(token)


def download_expiry_hours(job: PurchaseJob) -> int:
    from .models import SmiSiteSettings

    if job.site_id:
        return SmiSiteSettings.for_site(job.site).download_expiry_hours
    return 24


def token_fields(job: PurchaseJob) -> tuple[str, dict]:
    """A new token and the job fields that go with it (expiry from now, limit, counters)."""
    token, digest = new_token()
    return token, {
        "token_hash": digest,
        "token_expires_at": timezone.now() + timedelta(hours=download_expiry_hours(job)),
        "download_limit": smi_settings.DOWNLOAD_LIMIT,
        "download_count": 0,
    }


def download_url(token: str) -> str:
    return absolute_url(reverse("wagtail_smi:download", args=[token]))


def link_expired(job: PurchaseJob, now=None) -> bool:
    """Whether the delivered file's time is up: the token's expiry has passed (even before
    the daily cleanup deletes the file), or the file is already gone."""
    if job.file_deleted_at:
        return True
    return bool(job.token_expires_at and job.token_expires_at <= (now or timezone.now()))


def ready_email_state(job: PurchaseJob) -> str:
    """What became of the "download ready" email: ``"sent"``, ``"failed"`` (an attempt
    failed; the sweeper may still try again), ``"pending"`` (not sent yet), or ``""`` when
    the order has no email address."""
    from .models import JobEvent

    if not job.email:
        return ""
    if job.delivery_email_sent_at:
        return "sent"
    failed = JobEvent.objects.filter(
        job=job, kind=JobEvent.Kind.NOTE, reason__startswith=EMAIL_FAILED_NOTE
    ).exists()
    return "failed" if failed else "pending"


def job_for_token(token: str) -> PurchaseJob | None:
    if not isinstance(token, str) or not TOKEN_RE.fullmatch(token):
        return None
    digest = hash_token(token)
    job = PurchaseJob.objects.filter(token_hash=digest).select_related("site").first()
    if job is None or not hmac.compare_digest(job.token_hash, digest):
        return None
    return job


def resend_download_email(job_id, *, actor=None) -> PurchaseJob:
    """Issue a new token (expiry counted from now, downloads reset) and email it again.

    The old link stops working. Refused (``DeliveryError``) when there is nothing to send.
    """
    with transaction.atomic():
        job = PurchaseJob.objects.select_for_update().get(pk=job_id)
        if job.status != JobStatus.COMPLETED or not job.result_path:
            raise DeliveryError(_("Only a completed order with a delivered file can be resent."))
        if job.file_deleted_at or job.access_revoked_at:
            raise DeliveryError(_("The file is no longer available; redeliver it first."))
        if not job.email:
            raise DeliveryError(_("This order has no customer email address."))
        token, fields = token_fields(job)
        job = update_job(job, **fields)
        record_note(job, "download email resent with a new link", actor=actor)
        transaction.on_commit(lambda: _send_ready(job.pk, token), robust=True)
    return job


def _send_ready(job_id, token: str) -> bool:
    """Email the download link; on failure say so (log, job note, admin alert) and leave
    ``delivery_email_sent_at`` empty so the sweeper tries again (``retry_ready_email``).
    Runs after commit, where an exception would only be logged: hence no raising here."""
    from . import emails

    job = PurchaseJob.objects.select_related("site").get(pk=job_id)
    try:
        sent = emails.send_download_ready(job, token)
        problem = "" if sent else "no message was sent"
    except Exception as exc:
        logger.exception("job %s: the download email could not be sent", job_id)
        sent, problem = False, f"{exc.__class__.__name__}: {exc}"
    if sent:
        PurchaseJob.objects.filter(pk=job_id).update(delivery_email_sent_at=timezone.now())
        return True
    logger.error("job %s: the download email was not sent (%s)", job_id, problem)
    message = f"{EMAIL_FAILED_NOTE} ({problem})"[:1000]
    try:
        record_note(job, message)
        emails.send_admin_alert(
            job,
            _("The download email could not be sent to the customer (%(problem)s). It will be "
              "tried again for a day; you can also resend it from the order.") % {"problem": problem},
        )
    except Exception:  # the mail server may be down for everyone: the log still has it
        logger.exception("job %s: could not report the unsent download email", job_id)
    return False


def unsent_ready_emails(now):
    """Completed jobs whose "download ready" email never went out, completed in the last
    day, with no failed attempt in the last 15 minutes (and none pending right now)."""
    from django.db.models import Exists, OuterRef

    from .models import JobEvent

    recent_failure = JobEvent.objects.filter(
        job=OuterRef("pk"),
        kind=JobEvent.Kind.NOTE,
        reason__startswith=EMAIL_FAILED_NOTE,
        created_at__gt=now - EMAIL_RETRY_EVERY,
    )
    return (
        PurchaseJob.objects.filter(
            status=JobStatus.COMPLETED,
            delivery_email_sent_at__isnull=True,
            completed_at__gt=now - EMAIL_RETRY_FOR,
            completed_at__lte=now - EMAIL_RETRY_EVERY,
            file_deleted_at__isnull=True,
            access_revoked_at__isnull=True,
        )
        .exclude(email="")
        .exclude(result_path="")
        .exclude(Exists(recent_failure))
    )


def retry_ready_email(job_id, now) -> bool:
    """Sweeper: send the download email again. Only the token's hash is stored, so a new
    token replaces the one nobody received; its expiry and download count are kept."""
    with transaction.atomic():
        job = unsent_ready_emails(now).select_for_update().filter(pk=job_id).first()
        if job is None:
            return False
        token, digest = new_token()
        job = update_job(job, token_hash=digest)
        record_note(job, "retrying the download email with a new link")
        transaction.on_commit(lambda: _send_ready(job.pk, token), robust=True)
    return True


# Originals for the upscaler --------------------------------------------------------------


def signed_original_url(job: PurchaseJob) -> str:
    signed = signing.dumps(str(job.pk), salt=ORIGINAL_SALT, compress=False)
    return absolute_url(reverse("wagtail_smi:original", args=[signed]))


def job_for_original(signed: str) -> PurchaseJob | None:
    try:
        job_id = signing.loads(signed, salt=ORIGINAL_SALT, max_age=ORIGINAL_URL_MAX_AGE)
    except signing.BadSignature:  # includes SignatureExpired
        return None
    job = PurchaseJob.objects.filter(pk=job_id).select_related("image").first()
    if job is None or job.status not in {JobStatus.PAID, JobStatus.PROCESSING} or job.image is None:
        return None
    return job


# Serving ---------------------------------------------------------------------------------


def error_response(status: int, code: str, message: str) -> JsonResponse:
    response = JsonResponse({"error": code, "message": message}, status=status)
    response["Cache-Control"] = "no-store"
    return response


def refusal(job: PurchaseJob, request=None) -> JsonResponse | None:
    """Why this job's file cannot be downloaded now, as a response, or None.

    With the ``request``, a used-up download limit still lets through what may be a resume
    (a range after byte 0 from a client with a counted download); ``serve`` decides
    strictly, once it knows the file's size, and refuses what it cannot count."""
    # Gone for good (410) is checked before "not ready" (425): an order that was delivered,
    # refunded, and then needs attention (say the refund failed) must not look pending.
    status = job.status
    if status == JobStatus.REFUNDED or job.access_revoked_at:
        return error_response(410, "revoked", _("This download is no longer available."))
    if job.file_deleted_at:
        return error_response(410, "expired", _("This download link has expired."))
    if job.token_expires_at and job.token_expires_at <= timezone.now():
        return error_response(410, "expired", _("This download link has expired."))
    if status in {JobStatus.PAID, JobStatus.PROCESSING, JobStatus.NEEDS_ATTENTION}:
        return error_response(425, "not_ready", _("Your image is not ready yet."))
    if status != JobStatus.COMPLETED or not job.result_path:
        return error_response(404, "not_found", _("Not found."))
    if (
        job.download_limit is not None
        and job.download_count >= job.download_limit
        and not _may_resume(request, job)
    ):
        return error_response(410, "limit_reached", _("This file has been downloaded too many times."))
    return None


def _parse_range(header: str, size: int) -> tuple[int, int] | None | bool:
    """One ``bytes=`` range → (start, end inclusive); None: serve it all; False: unsatisfiable."""
    if not header or not header.startswith("bytes="):
        return None
    if size <= 0:
        return False
    spec = header[len("bytes="):].strip()
    if "," in spec:  # several ranges: answering with the whole file is allowed
        return None
    first, sep, last = spec.partition("-")
    if not sep:
        return None
    try:
        if first == "":
            length = int(last)
            if length <= 0:
                return False
            return max(size - length, 0), size - 1
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start < 0 or start >= size or end < start:
        return False
    return start, min(end, size - 1)


def _count_download(job: PurchaseJob) -> bool:
    """Take one download from the allowance atomically; False when none is left."""
    allowed = Q(download_limit__isnull=True) | Q(download_count__lt=F("download_limit"))
    return bool(
        PurchaseJob.objects.filter(allowed, pk=job.pk).update(download_count=F("download_count") + 1)
    )


def _counted_recently(job: PurchaseJob, ip_hash: str) -> bool:
    """Whether this client has a counted download of this job within ``RESUME_WINDOW``.

    Only counted ones: a free resume must not vouch for the next one, or a client could
    chain resumes past the window and the limit."""
    if not ip_hash:
        return False
    since = timezone.now() - RESUME_WINDOW
    return DownloadEvent.objects.filter(
        job=job, ip_hash=ip_hash, counted=True, created_at__gte=since
    ).exists()


def _is_resume(byte_range, job: PurchaseJob, ip_hash: str) -> bool:
    """A ranged request is a free resume only when it starts after byte 0 and the same
    client already had a counted download; ``bytes=0-`` is a whole new copy."""
    return bool(byte_range) and byte_range[0] > 0 and _counted_recently(job, ip_hash)


def _may_resume(request, job: PurchaseJob) -> bool:
    if request is None or request.method != "GET":
        return False
    header = request.headers.get("Range", "")
    if not header.startswith("bytes=") or re.match(r"bytes=\s*0+\s*-", header):
        return False  # no range, or one that starts at byte 0
    return _counted_recently(job, hash_ip(client_ip(request)))


def _ranged_body(handle, start: int, length: int):
    try:
        handle.seek(start)
        remaining = length
        while remaining > 0:
            chunk = handle.read(min(CHUNK_SIZE, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        handle.close()


def download_filename(job: PurchaseJob) -> str:
    suffix = Path(job.result_path).suffix.lower() or ".bin"
    stem = slugify(job.image_title or "")[:80] or f"image-{job.image_ref}"
    return f"{stem}-{resolution_slug(job)}-{job.output_width}x{job.output_height}{suffix}"


def serve(request, job: PurchaseJob) -> HttpResponse:
    """Answer a download request for a job that passed ``refusal()``.

    A ranged request is a resume, logged but not counted, only when it starts after byte 0
    and the same client (hashed IP) had a counted download of this job within
    ``RESUME_WINDOW``; anything else counts like a full download, so neither repeating
    ``Range: bytes=0-`` nor chaining resumes can bypass the limit. Each ``DownloadEvent``
    records whether it was counted.
    """
    storage = private_storage()
    name = job.result_path
    try:
        size = storage.size(name)
    except (FileNotFoundError, OSError):
        logger.error("job %s: delivered file %s is missing", job.pk, name)
        return error_response(410, "missing", _("This download is no longer available."))
    content_type = job.result_content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
    filename = download_filename(job)
    head = request.method == "HEAD"
    byte_range = None if head else _parse_range(request.headers.get("Range"), size)
    if byte_range is False:
        response = error_response(416, "range_not_satisfiable", _("Requested range not satisfiable."))
        response["Content-Range"] = f"bytes */{size}"
        return response
    if not head:
        ip_hash = hash_ip(client_ip(request))
        resuming = _is_resume(byte_range, job, ip_hash)
        if not resuming and not _count_download(job):
            return error_response(410, "limit_reached", _("This file has been downloaded too many times."))
        DownloadEvent.objects.create(
            job=job, ip_hash=ip_hash, ranged=byte_range is not None, counted=not resuming
        )

    mode = (smi_settings.DOWNLOAD_SERVE or "django").lower()
    if mode in {"x-accel-redirect", "x-sendfile"} and not head:
        response = HttpResponse(content_type=content_type)
        if mode == "x-accel-redirect":
            response["X-Accel-Redirect"] = smi_settings.X_ACCEL_REDIRECT_PREFIX.rstrip("/") + "/" + name
        else:
            response["X-Sendfile"] = storage.path(name)
        del response["Content-Length"]
    elif head:
        response = HttpResponse(content_type=content_type)
        response["Content-Length"] = str(size)
    elif byte_range is None:
        response = FileResponse(storage.open(name, "rb"), content_type=content_type)
        response["Content-Length"] = str(size)
    else:
        start, end = byte_range
        response = StreamingHttpResponse(
            _ranged_body(storage.open(name, "rb"), start, end - start + 1),
            status=206,
            content_type=content_type,
        )
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
        response["Content-Length"] = str(end - start + 1)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Accept-Ranges"] = "bytes"
    response["Cache-Control"] = "no-store, private"
    response["X-Content-Type-Options"] = "nosniff"
    response["Referrer-Policy"] = "no-referrer"
    return response
