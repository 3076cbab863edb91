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
from urllib.parse import quote

from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe

from . import links, progress, storage
from .conf import smi_settings
from .http import json_error, operation_error, page, rate_limited_page, status_for, wants_json
from .models import JobStatus, PurchaseJob
from .operations import DownloadRefused, check_downloadable, record_download
from .operations.downloads import find_by_key, find_by_token, find_original, refused
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
    job = find_by_token(token)
    fresh_link = links.token_fresh_link_path(token) if job is not None else ""
    return _download(request, job, fresh_link_url=fresh_link)


@require_safe
def order_download(request, job_id) -> HttpResponse:
    """The order status page's button: the same checks, authorised by the order's key."""
    retry_after = check_rate_limit(request, "download")
    if retry_after is not None:
        return rate_limited_page(request, retry_after)
    job = find_by_key(job_id, request.GET.get("key"))
    if job is None:
        return _download(request, None)
    return _download(
        request,
        job,
        fresh_link_url=links.fresh_link_path(job),
        order_url=links.order_path(job),
    )


def _download(
    request, job: PurchaseJob | None, *, fresh_link_url: str = "", order_url: str = ""
) -> HttpResponse:
    try:
        if job is None:
            raise refused("not_found")
        client = hash_ip(client_ip(request))
        check_downloadable(job, range_start=_range_start_hint(request), client=client)
        return serve(request, job, client)
    except DownloadRefused as exc:
        if not wants_json(request):
            return refusal_page(
                request, exc, job, fresh_link_url=fresh_link_url, order_url=order_url
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


def _range_start_hint(request) -> int | None:
    """Before the file's size is known: a ranged GET that does not start at byte 0 may be
    a resume (1 stands for "after byte 0"); ``serve`` decides with the real range."""
    header = request.headers.get("Range", "") if request.method == "GET" else ""
    if not header.startswith("bytes=") or _STARTS_AT_ZERO.match(header):
        return None
    return 1


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


def serve(request, job: PurchaseJob, client: str) -> HttpResponse:
    """Answer a download request for an order that passed ``check_downloadable``.

    Every GET is logged, and counted unless it is a resume (see ``record_download``),
    whichever way the bytes then travel (``DOWNLOAD_SERVE``): streamed from here, by the
    web server in front, or by the storage behind a presigned URL.
    """
    files = storage.private_storage()
    name = job.result_path
    try:
        size = files.size(name)
    except (FileNotFoundError, OSError):
        logger.error("job %s: delivered file %s is missing", job.pk, name)
        raise refused("missing") from None
    content_type = (
        job.result_content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
    )
    head = request.method == "HEAD"
    byte_range = None if head else parse_range(request.headers.get("Range"), size)
    if byte_range is False:
        response = json_error("range_not_satisfiable", _("Requested range not satisfiable."), 416)
        response["Content-Range"] = f"bytes */{size}"
        return response
    if head:
        response = HttpResponse(content_type=content_type)
        response["Content-Length"] = str(size)
        return _download_headers(response, job)
    record_download(job, client=client, range_start=byte_range[0] if byte_range else None)
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
    return _stream(files, name, content_type, size, byte_range, job)


def _stream(files, name: str, content_type: str, size: int, byte_range, job) -> HttpResponse:
    """The file itself, from any storage: whole, or the one range asked for (206)."""
    if byte_range is None:
        response = FileResponse(files.open(name, "rb"), content_type=content_type)
        response["Content-Length"] = str(size)
    else:
        start, end = byte_range
        response = StreamingHttpResponse(
            _ranged_body(files.open(name, "rb"), start, end - start + 1),
            status=206,
            content_type=content_type,
        )
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
        response["Content-Length"] = str(end - start + 1)
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
    """The headers every download answer carries (nginx drops them on X-Accel-Redirect:
    the internal location sets them again, docs/deployment.md)."""
    response["Content-Disposition"] = f'attachment; filename="{storage.download_filename(job)}"'
    response["Accept-Ranges"] = "bytes"
    response["Cache-Control"] = "no-store, private"
    response["X-Content-Type-Options"] = "nosniff"
    response["Referrer-Policy"] = "no-referrer"
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
