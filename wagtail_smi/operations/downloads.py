"""Who may download a delivered file, and counting each download against the limit.

The download routes (the emailed token link, the order page's button) call
``claim_download``: find the order, check it, count and log the download, which on
PostgreSQL is one SQL statement per download. ``check_downloadable`` and
``record_download`` are the same rules one step at a time. Serving the bytes (ranges,
X-Accel) is the route's business.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import connection
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
    _check(job, resuming=lambda: is_resume(job, range_start, client))


def _check(job: PurchaseJob, *, resuming: Callable[[], bool]) -> None:
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
        and not resuming()
    ):
        raise refused("limit_reached")


def record_download(job: PurchaseJob, *, client: str, range_start: int | None) -> bool:
    """Log a download, taking one from the allowance unless it is a resume; returns whether
    it was counted. Raises ``DownloadRefused`` when no download is left.

    Neither repeating ``Range: bytes=0-`` nor chaining resumes can bypass the limit: each
    ``DownloadEvent`` records whether it was counted.
    """
    resuming = is_resume(job, range_start, client)
    _record(job, client=client, ranged=range_start is not None, resuming=resuming)
    return not resuming


def _record(job: PurchaseJob, *, client: str, ranged: bool, resuming: bool) -> DownloadEvent:
    """Take one download from the allowance unless ``resuming`` (``DownloadRefused`` when
    none is left), and log it."""
    if not resuming:
        _take_one(job)
    return DownloadEvent.objects.create(
        job=job, ip_hash=client, ranged=ranged, counted=not resuming
    )


# One statement per download ---------------------------------------------------------------


@dataclass
class Claim:
    """A download request after ``claim_download``: the order (None when there is no such
    order), why it is refused (nothing was recorded then), or the ``DownloadEvent`` logged
    for it and whether it took one from the allowance."""

    job: PurchaseJob | None
    refusal: DownloadRefused | None = None
    event_id: int | None = None
    counted: bool = False
    ranged: bool = False


def claim_download(
    *,
    client: str,
    range_hint: int | None = None,
    ranged: bool = False,
    record: bool = True,
    token: str | None = None,
    job_id: JobId | None = None,
    key: str | None = None,
) -> Claim:
    """Find the order a download names (an emailed ``token``, or ``job_id`` with the
    order's access ``key``), check it, and count and log the download: one SQL statement
    on PostgreSQL, find, check and count one after the other elsewhere. ``record`` False
    (a HEAD request) only finds and checks.

    ``range_hint`` follows ``check_downloadable``: 1 for a range that does not start at
    byte 0 (a possible resume), None otherwise; the route, once it knows the file's size,
    calls ``settle_download`` in case the real range is not what the hint promised.
    """
    found = _lookup(token, job_id, key)
    if found is None:
        return Claim(None, refused("not_found"))
    token_hash, job_id = found
    if record and connection.vendor == "postgresql":
        return _claim_in_one_statement(
            client=client,
            range_hint=range_hint,
            ranged=ranged,
            token_hash=token_hash,
            job_id=job_id,
        )
    if token_hash:
        job = PurchaseJob.objects.filter(token_hash=token_hash).first()
    else:
        job = PurchaseJob.objects.filter(pk=job_id).first()
    if job is None:
        return Claim(None, refused("not_found"))
    resuming = is_resume(job, range_hint, client)
    try:
        _check(job, resuming=lambda: resuming)
        if not record:
            return Claim(job)
        event = _record(job, client=client, ranged=ranged, resuming=resuming)
    except DownloadRefused as exc:
        return Claim(job, exc)
    return Claim(job, event_id=event.pk, counted=not resuming, ranged=ranged)


def _lookup(token: str | None, job_id: JobId | None, key: str | None):
    """(token hash, "") or ("", job id) to find the order by; None when the token or the
    key cannot be right, which needs no query (the key is derived from the id)."""
    if token is not None:
        return (tokens.hash_token(token), "") if tokens.is_download_token(token) else None
    if job_id is None or not tokens.check_access_key(job_id, key):
        return None
    try:
        return "", PurchaseJob._meta.pk.to_python(job_id)
    except ValidationError:
        return None


def settle_download(claim: Claim, *, served: bool, range_start: int | None) -> None:
    """Make the record say what is served, once the file's size is known (rare paths only).

    ``served`` False (the file is missing, the range cannot be satisfied): the download is
    taken back, as if never asked. A claim let through as a resume whose real range starts
    at byte 0 (a suffix covering the whole file) is a new copy: it counts now, or raises
    ``DownloadRefused`` when no download is left.
    """
    job = claim.job
    if claim.event_id is None or job is None:
        return
    if not served:
        DownloadEvent.objects.filter(pk=claim.event_id).delete()
        if claim.counted:
            PurchaseJob.objects.filter(pk=job.pk, download_count__gt=0).update(
                download_count=F("download_count") - 1
            )
            job.download_count = max(job.download_count - 1, 0)
        claim.event_id, claim.counted = None, False
        return
    if claim.counted or (range_start is not None and range_start > 0):
        return
    try:
        _take_one(job)
    except DownloadRefused:
        DownloadEvent.objects.filter(pk=claim.event_id).delete()
        claim.event_id = None
        raise
    DownloadEvent.objects.filter(pk=claim.event_id).update(counted=True)
    claim.counted = True


def _take_one(job: PurchaseJob) -> None:
    """One download from the allowance, in one conditional UPDATE (two requests racing for
    the last one cannot both have it)."""
    allowed = Q(download_limit__isnull=True) | Q(download_count__lt=F("download_limit"))
    took = PurchaseJob.objects.filter(allowed, pk=job.pk).update(
        download_count=F("download_count") + 1
    )
    if not took:
        raise refused("limit_reached")
    job.download_count += 1


def _claim_in_one_statement(
    *, client: str, range_hint: int | None, ranged: bool, token_hash: str, job_id
) -> Claim:
    """PostgreSQL: the order's row, the resume check, the conditional count and the event,
    as data-modifying CTEs of one statement. The count's condition is evaluated on the
    row's latest version (PostgreSQL re-checks an UPDATE's WHERE after waiting for a
    concurrent one), so the limit holds under concurrency as ``record_download``'s does."""
    jobs, events = PurchaseJob._meta, DownloadEvent._meta
    q = connection.ops.quote_name
    job_table, event_table = q(jobs.db_table), q(events.db_table)
    fields = jobs.concrete_fields
    column = {f.name: q(f.column) for f in fields}
    ev = {f.name: q(f.column) for f in events.concrete_fields}
    key_column, key = (column["token_hash"], token_hash) if token_hash else (column["id"], job_id)
    now = timezone.now()
    # Identifiers come from the models' meta, quoted by the backend; values are parameters.
    selected = ", ".join(
        f"(SELECT {column['download_count']} FROM took) AS {column['download_count']}"  # noqa: S608
        if f.name == "download_count"
        else f"found.{column[f.name]}"
        for f in fields
    )
    # Refusals are worked out afterwards from the row (``check_downloadable``); here only
    # "may be served, limit aside" decides whether anything is written.
    sql = f"""
        WITH found AS (
            SELECT j.*,
                (j.{column["status"]} = %s AND j.{column["result_path"]} <> ''
                 AND j.{column["access_revoked_at"]} IS NULL
                 AND j.{column["file_deleted_at"]} IS NULL
                 AND (j.{column["token_expires_at"]} IS NULL
                      OR j.{column["token_expires_at"]} > %s)) AS servable,
                (%s AND %s <> '' AND EXISTS (
                    SELECT 1 FROM {event_table} e
                    WHERE e.{ev["job"]} = j.{column["id"]} AND e.{ev["ip_hash"]} = %s
                      AND e.{ev["counted"]} AND e.{ev["created_at"]} >= %s)) AS resuming
            FROM {job_table} j WHERE j.{key_column} = %s LIMIT 1
        ),
        took AS (
            UPDATE {job_table} j
            SET {column["download_count"]} = j.{column["download_count"]} + 1
            FROM found
            WHERE j.{column["id"]} = found.{column["id"]}
              AND found.servable AND NOT found.resuming
              AND (j.{column["download_limit"]} IS NULL
                   OR j.{column["download_count"]} < j.{column["download_limit"]})
            RETURNING j.{column["download_count"]}
        ),
        logged AS (
            INSERT INTO {event_table}
                ({ev["job"]}, {ev["created_at"]}, {ev["ip_hash"]}, {ev["ranged"]}, {ev["counted"]})
            SELECT found.{column["id"]}, %s, %s, %s, EXISTS (SELECT 1 FROM took)
            FROM found
            WHERE found.servable AND (found.resuming OR EXISTS (SELECT 1 FROM took))
            RETURNING {ev["id"]}
        )
        SELECT {selected}, found.{column["download_count"]} AS smi_count_before,
            found.resuming AS smi_resuming, (SELECT {ev["id"]} FROM logged) AS smi_event
        FROM found
    """  # noqa: S608
    params = [
        S.COMPLETED,
        now,
        bool(range_hint and range_hint > 0),
        client,
        client,
        now - RESUME_WINDOW,
        key,
        now,
        client,
        ranged,
    ]
    job = next(iter(PurchaseJob.objects.raw(sql, params)), None)
    if job is None:
        return Claim(None, refused("not_found"))
    event_id, counted = job.smi_event, job.download_count is not None
    if not counted:
        job.download_count = job.smi_count_before
    if event_id is None:
        try:  # why nothing was written, from the row as it was read
            _check(job, resuming=lambda: job.smi_resuming)
        except DownloadRefused as exc:
            return Claim(job, exc)
        return Claim(job, refused("limit_reached"))  # a race for the last download, lost
    return Claim(job, event_id=event_id, counted=counted, ranged=ranged)
