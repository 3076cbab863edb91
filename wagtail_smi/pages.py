"""Server-rendered storefront pages: the purchase page (works without JavaScript), the order
status page (Stripe's success URL) and the dummy provider's checkout page.

Thin edges like the API: they validate, call one operation, and render.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.http import Http404, HttpResponseBadRequest, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods

from . import catalog, links, operations, pricing, progress
from .api import job_status_json
from .forms import EmailField
from .models import PurchaseJob
from .models.states import UNPAID
from .payments.dummy import DummyProvider
from .ratelimit import check_rate_limit
from .utils import absolute_url, parse_id


def _too_many(request, scope: str):
    retry_after = check_rate_limit(request, scope)
    if retry_after is None:
        return None
    response = TemplateResponse(
        request,
        "wagtail_smi/storefront/message.html",
        {
            "title": _("Too many requests"),
            "message": _("Too many requests, try again in a minute."),
        },
        status=429,
    )
    response["Retry-After"] = str(retry_after)
    return response


def _email(value: str) -> str:
    """A typed email address, checked like the API checks it."""
    field = EmailField()
    field.name = "email"
    return field.clean(value)


@csrf_protect
def purchase_page(request, image_id: int):
    """The purchase form without JavaScript: GET shows prices, POST starts the checkout."""
    limited = _too_many(request, "purchase_page")
    if limited:
        return limited
    page_id = parse_id(request.GET.get("page"))
    if page_id is None:
        return HttpResponseBadRequest(
            _(
                "This link is missing the page the image is on. Go back to that page and "
                "use its button again."
            )
        )
    offer = _offer_or_404(image_id, page_id)
    if request.method == "GET":
        operations.record_click(offer)  # the button's click, when JavaScript did not record it
    quotes, currency = offer.quotes()
    errors: list[str] = []
    email = ""
    status = 200
    if request.method == "POST":
        limited = _too_many(request, "checkout")
        if limited:
            return limited
        email = (request.POST.get("email") or "").strip()
        checkout_url, errors, status = _start_checkout(request, offer, email)
        if checkout_url is not None:
            return redirect(checkout_url)
    selected = request.POST.get("resolution") if request.method == "POST" else None
    if selected is None:
        selected = _default_resolution(quotes)
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
            "terms_url": offer.settings().terms_url,
            "page_url": offer.page.relative_url(offer.site) or "/",
        },
        status=status,
    )
    add_never_cache_headers(response)
    return response


def _offer_or_404(image_id, page_id: int) -> catalog.SaleOffer:
    if parse_id(image_id) is None:
        raise Http404(_("This image is no longer for sale."))
    offer = catalog.sale_offer(image_id, page_id)
    if offer is None or not offer.settings().enabled:
        raise Http404(_("This image is no longer for sale."))
    return offer


def _default_resolution(quotes) -> str:
    """4x when it can be had, else the first resolution that can."""
    if quotes.get("4x") and quotes["4x"].available:
        return "4x"
    return next((key for key, q in quotes.items() if q.available), "")


def _start_checkout(request, offer, email: str) -> tuple[str | None, list[str], int]:
    """The posted form's checkout: its URL, or the errors to show and the page's status."""
    try:
        job = operations.start_checkout(
            offer=offer,
            resolution_key=request.POST.get("resolution") or "",
            email=_email(email),
            terms_accepted=request.POST.get("terms_accepted") in {"1", "on", "true"},
        )
    except ValidationError as exc:
        return None, list(exc.messages), 400
    except operations.OperationError as exc:
        return None, [exc.message], 502 if isinstance(exc, operations.CheckoutUnavailable) else 400
    return job.checkout_url, [], 200


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
    stage = status_json["stage"]
    facts = progress.STAGES[stage]
    download_url = status_json.get("download_url")
    current = facts.step if facts.step is not None else -1
    stages = [
        {
            "key": key_,
            "label": progress.STAGES[key_].label,
            "done": 0 <= i < current or facts.delivered,
            "current": i == current,
        }
        for i, key_ in enumerate(progress.STEPS)
    ]
    rendition = None
    if job.image is not None:
        try:
            rendition = job.image.get_rendition("width-800")
        except Exception:  # a missing source file must not hide the order
            rendition = None
    response = TemplateResponse(
        request,
        "wagtail_smi/storefront/order_status.html",
        {
            "job": job,
            "stage": stage,
            "progress": status_json["progress"],
            "message": status_json["message"],
            "stages": stages,
            "stage_table": progress.stages_for_script(),
            "rendition": rendition,
            "price_display": pricing.format_price(job.amount_cents, job.currency),
            "status_api_url": links.job_status_path(job),
            "download_url": download_url,
            "expires_at": job.token_expires_at,
            # order.js asks again when the link on offer expires.
            "expires_iso": status_json.get("expires_at", "") if download_url else "",
            "is_final": job.state.final,
            "is_problem": facts.problem,
            "support_email": progress.support_email(job),
            "retry_url": job.cancel_url,
        },
    )
    add_never_cache_headers(response)
    response["Referrer-Policy"] = "no-referrer"  # the key is in the URL
    return response


# The dummy provider's checkout page --------------------------------------------------------

DUMMY_ACTIONS = ("pay", "decline", "cancel")


def _cancel_url(request, job) -> str:
    url = job.cancel_url or "/"
    public = absolute_url("/")
    if url_has_allowed_host_and_scheme(url, allowed_hosts={request.get_host()}) or url.startswith(
        public
    ):
        return url
    return "/"


def _preview_url(job) -> str:
    if job.image is None:
        return ""
    try:
        return job.image.get_rendition("max-480x320").url
    except Exception:  # the page still works without a preview
        return ""


@require_http_methods(["GET", "POST"])
def dummy_checkout(request, job_id):
    """Pay, Decline card, Cancel: each drives the operation a Stripe event would, so the
    demo exercises the real order flow. A decline is told on the page only: no provider
    has confirmed the address typed here, so nothing is emailed."""
    limited = _too_many(request, "checkout" if request.method == "POST" else "purchase_page")
    if limited:
        return limited
    try:
        DummyProvider()
    except ImproperlyConfigured:
        raise Http404 from None
    job = PurchaseJob.objects.filter(pk=job_id, payment_provider=DummyProvider.name).first()
    if job is None or not job.check_access_key(request.GET.get("key")):
        raise Http404
    if job.status not in UNPAID:
        return HttpResponseRedirect(links.order_path(job))

    context = {"job": job, "message": "", "error_field": "", "email": job.email}
    status = 200
    if request.method == "POST":
        answer, status = _dummy_action(request, job, context)
        if answer is not None:
            return answer
    context.update(
        image_url=_preview_url(job),
        price=pricing.format_price(job.amount_cents, job.currency),
        cancel_url=_cancel_url(request, job),
    )
    return render(request, "wagtail_smi/payments/dummy_checkout.html", context, status=status)


def _dummy_action(request, job, context: dict) -> tuple[HttpResponseRedirect | None, int]:
    """Carry out the posted action: a redirect, or the page's status (``context`` tells why)."""
    action = request.POST.get("action", "")
    email = request.POST.get("email", "").strip()
    if action not in DUMMY_ACTIONS:
        context.update(message=_("Choose Pay, Decline card or Cancel."), error_field="action")
        return None, 400
    if action == "cancel":
        return HttpResponseRedirect(_cancel_url(request, job)), 200
    if action == "pay":
        return _dummy_pay(job, context, email)
    operations.mark_payment_failed(
        job.pk,
        provider=DummyProvider.name,
        message=_("The card was declined."),
    )
    context["message"] = _("Your card was declined. No money was taken: you can try again.")
    context["declined"] = True
    return None, 200


def _dummy_pay(job, context: dict, email: str) -> tuple[HttpResponseRedirect | None, int]:
    if not job.email and not email:
        # Stripe always collects an email; without one the download link goes nowhere.
        context.update(
            message=_("Enter your email address: the download link is sent there."),
            error_field="email",
        )
        return None, 400
    if not job.email and not _valid_email(email):
        context.update(message=_("Enter a valid email address."), error_field="email", email=email)
        return None, 400
    # mark_paid backfills the email only on an order that has none.
    operations.mark_paid(
        job.pk,
        provider=DummyProvider.name,
        email=email,
        payment_intent_id=DummyProvider.payment_intent_id(job),
    )
    return HttpResponseRedirect(links.order_path(job)), 200


def _valid_email(value: str) -> bool:
    try:
        _email(value)
    except ValidationError:
        return False
    return bool(value)
