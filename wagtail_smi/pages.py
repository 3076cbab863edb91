"""Server-rendered storefront pages: the purchase page (works without JavaScript), the order
status page (Stripe's success and cancel URL), the "email me a fresh link" forms and the
dummy provider's checkout page. Every one extends the site's base template
(``WAGTAIL_SMI["BASE_TEMPLATE"]``, see ``http.page``).

Thin edges like the API: they validate, call one operation, and render.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.http import Http404, HttpResponseBadRequest, HttpResponseRedirect
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods, require_POST

from . import catalog, licensing, links, operations, pricing, progress, rendering
from .api import job_status_json
from .conf import smi_settings
from .forms import EmailField
from .http import page, rate_limited_page
from .licensing import order_licence
from .models import JobStatus, PurchaseJob
from .models.states import UNPAID
from .operations.clicks import record_page_view
from .operations.delivery import request_fresh_link
from .operations.downloads import find_by_key, find_by_token
from .payments.dummy import DummyProvider
from .ratelimit import check_rate_limit
from .utils import client_ip, hash_ip, parse_id


def _too_many(request, scope: str):
    retry_after = check_rate_limit(request, scope)
    if retry_after is None:
        return None
    return rate_limited_page(request, retry_after)


def _email(value: str) -> str:
    """A typed email address, checked like the API checks it."""
    field = EmailField()
    field.name = "email"
    return field.clean(value)


# The purchase page ---------------------------------------------------------------------------


@csrf_protect
def purchase_page(request, image_id: int):
    """The purchase form without JavaScript: GET shows prices, POST starts the checkout.

    A GET counts as the button's click (JavaScript would have recorded it otherwise), once
    per client and image within half an hour, and never for a known crawler; the button
    links here with ``rel="nofollow"``, so well-behaved crawlers do not come at all.
    """
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
        record_page_view(
            offer,
            client=hash_ip(client_ip(request)),
            user_agent=request.headers.get("User-Agent", ""),
        )
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
    posted = request.POST if request.method == "POST" else {}
    selected = posted.get("resolution") or _default_resolution(quotes)
    licences = offer.licences()
    licence_key = posted.get("licence") or offer.default_licence_key()
    if not any(licence.key == licence_key for licence in licences):
        licence_key = offer.default_licence_key()
    site_settings = offer.settings()
    return page(
        request,
        "wagtail_smi/storefront/purchase.html",
        {
            "offer": offer,
            "image": offer.image,
            "rendition": offer.image.get_rendition("max-800x600"),
            "options": _purchase_options(offer, quotes, selected, licences, licence_key),
            "licences": _licence_choices(offer, licences, licence_key),
            "currency": currency,
            "email": email,
            "errors": errors,
            "terms_url": site_settings.terms_url,
            "waiver_required": site_settings.require_withdrawal_waiver,
            "waiver_text": licensing.withdrawal_waiver_text(),
            "waived": posted.get("waive_withdrawal") in {"1", "on", "true"},
            "page_url": offer.page.relative_url(offer.site) or "/",
        },
        status=status,
    )


def _purchase_options(offer, quotes, selected: str, licences, licence_key: str) -> list[dict]:
    """Each resolution as the dialog shows it: the price with the licence chosen (the
    default one until the buyer picks another), the price with every other licence (the
    page cannot update itself), and the file it delivers."""
    options = []
    for key, quote in quotes.items():
        price = quote.price_for(licence_key)
        options.append(
            {
                "quote": quote,
                "price_cents": quote.price_cents if price is None else price,
                "price_display": pricing.format_price(
                    quote.price_cents if price is None else price, quote.currency
                ),
                "licence_prices": [
                    {
                        "name": licence.name,
                        "price_display": pricing.format_price(
                            quote.licence_prices[licence.key], quote.currency
                        ),
                    }
                    for licence in licences
                    if licence.key in quote.licence_prices
                ]
                if len(licences) > 1
                else [],
                "file": rendering.deliverable(offer.image, quote.output_width, quote.output_height),
                "selected": key == selected,
            }
        )
    return options


def _licence_choices(offer, licences, chosen: str) -> list[dict]:
    site_settings = offer.settings()
    return [
        {
            "key": licence.key,
            "name": licence.name,
            "summary": licence.summary,
            "terms_url": licence.terms_url,
            # The site's own rich text, written in the admin.
            "terms_html": ""
            if licence.terms_url
            else site_settings.licence_terms_html(licence.key),
            "checked": licence.key == chosen,
        }
        for licence in licences
    ]


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
            licence_key=(request.POST.get("licence") or "").strip()[:32],
            email=_email(email),
            terms_accepted=request.POST.get("terms_accepted") in {"1", "on", "true"},
            withdrawal_waived=request.POST.get("waive_withdrawal") in {"1", "on", "true"},
        )
    except ValidationError as exc:
        return None, list(exc.messages), 400
    except operations.OperationError as exc:
        return None, [exc.message], 502 if isinstance(exc, operations.CheckoutUnavailable) else 400
    return job.checkout_url, [], 200


# The order page ------------------------------------------------------------------------------


def order_status(request, job_id):
    """An order's progress, polled live by its script and refreshed without one; 404
    without the order's key. ``?checkout=cancelled`` (the provider's cancel URL) says that
    nothing was charged while the order is unpaid."""
    limited = _too_many(request, "status")
    if limited:
        return limited
    job = PurchaseJob.objects.select_related("image").filter(pk=job_id).first()
    if job is None or not job.check_access_key(request.GET.get("key")):
        raise Http404(_("We could not find this order."))
    status_json = job_status_json(job)  # the page shows what job-status answers
    stage = status_json["stage"]
    facts = progress.STAGES[stage]
    cancelled = request.GET.get("checkout") == "cancelled" and job.status in UNPAID
    settled = job.state.final or cancelled
    return page(
        request,
        "wagtail_smi/storefront/order_status.html",
        {
            "job": job,
            "stage": stage,
            "progress": status_json["progress"],
            "show_progress": not facts.problem,
            "message": status_json["message"],
            "stages": _stage_list(facts),
            "stage_table": progress.stages_for_script(),
            "rendition": _rendition(job, "max-800x600"),
            "price_display": pricing.format_price(job.amount_cents, job.currency),
            # The licence as bought, whatever became of it since (None before licences).
            "licence": order_licence(job),
            "status_api_url": links.job_status_path(job),
            "download_url": status_json.get("download_url"),
            "expires_at": job.token_expires_at if status_json.get("download_url") else None,
            # order.js asks again when the link on offer expires.
            "expires_iso": status_json.get("expires_at", "")
            if status_json.get("download_url")
            else "",
            "is_final": settled,
            "is_problem": facts.problem,
            "support_email": progress.support_email(job),
            "retry_url": job.cancel_url,
            "cancelled": cancelled,
            "payment_url": job.checkout_url
            if cancelled and job.status == JobStatus.AWAITING_PAYMENT
            else "",
            "fresh_link_url": links.fresh_link_path(job)
            if stage == "expired" and progress.fresh_link_possible(job)
            else "",
            # Without JavaScript the page reloads itself until nothing more will happen.
            "refresh_seconds": 0 if settled else smi_settings.NO_SCRIPT_REFRESH_SECONDS,
        },
    )


def _stage_list(facts: progress.Stage) -> list[dict]:
    current = facts.step if facts.step is not None else -1
    return [
        {
            "key": key,
            "label": progress.STAGES[key].label,
            "done": 0 <= i < current or facts.delivered,
            "current": i == current,
        }
        for i, key in enumerate(progress.STEPS)
    ]


def _rendition(job, spec: str):
    if job.image is None:
        return None
    try:
        return job.image.get_rendition(spec)
    except Exception:  # a missing source file must not hide the order
        return None


# "Email me a fresh link" ----------------------------------------------------------------------


@csrf_protect
@require_POST
def fresh_link(request, token: str):
    """The form on an expired emailed link's page; the token names the order."""
    job = find_by_token(token)
    if job is None:
        raise Http404
    return _fresh_link(request, job, back_url="")


@csrf_protect
@require_POST
def order_fresh_link(request, job_id):
    """The form on the order page of an expired order; 404 without the order's key."""
    job = find_by_key(job_id, request.GET.get("key"))
    if job is None:
        raise Http404(_("We could not find this order."))
    return _fresh_link(request, job, back_url=links.order_path(job))


def _fresh_link(request, job: PurchaseJob, *, back_url: str):
    """Email a fresh link when the typed address is the order's. The answer is the same
    whether it was or not (and whether the order may have one), so the form tells nobody
    which address bought what."""
    limited = _too_many(request, "fresh_link")
    if limited:
        return limited
    typed = (request.POST.get("email") or "").strip()
    try:
        email = _email(typed)
    except ValidationError as exc:
        email, error = "", exc.messages[0]
    else:
        error = "" if email else _("Enter the email address you used for this order.")
    if error:
        context = {
            "error": error,
            "email": typed,
            "fresh_link_url": request.get_full_path(),
            "back_url": back_url,
        }
        return page(request, "wagtail_smi/storefront/fresh_link.html", context, status=400)
    request_fresh_link(job.pk, email)
    return page(
        request,
        "wagtail_smi/storefront/fresh_link_sent.html",
        {"email": email, "back_url": back_url, "support_email": progress.support_email(job)},
    )


# The dummy provider's checkout page --------------------------------------------------------

DUMMY_ACTIONS = ("pay", "decline", "cancel")


def _preview_url(job) -> str:
    rendition = _rendition(job, "max-480x320")
    return rendition.url if rendition is not None else ""


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
    )
    return page(request, "wagtail_smi/payments/dummy_checkout.html", context, status=status)


def _dummy_action(request, job, context: dict) -> tuple[HttpResponseRedirect | None, int]:
    """Carry out the posted action: a redirect, or the page's status (``context`` tells why)."""
    action = request.POST.get("action", "")
    email = request.POST.get("email", "").strip()
    if action not in DUMMY_ACTIONS:
        context.update(message=_("Choose Pay, Decline card or Cancel."), error_field="action")
        return None, 400
    if action == "cancel":
        # Where Stripe's cancel URL leads too: the order page, saying nothing was charged.
        return HttpResponseRedirect(links.checkout_cancelled_path(job)), 200
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
