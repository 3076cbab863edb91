"""What every HTTP edge answers the same way: JSON bodies, errors, refusals and pages.

Errors are ``{"error": code, "message": text}`` (SPEC §4), never cached. An
``OperationError`` from the operations layer becomes the status its class means here, the
one place that knows HTTP. Customer-facing pages (``page``) extend the site's base
template (``WAGTAIL_SMI["BASE_TEMPLATE"]``); routes a person opens in a browser answer a
page, and JSON only to a client that asks for it (``wants_json``).
"""

from __future__ import annotations

from typing import Any

from django.http import JsonResponse
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _

from .conf import smi_settings
from .operations import (
    CheckoutUnavailable,
    DownloadRefused,
    InvalidInput,
    NotAllowed,
    NotFound,
    OperationError,
    RetryLater,
    ServiceUnavailable,
)

# Why a download is refused, as a status (410 gone, 425 too early).
DOWNLOAD_STATUSES = {
    "not_found": 404,
    "revoked": 410,
    "expired": 410,
    "missing": 410,
    "limit_reached": 410,
    "not_ready": 425,
}


def json_answer(data: dict[str, Any], status: int = 200) -> JsonResponse:
    response = JsonResponse(data, status=status)
    add_never_cache_headers(response)
    return response


def json_error(code: str, message: str, status: int, **extra: Any) -> JsonResponse:
    return json_answer({"error": code, "message": str(message), **extra}, status=status)


def status_for(exc: OperationError) -> int:
    if isinstance(exc, DownloadRefused):
        return DOWNLOAD_STATUSES.get(exc.code, 410)
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, InvalidInput):
        return 400
    if isinstance(exc, CheckoutUnavailable):
        return 502
    if isinstance(exc, (NotAllowed, RetryLater)):
        return 409
    if isinstance(exc, ServiceUnavailable):
        return 503
    return 400


def operation_error(exc: OperationError) -> JsonResponse:
    extra = {"field": exc.field} if exc.field else {}
    return json_error(exc.code, exc.message, status_for(exc), **extra)


def method_not_allowed(allowed: str) -> JsonResponse:
    message = _("Use POST.") if allowed == "POST" else _("Use GET.")
    response = json_error("method_not_allowed", message, 405)
    response["Allow"] = allowed
    return response


def rate_limited(retry_after: int) -> JsonResponse:
    response = json_error("rate_limited", _("Too many requests, try again in a minute."), 429)
    response["Retry-After"] = str(retry_after)
    return response


# Pages ------------------------------------------------------------------------------------


def wants_json(request) -> bool:
    """Whether the client prefers JSON to HTML (``Accept``): scripts and API clients say
    so; browsers, and clients that state no preference, get a page."""
    preferred = request.get_preferred_type(["text/html", "application/json"])
    return preferred == "application/json"


def page(request, template: str, context: dict[str, Any] | None = None, *, status: int = 200):
    """A customer-facing page in the site's layout: never cached, never indexed.

    Many of these URLs hold a key or a token, so links from them (to other sites, and to
    the site's own pages) carry the origin only as ``Referer``. Not ``no-referrer``: then
    a form posted from the page says ``Origin: null``, which Django's CSRF check refuses.
    """
    values = {"base_template": smi_settings.BASE_TEMPLATE, **(context or {})}
    response = TemplateResponse(request, template, values, status=status)
    add_never_cache_headers(response)
    response["X-Robots-Tag"] = "noindex"
    response["Referrer-Policy"] = "strict-origin"
    return response


def message_page(request, title: str, message: str, *, status: int = 200, **extra: Any):
    return page(
        request,
        "wagtail_smi/storefront/message.html",
        {"title": title, "message": message, **extra},
        status=status,
    )


def rate_limited_page(request, retry_after: int):
    """429 as a page, or as the API's JSON error when the client asked for JSON."""
    if wants_json(request):
        return rate_limited(retry_after)
    response = message_page(
        request,
        _("Too many requests"),
        _("Too many requests, try again in a minute."),
        status=429,
    )
    response["Retry-After"] = str(retry_after)
    return response
