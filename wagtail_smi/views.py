"""Server-rendered storefront pages: the purchase page (works without JavaScript) and the
order status page (Stripe's success URL).

Thin edges like the API: they validate, call ``catalog``/``checkout``, and render.
"""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.csrf import csrf_protect

from . import catalog, pricing
from .api import (
    BadInput,
    get_email,
    job_status_json,
    record_click,
    support_email,
)
from .checkout import CheckoutError, quotes_for, start_checkout
from .conf import smi_settings
from .models import JobStatus, PurchaseJob
from .ratelimit import check_rate_limit
from .utils import parse_id

# The stages a buyer sees, in order (``api.job_stage`` says which one a job is at). An
# expired order was delivered: every stage is done, and the message explains the rest.
STAGES = (
    ("paid", gettext_lazy("Paid")),
    ("upscaling", gettext_lazy("Upscaling")),
    ("delivering", gettext_lazy("Delivering")),
    ("ready", gettext_lazy("Ready")),
)
STAGE_KEYS = [key for key, _label in STAGES]
DELIVERED_STAGES = {"ready", "expired"}
# Stages shown as a notice; all but "expired" (whose message names the contact) also get
# the support paragraph.
PROBLEM_STAGES = {"failed", "refunded", "needs_attention", "abandoned", "expired"}


def _too_many(request, scope: str):
    retry_after = check_rate_limit(request, scope)
    if retry_after is None:
        return None
    response = TemplateResponse(
        request, "wagtail_smi/storefront/message.html",
        {"title": _("Too many requests"), "message": _("Too many requests, try again in a minute.")},
        status=429,
    )
    response["Retry-After"] = str(retry_after)
    return response


@csrf_protect
def purchase_page(request, image_id: int):
    """The purchase form without JavaScript: GET shows prices, POST starts the checkout."""
    limited = _too_many(request, "purchase_page")
    if limited:
        return limited
    page_id = parse_id(request.GET.get("page"))
    if page_id is None:
        return HttpResponseBadRequest(
            _("This link is missing the page the image is on. Go back to that page and "
              "use its button again.")
        )
    if parse_id(image_id) is None:
        raise Http404(_("This image is no longer for sale."))
    offer = catalog.sale_offer(image_id, page_id)
    if offer is None:
        raise Http404(_("This image is no longer for sale."))
    site_settings = offer.settings()
    if not site_settings.enabled:
        raise Http404(_("This image is no longer for sale."))
    if request.method == "GET":
        record_click(offer)  # the button's click, when JavaScript did not record it
    quotes, currency = quotes_for(offer)
    selected = request.POST.get("resolution") if request.method == "POST" else None
    if selected is None:
        selected = "4x" if quotes.get("4x") and quotes["4x"].available else next(
            (key for key, q in quotes.items() if q.available), ""
        )
    errors: list[str] = []
    email = ""
    status = 200
    if request.method == "POST":
        limited = _too_many(request, "checkout")
        if limited:
            return limited
        email = (request.POST.get("email") or "").strip()
        try:
            email = get_email({"email": email})
            job = start_checkout(
                offer=offer,
                resolution_key=request.POST.get("resolution") or "",
                email=email,
                terms_accepted=request.POST.get("terms_accepted") in {"1", "on", "true"},
                request=request,
            )
        except BadInput as exc:
            errors.append(exc.message)
            status = 400
        except CheckoutError as exc:
            errors.append(exc.message)
            status = exc.status
        else:
            return redirect(job.checkout_url)
    rendition = offer.image.get_rendition("width-800")
    options = [
        {
            "quote": quote,
            "price_display": pricing.format_price(quote.price_cents, quote.currency),
            "selected": key == selected,
        }
        for key, quote in quotes.items()
    ]
    response = TemplateResponse(
        request,
        "wagtail_smi/storefront/purchase.html",
        {
            "offer": offer,
            "image": offer.image,
            "rendition": rendition,
            "options": options,
            "currency": currency,
            "email": email,
            "errors": errors,
            "terms_url": site_settings.terms_url,
            "page_url": offer.page.relative_url(offer.site) or "/",
        },
        status=status,
    )
    add_never_cache_headers(response)
    return response


def order_status(request, job_id):
    """An order's progress, polled live; 404 without the order's key."""
    limited = _too_many(request, "status")
    if limited:
        return limited
    job = PurchaseJob.objects.select_related("image").filter(pk=job_id).first()
    key = request.GET.get("key")
    if job is None or not job.check_access_key(key):
        raise Http404(_("We could not find this order."))
    status_json = job_status_json(job)  # the page shows what job-status answers
    stage, progress, message = status_json["stage"], status_json["progress"], status_json["message"]
    download_url = status_json.get("download_url")
    current = STAGE_KEYS.index(stage) if stage in STAGE_KEYS else -1
    stages = [
        {
            "key": k,
            "label": label,
            "done": 0 <= i < current or stage in DELIVERED_STAGES,
            "current": i == current,
        }
        for i, (k, label) in enumerate(STAGES)
    ]
    rendition = None
    if job.image is not None:
        try:
            rendition = job.image.get_rendition("width-800")
        except Exception:  # a missing source file must not hide the order
            rendition = None
    mailbox_url = None
    if settings.DEBUG and smi_settings.DEMO_MAILBOX_DIR:
        try:
            mailbox_url = reverse("wagtail_smi:demo_mailbox")
        except NoReverseMatch:
            mailbox_url = None
    response = TemplateResponse(
        request,
        "wagtail_smi/storefront/order_status.html",
        {
            "job": job,
            "stage": stage,
            "progress": progress,
            "message": message,
            "stages": stages,
            "rendition": rendition,
            "price_display": pricing.format_price(job.amount_cents, job.currency),
            "status_api_url": reverse("wagtail_smi:job_status", args=[job.pk]) + "?key=" + key,
            "download_url": download_url,
            "expires_at": job.token_expires_at,
            # order.js asks again when the link on offer expires.
            "expires_iso": status_json.get("expires_at", "") if download_url else "",
            "is_final": job.status in {
                JobStatus.COMPLETED, JobStatus.REFUNDED, JobStatus.ABANDONED,
                JobStatus.NEEDS_ATTENTION,
            },
            "is_problem": stage in PROBLEM_STAGES,
            "support_email": support_email(job),
            "mailbox_url": mailbox_url,
            "retry_url": job.cancel_url,
        },
    )
    add_never_cache_headers(response)
    response["Referrer-Policy"] = "no-referrer"  # the key is in the URL
    return response

