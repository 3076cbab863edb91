"""Public JSON endpoints (SPEC §4): prices, checkout, click tracking, job status, CSRF token.

Thin edges: parse and validate (``forms``), call one operation or read one domain
function, answer. Errors are ``{"error": code, "message": text}`` (``http``). POSTs are
CSRF protected, checked here with Django's own middleware so a failure is a JSON 403 like
every other error; ``csrf`` hands the modal a token (never cached) so it also works on
pages served from a full-page cache.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.middleware.csrf import CsrfViewMiddleware, get_token
from django.utils.cache import add_never_cache_headers, patch_cache_control
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt, ensure_csrf_cookie

from . import catalog, licensing, links, offer_cache, operations, pricing, progress, rendering
from .forms import ApiForm, CheckoutForm, OfferForm
from .http import json_answer, json_error, method_not_allowed, operation_error
from .models import JobStatus, PurchaseJob
from .ratelimit import rate_limit

logger = logging.getLogger(__name__)


class BadInput(Exception):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field, self.message = field, message


def not_for_sale() -> JsonResponse:
    return json_error("not_found", _("This image is no longer for sale."), 404)


def not_offered(offer: catalog.SaleOffer) -> JsonResponse | None:
    """422 for an image on sale that cannot be sold (not raster, too small), saying why."""
    refusal = offer.refusal()
    if refusal is None:
        return None
    return json_error("image_not_offered", refusal.message, 422, reason=refusal.code)


# --- input -------------------------------------------------------------------------------


# Our bodies are flat objects; anything nested deeper is refused before it is parsed, since
# ``json.loads`` recurses per level and raises ``RecursionError`` (a 500) on deep input.
# The size bound is Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (a 413).
MAX_JSON_DEPTH = 16
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_EMPTY_PAIR = re.compile(rb"\[\]|\{\}")


def json_too_deep(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``body`` nests arrays or objects more than ``limit`` deep, found without
    recursion: strings are removed, then innermost ``[]``/``{}`` pairs, one level a pass.
    Brackets that do not pair up (invalid JSON anyway) count as too deep."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    skeleton = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    for _level in range(limit):
        if not skeleton:
            return False
        skeleton = _EMPTY_PAIR.sub(b"", skeleton)
    return bool(skeleton)


def parse_json_body(body: bytes) -> Any:
    """The parsed body, or ``BadInput`` for anything malformed or too deeply nested.

    The text is read as UTF-8 (RFC 8259), so the byte scan and the parser see the same
    characters; ``json.loads`` on bytes would also guess UTF-16 and UTF-32."""
    invalid = BadInput("body", _("The request body is not valid JSON."))
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise invalid from exc
    if json_too_deep(body):
        raise BadInput("body", _("The request body is nested too deeply."))
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise invalid from exc


def read_input(request) -> tuple[dict[str, Any], bool]:
    """The request's fields and whether they came as JSON (typed) or form-encoded (strings)."""
    content_type = (request.content_type or "").lower()
    if content_type == "application/json":
        data = parse_json_body(request.body or b"{}")
        if not isinstance(data, dict):
            raise BadInput("body", _("The request body must be a JSON object."))
        return data, True
    return {key: request.POST.get(key) for key in request.POST}, False


# Django's own CSRF check, run as the middleware would; its refusal (an HTML page from
# CSRF_FAILURE_VIEW, already logged) is answered in the API's error shape instead.
_csrf = CsrfViewMiddleware(lambda request: None)


def csrf_refused(request) -> bool:
    return _csrf.process_view(request, None, (), {}) is not None


def json_endpoint(form_class: type[ApiForm]):
    """POST only, CSRF-checked, the body validated by ``form_class``; a bad field is a 400
    that names it, an ``OperationError`` the status its class means."""

    def decorator(view):
        @csrf_exempt  # checked below, so that a failure answers JSON
        def wrapped(request, *args, **kwargs):
            if request.method != "POST":
                return method_not_allowed("POST")
            if csrf_refused(request):
                return json_error(
                    "csrf_failed",
                    _("Your session has expired. Reload the page and try again."),
                    403,
                )
            try:
                data, typed = read_input(request)
            except BadInput as exc:
                return json_error("invalid", exc.message, 400, field=exc.field)
            except RequestDataTooBig:
                return json_error("too_large", _("The request is too large."), 413)
            form = form_class(data, typed=typed)
            if not form.is_valid():
                field, message = form.first_error()
                return json_error("invalid", message, 400, field=field)
            try:
                return view(request, form.cleaned_data, *args, **kwargs)
            except operations.OperationError as exc:
                return operation_error(exc)

        wrapped.__name__ = view.__name__
        wrapped.__doc__ = view.__doc__
        return wrapped

    return decorator


def offer_for(data: dict) -> catalog.SaleOffer | None:
    """The offer, when the image is for sale on that live page and selling is on."""
    offer = catalog.sale_offer(data["image_id"], data["page_id"])
    if offer is None or not offer.settings().enabled:
        return None
    return offer


# --- presenting ----------------------------------------------------------------------------


def quote_json(quote: pricing.Quote) -> dict[str, Any]:
    """One resolution as buyers see it: never the cost or the margin."""
    return {
        "factor": quote.factor,
        "label": quote.label,
        "description": quote.description,
        "output_width": quote.output_width,
        "output_height": quote.output_height,
        "price_cents": quote.price_cents,
        "price_display": pricing.format_price(quote.price_cents, quote.currency),
        "available": quote.available,
        "reason": quote.reason,
        "licence_prices": dict(quote.licence_prices),
        "licence_prices_display": {
            key: pricing.format_price(cents, quote.currency)
            for key, cents in quote.licence_prices.items()
        },
    }


def licence_json(offer: catalog.SaleOffer, licence: pricing.LicenceOption) -> dict[str, Any]:
    return {
        "key": licence.key,
        "name": str(licence.name),
        "summary": str(licence.summary),
        "version": licence.version,
        "terms_url": licence.terms_url,
        "terms_html": offer.settings().licence_terms_html(licence.key),
        "default": licence.key == offer.default_licence_key(),
    }


def prices_json(offer: catalog.SaleOffer) -> dict[str, Any]:
    quotes, currency = offer.quotes()
    site_settings = offer.settings()
    return {
        "image": {
            "id": offer.image.pk,
            "width": offer.image.width,
            "height": offer.image.height,
            "title": offer.image.title,
        },
        "currency": currency,
        "pricing": {
            key: {
                **quote_json(quote),
                # What the buyer gets: format, approximate size, print size at 300 dpi.
                "file": rendering.deliverable(
                    offer.image, quote.output_width, quote.output_height
                ).as_json(),
            }
            for key, quote in quotes.items()
        },
        "licences": [licence_json(offer, licence) for licence in offer.licences()],
        "withdrawal_waiver": {
            "required": bool(site_settings.require_withdrawal_waiver),
            "text": licensing.withdrawal_waiver_text(),
        },
    }


def job_status_json(job: PurchaseJob) -> dict[str, Any]:
    state = progress.order_progress(job)
    data: dict[str, Any] = {
        "job_id": str(job.pk),
        "status": job.status,
        "stage": state.stage,
        "progress": state.progress,
        "message": state.message,
        "licence": job.licence_key,
    }
    if state.downloadable:  # never once the link has expired: the route would answer 410
        data["download_url"] = links.order_download_url(job)
    if job.status == JobStatus.COMPLETED and job.token_expires_at:
        data["expires_at"] = progress.iso_utc(job.token_expires_at)
    return data


# --- endpoints ---------------------------------------------------------------------------


def prices_answer(image_id: int, page_id: int) -> tuple[int, dict[str, Any]]:
    """The price endpoint's status and body, as plain JSON data (so it can be cached)."""
    offer = offer_for({"image_id": image_id, "page_id": page_id})
    response = not_for_sale() if offer is None else not_offered(offer)
    if response is None:
        response = json_answer(prices_json(offer))
    return response.status_code, json.loads(response.content)


@rate_limit("prices")
@json_endpoint(OfferForm)
def calculate_all_prices(request, data):
    """All prices for an image on a page, from the stored image size (never the client's).

    Served from the versioned offer cache (``offer_cache``) when warm: no database work;
    the answer is in the request's language, so the language is part of the key."""
    image_id, page_id = data["image_id"], data["page_id"]
    status, body = offer_cache.remember(
        ("prices", image_id, page_id, get_language() or ""),
        lambda: prices_answer(image_id, page_id),
    )
    return json_answer(body, status=status)


@rate_limit("checkout")
@json_endpoint(CheckoutForm)
def create_checkout(request, data):
    """Create the order and the provider's checkout session; the browser goes to checkout_url."""
    offer = offer_for(data)
    if offer is None:
        return not_for_sale()
    refused = not_offered(offer)
    if refused is not None:
        return refused
    job = operations.start_checkout(
        offer=offer,
        resolution_key=data["resolution"],
        licence_key=data["licence"],
        email=data["email"],
        terms_accepted=data["terms_accepted"],
        withdrawal_waived=data["waive_withdrawal"],
        # The CSRF cookie's secret: the same browser asking again gets its order back.
        browser=request.META.get("CSRF_COOKIE") or "",
    )
    return json_answer(
        {
            "job_id": str(job.pk),
            "checkout_url": job.checkout_url,
            "amount_cents": job.amount_cents,
            "currency": job.currency,
            "status_url": links.order_url(job),
        }
    )


@rate_limit("click")
@json_endpoint(OfferForm)
def track_click(request, data):
    """Record a click on a purchase button (fire-and-forget from the modal); a known
    crawler's is answered alike but not counted. No database work when the offer is in
    the versioned cache and clicks are buffered."""
    offer = catalog.selling_offer_ref(data["image_id"], data["page_id"])
    if offer is None:
        return not_for_sale()
    operations.record_click(offer, user_agent=request.headers.get("User-Agent", ""))
    return json_answer({"tracked": True})


JOB_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@csrf_exempt  # GET only: a POST gets the JSON 405 below, not Django's HTML 403
@rate_limit("status")
def job_status(request, job_id: str):
    """Where an order is; 404 unless ``key`` is the order's access key."""
    if request.method not in ("GET", "HEAD"):
        return method_not_allowed("GET, HEAD")
    if not JOB_ID.fullmatch(job_id):  # the hyphenated lowercase UUID create-checkout gives
        return json_error("not_found", _("We could not find this order."), 404)
    job = PurchaseJob.objects.filter(pk=job_id).first()
    if job is None or not job.check_access_key(request.GET.get("key")):
        return json_error("not_found", _("We could not find this order."), 404)
    return json_answer(job_status_json(job))


@csrf_exempt  # GET only: other methods get the JSON 405 below, not Django's HTML 403
@rate_limit("prices")
@ensure_csrf_cookie
def csrf_token(request):
    """A CSRF token for the modal, never cached (pages themselves may be)."""
    if request.method not in ("GET", "HEAD"):
        return method_not_allowed("GET, HEAD")
    response = JsonResponse({"csrf_token": get_token(request)})
    add_never_cache_headers(response)
    patch_cache_control(response, no_store=True, private=True)
    return response
