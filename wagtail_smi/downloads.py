"""File routes: the emailed token link, the order page's download button, and the
short-lived signed URL the upscaler fetches an original from.

Who may download and what counts is the operations layer's (``operations.downloads``);
this module speaks HTTP: ranges (206/416), HEAD, and handing the file to the web server
with ``X-Accel-Redirect`` / ``X-Sendfile`` or to the storage with a presigned redirect
(``DOWNLOAD_SERVE``). A link that cannot be
served answers a page in the site's layout saying what happened and what to do (an
expired one offers a fresh link by email), with the same statuses as the JSON errors a
client gets when it asks for JSON: 404 unknown, 410 expired/revoked/used up, 425 not ready.
"""

from __future__ import annotations

import logging
import mimetypes
import re
import sys
from collections.abc import Callable
from urllib.parse import quote

from django.http import FileResponse, HttpResponse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe

from . import links, progress, storage
from .conf import smi_settings
from .http import json_error, operation_error, page, rate_limited_page, status_for, wants_json
from .models import JobStatus, PurchaseJob
from .operations import DownloadRefused
from .operations.downloads import (
    Claim,
    claim_download,
    find_original,
    refused,
    settle_download,
)
from .ratelimit import check_rate_limit
from .rendering import storefront_settings
from .utils import client_ip, hash_ip

logger = logging.getLogger(__name__)

CHUNK_SIZE = 64 * 1024
_STARTS_AT_ZERO = re.compile(r"bytes=\s*0+\s*-")


@require_safe
def download(request, token: str) -> HttpResponse:
    """``GET /smi/download/<token>``: 404 unknown, 410 expired/revoked/used up, 425 not ready."""
    retry_after = check_rate_limit(request, "download")
    if retry_after is not None:
        return rate_limited_page(request, retry_after)
    return _download(
        request,
        lambda **how: claim_download(token=token, **how),
        fresh_link_url=lambda job: links.token_fresh_link_path(token),
    )


@require_safe
def order_download(request, job_id) -> HttpResponse:
    """The order status page's button: the same checks, authorised by the order's key."""
    retry_after = check_rate_limit(request, "download")
    if retry_after is not None:
        return rate_limited_page(request, retry_after)
    return _download(
        request,
        lambda **how: claim_download(job_id=job_id, key=request.GET.get("key"), **how),
        fresh_link_url=links.fresh_link_path,
        order_url=links.order_path,
    )


def _download(
    request,
    claim_for: Callable[..., Claim],
    *,
    fresh_link_url: Callable[[PurchaseJob], str],
    order_url: Callable[[PurchaseJob], str] | None = None,
) -> HttpResponse:
    """Claim the download (find, check, count and log: one query on PostgreSQL), then
    serve it; a refusal answers the page or the JSON error."""
    head = request.method == "HEAD"
    header = "" if head else request.headers.get("Range", "")
    ranged = parse_range(header, sys.maxsize) is not None
    claim = claim_for(
        client=hash_ip(client_ip(request)),
        range_hint=1 if ranged and not _STARTS_AT_ZERO.match(header) else None,
        ranged=ranged,
        record=not head,
    )
    try:
        if claim.refusal is not None:
            raise claim.refusal
        return serve(request, claim, header)
    except DownloadRefused as exc:
        job = claim.job
        if not wants_json(request):
            return refusal_page(
                request,
                exc,
                job,
                fresh_link_url=fresh_link_url(job) if job is not None else "",
                order_url=order_url(job) if job is not None and order_url else "",
            )
        response = operation_error(exc)
        response["Cache-Control"] = "no-store"
        return response


def refusal_page(
    request, exc: DownloadRefused, job: PurchaseJob | None, *, fresh_link_url: str, order_url: str
) -> HttpResponse:
    """Why this link gives no file, and what the customer can do about it."""
    title, message = _refusal_words(exc.code, job)
    support = progress.support_email(job) if job is not None else ""
    if not support:
        site_settings = storefront_settings(request)
        support = getattr(site_settings, "support_email", "") or ""
    can_refresh = bool(job is not None and fresh_link_url and progress.fresh_link_possible(job))
    context = {
        "code": exc.code,
        "title": title,
        "message": message,
        "job": job,
        "support_email": support,
        "order_url": order_url,
        "fresh_link_url": fresh_link_url if can_refresh else "",
        "expired_at": job.token_expires_at if job is not None and exc.code == "expired" else None,
    }
    return page(
        request, "wagtail_smi/storefront/download_refused.html", context, status=status_for(exc)
    )


def _refusal_words(code: str, job: PurchaseJob | None) -> tuple[str, str]:
    """The page's title and its explanation, for the reason the file was refused."""
    if code == "expired":
        if job is not None and progress.fresh_link_possible(job):
            return _("This download link has expired"), _(
                "Download links work for a limited time. Enter the email address you used for "
                "this order and we will email you a fresh link."
            )
        if job is not None and job.file_deleted_at:
            return _("This download link has expired"), _(
                "Download links work for a limited time, and the file of this order is no "
                "longer kept. Write to the shop if you need it again."
            )
        return _("This download link has expired"), _(
            "Download links work for a limited time. Write to the shop if you need the file again."
        )
    if code == "revoked" and job is not None and job.status == JobStatus.REFUNDED:
        return _("This order was refunded"), _(
            "This order was refunded, so its download is no longer available. The money goes "
            "back to your original payment method."
        )
    if code == "limit_reached":
        return _("Download limit reached"), _(
            "This file has been downloaded as many times as one order allows. Write to the "
            "shop if you need it again."
        )
    if code == "not_ready":
        return _("Your image is not ready yet"), _(
            "We are still working on your image, and we will email you when it is ready. "
            "Please try this link again later."
        )
    if code in {"revoked", "missing"}:
        return _("This download is no longer available"), _(
            "The file of this order can no longer be downloaded. If you think this is a "
            "mistake, write to the shop."
        )
    return _("This download link does not work"), _(
        "We could not find a download for this link. Check that you copied the whole link "
        "from the email; if it still does not work, write to the shop."
    )


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | bool:
    """One ``bytes=`` range → (start, end inclusive); None: serve it all; False: unsatisfiable."""
    if not header or not header.startswith("bytes="):
        return None
    if size <= 0:
        return False
    spec = header[len("bytes=") :].strip()
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


class FileRange:
    """One byte range of an open file, read like a whole file (its end is the range's).

    With ``sendfile`` the real descriptor is offered, positioned at the range's start: a
    server whose ``wsgi.file_wrapper`` sends from the file's position for the response's
    ``Content-Length`` (gunicorn) hands the range to the kernel. Without it the server
    reads the range in blocks.
    """

    mode = "rb"

    def __init__(self, handle, start: int, length: int, *, sendfile: bool) -> None:
        handle.seek(start)
        self._handle = handle
        self._left = length
        if sendfile:
            self.fileno = handle.fileno

    def read(self, size: int | None = -1) -> bytes:
        if self._left <= 0:
            return b""
        wanted = self._left if size is None or size < 0 else min(size, self._left)
        data = self._handle.read(wanted)
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._handle.close()


def _sendfile_honours_length(request) -> bool:
    """Whether the WSGI server's file wrapper sends from the file's position and stops at
    ``Content-Length`` (gunicorn does; uWSGI's sends to the end of the file)."""
    return request.META.get("SERVER_SOFTWARE", "").startswith("gunicorn/")


def serve(request, claim: Claim, range_header: str) -> HttpResponse:
    """Answer a download request whose ``claim_download`` went through.

    The claim has already counted and logged it (unless it is a resume), whichever way the
    bytes then travel (``DOWNLOAD_SERVE``): streamed from here, by the web server in front,
    or by the storage behind a presigned URL. A file that turns out missing or a range it
    cannot satisfy takes the download back (``settle_download``).
    """
    job = claim.job
    files = storage.private_storage()
    name = job.result_path
    try:
        size = files.size(name)
    except (FileNotFoundError, OSError):
        logger.error("job %s: delivered file %s is missing", job.pk, name)
        settle_download(claim, served=False, range_start=None)
        raise refused("missing") from None
    content_type = (
        job.result_content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
    )
    if request.method == "HEAD":
        response = HttpResponse(content_type=content_type)
        response["Content-Length"] = str(size)
        return _download_headers(response, job)
    byte_range = parse_range(range_header, size)
    if byte_range is False:
        settle_download(claim, served=False, range_start=None)
        response = json_error("range_not_satisfiable", _("Requested range not satisfiable."), 416)
        response["Content-Range"] = f"bytes */{size}"
        return response
    settle_download(claim, served=True, range_start=byte_range[0] if byte_range else None)
    mode = (smi_settings.DOWNLOAD_SERVE or "django").lower()
    if mode == "redirect":
        return _redirect(job, content_type)
    if mode == "x-accel-redirect":
        response = HttpResponse(content_type=content_type)
        response["X-Accel-Redirect"] = (
            smi_settings.X_ACCEL_REDIRECT_PREFIX.rstrip("/") + "/" + quote(name)
        )
        del response["Content-Length"]
        return _download_headers(response, job)
    if mode == "x-sendfile":
        path = storage.local_path(name)
        if path is not None:
            response = HttpResponse(content_type=content_type)
            response["X-Sendfile"] = path
            del response["Content-Length"]
            return _download_headers(response, job)
        # wagtail_smi.E021 says so at start-up; the customer still gets the file.
        logger.error("X-Sendfile needs a local private storage: job %s streamed", job.pk)
    return _stream(
        files, name, content_type, size, byte_range, job, sendfile=_sendfile_honours_length(request)
    )


def _stream(
    files, name: str, content_type: str, size: int, byte_range, job, *, sendfile: bool = False
) -> HttpResponse:
    """The file itself, from any storage: whole, or the one range asked for (206), as an
    open file the WSGI server can hand to ``sendfile``."""
    if byte_range is None:
        response = FileResponse(files.open(name, "rb"), content_type=content_type)
        response["Content-Length"] = str(size)
    else:
        start, end = byte_range
        length = end - start + 1
        response = FileResponse(
            FileRange(files.open(name, "rb"), start, length, sendfile=sendfile),
            status=206,
            content_type=content_type,
        )
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
        response["Content-Length"] = str(length)
    response.block_size = CHUNK_SIZE
    return _download_headers(response, job)


def _redirect(job: PurchaseJob, content_type: str) -> HttpResponse:
    """302 to a presigned URL of the storage, which sends the bytes (ranges too) and names
    the attachment. The redirect itself is never cached and sends no referrer, so the
    signed URL neither outlives its seconds in a cache nor reaches another site."""
    try:
        url = storage.signed_download_url(
            job.result_path,
            filename=storage.download_filename(job),
            content_type=content_type,
            seconds=smi_settings.DOWNLOAD_REDIRECT_SECONDS,
        )
    except ValueError:
        # wagtail_smi.E022 says so at start-up; streaming still works.
        logger.error("DOWNLOAD_SERVE redirect: the private storage cannot sign URLs")
        files = storage.private_storage()
        size = files.size(job.result_path)
        return _stream(files, job.result_path, content_type, size, None, job)
    response = HttpResponse(status=302)
    response["Location"] = url
    del response["Content-Type"]
    return _download_headers(response, job)


def _download_headers(response: HttpResponse, job: PurchaseJob) -> HttpResponse:
    """The headers every download answer carries, whatever the site's middleware adds.
    nginx keeps only the first four on an X-Accel-Redirect: its internal location sets
    the others again (deploy/nginx/wagtail-smi.conf, tested)."""
    response["Content-Disposition"] = f'attachment; filename="{storage.download_filename(job)}"'
    response["Accept-Ranges"] = "bytes"
    response["Cache-Control"] = "no-store, private"
    response["X-Content-Type-Options"] = "nosniff"
    response["Referrer-Policy"] = "no-referrer"
    response["X-Frame-Options"] = "DENY"
    response["Cross-Origin-Opener-Policy"] = "same-origin"
    return response


@require_safe
def original(request, signed: str) -> HttpResponse:
    """The original image of an order being processed, for an upscaler that cannot reach
    the image storage. Signed and short-lived; 404 once expired or the order has moved on.

    Deliberately not under the per-client ``download`` rate limit: the client is the
    upscaler, which fetches every shop's originals from a few addresses and would get 429
    under load, failing paid orders. The signature (``SECRET_KEY``, 6 hours, only while
    the order is paid or processing) is what guards this route; a forged or stale URL is a
    404 after one signature check, without touching the database.
    """
    job = find_original(signed)
    if job is None:
        return json_error("not_found", _("Not found."), 404)
    image = job.image
    response = FileResponse(
        image.file.storage.open(image.file.name, "rb"),
        content_type=mimetypes.guess_type(image.file.name)[0] or "application/octet-stream",
    )
    response["Cache-Control"] = "no-store, private"
    response["X-Content-Type-Options"] = "nosniff"
    return response
