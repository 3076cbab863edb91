"""Public JSON endpoints (SPEC §4): prices, checkout, click tracking, job status, CSRF token.

Thin edges: parse and validate, call one domain function (``catalog``, ``checkout``,
``pricing``), answer. Errors are ``{"error": code, "message": text}``. POSTs are CSRF
protected (checked here, so a failure is a JSON 403 like every other error); ``csrf`` hands
the modal a token (never cached) so it also works on pages served from a full-page cache.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC
from typing import Any

from django.core.exceptions import RequestDataTooBig, ValidationError
from django.core.validators import validate_email
from django.http import JsonResponse
from django.middleware.csrf import CsrfViewMiddleware, get_token
from django.urls import reverse
from django.utils.cache import add_never_cache_headers, patch_cache_control
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.csrf import csrf_exempt, ensure_csrf_cookie

from . import catalog, delivery, pricing
from .checkout import CheckoutError, order_status_url, quotes_for, start_checkout
from .models import ImageClick, JobStatus, PurchaseJob
from .ratelimit import rate_limit
from .utils import absolute_url, parse_id

logger = logging.getLogger(__name__)


class BadInput(Exception):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field, self.message = field, message


def error(code: str, message: str, status: int, **extra: Any) -> JsonResponse:
    response = JsonResponse({"error": code, "message": message, **extra}, status=status)
    add_never_cache_headers(response)
    return response


def answer(data: dict, status: int = 200) -> JsonResponse:
    response = JsonResponse(data, status=status)
    add_never_cache_headers(response)
    return response


def not_for_sale() -> JsonResponse:
    return error("not_found", _("This image is no longer for sale."), 404)


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
    except UnicodeDecodeError:
        raise invalid
    if json_too_deep(body):
        raise BadInput("body", _("The request body is nested too deeply."))
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise invalid


def read_input(request) -> tuple[dict[str, Any], bool]:
    """The request's fields and whether they came as JSON (typed) or form-encoded (strings)."""
    content_type = (request.content_type or "").lower()
    if content_type == "application/json":
        data = parse_json_body(request.body or b"{}")
        if not isinstance(data, dict):
            raise BadInput("body", _("The request body must be a JSON object."))
        return data, True
    return {key: request.POST.get(key) for key in request.POST}, False


def get_int(data: dict, name: str, *, typed: bool, required: bool = True) -> int | None:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise BadInput(name, _("%(field)s is required.") % {"field": name})
        return None
    if typed and isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif not typed and isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        number = int(value.strip())
    else:
        raise BadInput(name, _("%(field)s must be a whole number.") % {"field": name})
    if parse_id(number) is None:
        raise BadInput(name, _("%(field)s is out of range.") % {"field": name})
    return number


def get_str(data: dict, name: str, *, required: bool = False, max_length: int = 255) -> str:
    value = data.get(name)
    if value is None:
        if required:
            raise BadInput(name, _("%(field)s is required.") % {"field": name})
        return ""
    if not isinstance(value, str):
        raise BadInput(name, _("%(field)s must be text.") % {"field": name})
    value = value.strip()
    if required and not value:
        raise BadInput(name, _("%(field)s is required.") % {"field": name})
    if len(value) > max_length:
        raise BadInput(name, _("%(field)s is too long.") % {"field": name})
    return value


TRUE_WORDS, FALSE_WORDS = {"1", "true", "on", "yes"}, {"", "0", "false", "off", "no"}


def get_bool(data: dict, name: str, *, typed: bool) -> bool:
    value = data.get(name)
    if value is None:
        return False
    if typed and isinstance(value, bool):
        return value
    if not typed and isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    raise BadInput(name, _("%(field)s must be true or false.") % {"field": name})


def get_email(data: dict, name: str = "email") -> str:
    email = get_str(data, name, max_length=254)
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise BadInput(name, _("Please give a valid email address, or leave it empty."))
    return email


class _JsonCsrfCheck(CsrfViewMiddleware):
    """Django's own CSRF check, answering in the API's error shape."""

    def _reject(self, request, reason):
        logger.info("CSRF check failed for %s: %s", request.path, reason)
        return error(
            "csrf_failed",
            _("Your session has expired. Reload the page and try again."),
            403,
        )


_csrf_check = _JsonCsrfCheck(lambda request: None)


def json_endpoint(view):
    """POST only, CSRF-checked; turns ``BadInput`` into a 400 that names the field."""

    @csrf_exempt  # checked below, so that a failure answers JSON
    def wrapped(request, *args, **kwargs):
        if request.method != "POST":
            response = error("method_not_allowed", _("Use POST."), 405)
            response["Allow"] = "POST"
            return response
        try:
            rejected = _csrf_check.process_view(request, None, (), {})
            if rejected is not None:
                return rejected
            data, typed = read_input(request)
            return view(request, data, typed, *args, **kwargs)
        except BadInput as exc:
            return error("invalid", exc.message, 400, field=exc.field)
        except RequestDataTooBig:
            return error("too_large", _("The request is too large."), 413)

    wrapped.__name__ = view.__name__
    wrapped.__doc__ = view.__doc__
    return wrapped


def offer_from(data: dict, typed: bool) -> catalog.SaleOffer | None:
    image_id = get_int(data, "image_id", typed=typed)
    page_id = get_int(data, "page_id", typed=typed)
    return catalog.sale_offer(image_id, page_id)


# --- presenting ----------------------------------------------------------------------------


def quote_json(quote: pricing.Quote) -> dict[str, Any]:
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
    }


def prices_json(offer: catalog.SaleOffer) -> dict[str, Any]:
    quotes, currency = quotes_for(offer)
    return {
        "image": {"id": offer.image.pk, "width": offer.image.width, "height": offer.image.height},
        "currency": currency,
        "pricing": {key: quote_json(quote) for key, quote in quotes.items()},
    }


# What a ready order says about the download email (``delivery.ready_email_state``):
# only what actually happened.
READY_MESSAGES = {
    "": gettext_lazy("Your image is ready to download."),
    "sent": gettext_lazy(
        "Your image is ready to download here; we have also emailed the link to you."
    ),
    "pending": gettext_lazy(
        "Your image is ready to download here. The email with the download link will follow."
    ),
    "failed": gettext_lazy(
        "Your image is ready to download here. We could not send you the email with the "
        "download link, so please download it from this page."
    ),
}


def support_email(job: PurchaseJob) -> str:
    """The site's support address, or "" when it has none."""
    if job.site_id is None:
        return ""
    from .models import SmiSiteSettings

    row = SmiSiteSettings.objects.filter(site_id=job.site_id).only("support_email").first()
    return row.support_email if row else ""


def expired_message(job: PurchaseJob) -> str:
    """A delivered order whose link has run out, and whom to ask for a new one."""
    contact = support_email(job)
    if contact:
        return _(
            "Your download link has expired, so the file can no longer be downloaded. To get "
            "a new link, write to %(email)s and quote your order number %(order)s."
        ) % {"email": contact, "order": job.short_id}
    return _(
        "Your download link has expired, so the file can no longer be downloaded. To get a "
        "new link, contact the shop and quote your order number %(order)s."
    ) % {"order": job.short_id}


# Stage shown to buyers, and its progress, for each job state.
def job_stage(job: PurchaseJob) -> tuple[str, int, str]:
    status = job.status
    if status == JobStatus.AWAITING_PAYMENT and job.payment_intent_id:
        # A bank transfer or debit started at checkout: it can take a few days to clear.
        return "awaiting_payment", 10, _(
            "Your payment is on its way; some payment methods take a few days. We start "
            "upscaling as soon as it arrives. No need to pay again."
        )
    if status == JobStatus.AWAITING_PAYMENT and job.last_error:
        return "awaiting_payment", 0, _(
            "Your payment did not go through, and you have not been charged. You can try "
            "again from the image."
        )
    if status == JobStatus.AWAITING_PAYMENT:
        return "awaiting_payment", 0, _("Waiting for your payment to be confirmed.")
    if status == JobStatus.ABANDONED:
        return "abandoned", 0, _("This checkout was not completed. You can start again from the image.")
    if status == JobStatus.PAID:
        return "paid", 20, _("Payment received. Your image is queued for upscaling.")
    if status == JobStatus.PROCESSING:
        if job.result_path:
            return "delivering", 90, _("Almost there: preparing your download.")
        progress = 60 if job.upscaler_status == "IN_PROGRESS" else 40
        return "upscaling", progress, _("Your image is being upscaled. This usually takes a minute or two.")
    if status == JobStatus.COMPLETED and (job.access_revoked_at or delivery.link_expired(job)):
        return "expired", 100, expired_message(job)
    if status == JobStatus.COMPLETED:
        return "ready", 100, str(READY_MESSAGES[delivery.ready_email_state(job)])
    if status == JobStatus.REFUNDED:
        return "refunded", 100, _(
            "This order was refunded to your original payment method. It usually appears "
            "within 5–10 business days, depending on your bank."
        )
    if status == JobStatus.FAILED:
        return "failed", 100, _(
            "Upscaling failed. We are refunding your payment automatically."
        )
    return "needs_attention", 100, _(
        "Something needs a closer look. Our team has been told and will get back to you."
    )


def job_status_json(job: PurchaseJob) -> dict[str, Any]:
    stage, progress, message = job_stage(job)
    data: dict[str, Any] = {
        "job_id": str(job.pk),
        "status": job.status,
        "stage": stage,
        "progress": progress,
        "message": message,
    }
    if stage == "ready":  # never once the link has expired: the route would answer 410
        data["download_url"] = absolute_url(
            reverse("wagtail_smi:order_download", args=[job.pk]) + "?key=" + job.access_key
        )
    if job.status == JobStatus.COMPLETED and job.token_expires_at:
        data["expires_at"] = iso_utc(job.token_expires_at)
    return data


def iso_utc(moment) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- endpoints ---------------------------------------------------------------------------


@rate_limit("prices")
@json_endpoint
def calculate_all_prices(request, data, typed):
    """All prices for an image on a page, from the stored image size (never the client's)."""
    offer = offer_from(data, typed)
    if offer is None or not offer.settings().enabled:
        return not_for_sale()
    return answer(prices_json(offer))


@rate_limit("checkout")
@json_endpoint
def create_checkout(request, data, typed):
    """Create the job and the provider's checkout session; the browser goes to checkout_url."""
    offer = offer_from(data, typed)
    resolution = get_str(data, "resolution", required=True, max_length=16)
    email = get_email(data)
    terms_accepted = get_bool(data, "terms_accepted", typed=typed)
    if offer is None or not offer.settings().enabled:
        return not_for_sale()
    try:
        job = start_checkout(
            offer=offer, resolution_key=resolution, email=email,
            terms_accepted=terms_accepted, request=request,
        )
    except CheckoutError as exc:
        extra = {"field": exc.field} if exc.field else {}
        return error(exc.code, exc.message, exc.status, **extra)
    return answer(
        {
            "job_id": str(job.pk),
            "checkout_url": job.checkout_url,
            "amount_cents": job.amount_cents,
            "currency": job.currency,
            "status_url": order_status_url(job),
        }
    )


@rate_limit("click")
@json_endpoint
def track_click(request, data, typed):
    """Record a click on a purchase button (fire-and-forget from the modal)."""
    offer = offer_from(data, typed)
    if offer is None or not offer.settings().enabled:
        return not_for_sale()
    record_click(offer)
    return answer({"tracked": True})


def record_click(offer: catalog.SaleOffer) -> None:
    ImageClick.objects.create(
        image_ref=offer.image.pk, page_ref=offer.page.pk, site_ref=offer.site.pk
    )


JOB_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@csrf_exempt  # GET only: a POST gets the JSON 405 below, not Django's HTML 403
@rate_limit("status")
def job_status(request, job_id: str):
    """Where an order is; 404 unless ``key`` is the order's access key."""
    if request.method not in ("GET", "HEAD"):
        response = error("method_not_allowed", _("Use GET."), 405)
        response["Allow"] = "GET, HEAD"
        return response
    if not JOB_ID.fullmatch(job_id):  # the hyphenated lowercase UUID create-checkout gives
        return error("not_found", _("We could not find this order."), 404)
    job = PurchaseJob.objects.filter(pk=job_id).first()
    if job is None or not job.check_access_key(request.GET.get("key")):
        return error("not_found", _("We could not find this order."), 404)
    return answer(job_status_json(job))


@rate_limit("prices")
@ensure_csrf_cookie
def csrf_token(request):
    """A CSRF token for the modal, never cached (pages themselves may be)."""
    response = JsonResponse({"csrf_token": get_token(request)})
    add_never_cache_headers(response)
    patch_cache_control(response, no_store=True, private=True)
    return response
