"""File routes: the emailed token link, the order page's download button, and the
short-lived signed URL the upscaler fetches an original from. Thin: parse, authorise,
hand to ``delivery``."""

from __future__ import annotations

from django.http import FileResponse, HttpResponse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe

from . import delivery
from .models import PurchaseJob
from .ratelimit import rate_limit


@require_safe
@rate_limit("download")
def download(request, token: str) -> HttpResponse:
    """``GET /smi/download/<token>``: 404 unknown, 410 expired/revoked/used up, 425 not ready."""
    job = delivery.job_for_token(token)
    if job is None:
        return delivery.error_response(404, "not_found", _("Not found."))
    return delivery.refusal(job, request) or delivery.serve(request, job)


@require_safe
@rate_limit("download")
def order_download(request, job_id) -> HttpResponse:
    """The order status page's button: the same checks, authorised by the order's key."""
    job = PurchaseJob.objects.filter(pk=job_id).select_related("site").first()
    if job is None or not job.check_access_key(request.GET.get("key")):
        return delivery.error_response(404, "not_found", _("Not found."))
    return delivery.refusal(job, request) or delivery.serve(request, job)


@require_safe
def original(request, signed: str) -> HttpResponse:
    """The original image of a job being processed, for an upscaler that cannot reach the
    image storage. Signed and short-lived; 404 once expired or the job has moved on.

    Deliberately not under the per-client ``download`` rate limit: the client is the
    upscaler, which fetches every shop's originals from a few addresses and would get 429
    under load, failing paid orders. The signature (``SECRET_KEY``, 6 hours, only while
    the job is paid or processing) is what guards this route; a forged or stale URL is a
    404 after one signature check, without touching the database.
    """
    job = delivery.job_for_original(signed)
    if job is None:
        return delivery.error_response(404, "not_found", _("Not found."))
    image = job.image
    response = FileResponse(
        image.file.storage.open(image.file.name, "rb"), content_type=_image_type(image)
    )
    response["Cache-Control"] = "no-store, private"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _image_type(image) -> str:
    import mimetypes

    return mimetypes.guess_type(image.file.name)[0] or "application/octet-stream"
