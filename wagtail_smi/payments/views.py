"""The dummy provider's checkout page: Pay, Decline card, Cancel.

Each button drives the same function a Stripe event would (``mark_paid``,
``mark_payment_failed``), so the demo exercises the real order flow. A decline is told on
the page only: no provider has confirmed the address typed here, so nothing is emailed.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.validators import validate_email
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from ..models import JobStatus, PurchaseJob
from ..pricing import format_price
from ..ratelimit import check_rate_limit, rate_limited_response
from ..utils import absolute_url
from .actions import mark_paid, mark_payment_failed
from .dummy import DummyProvider

ACTIONS = ("pay", "decline", "cancel")


def _order_status_url(job) -> str:
    return reverse("wagtail_smi:order_status", args=[job.pk]) + f"?key={job.access_key}"


def _cancel_url(request, job) -> str:
    url = job.cancel_url or "/"
    public = absolute_url("/")
    if url_has_allowed_host_and_scheme(url, allowed_hosts={request.get_host()}) or url.startswith(public):
        return url
    return "/"


def _image_url(job) -> str:
    if job.image is None:
        return ""
    try:
        return job.image.get_rendition("max-480x320").url
    except Exception:  # the page still works without a preview
        return ""


@require_http_methods(["GET", "POST"])
def dummy_checkout(request, job_id):
    retry_after = check_rate_limit(request, "checkout" if request.method == "POST" else "purchase_page")
    if retry_after is not None:
        return rate_limited_response(retry_after)
    try:
        DummyProvider()
    except ImproperlyConfigured:
        raise Http404
    job = PurchaseJob.objects.filter(pk=job_id, payment_provider=DummyProvider.name).first()
    if job is None or not job.check_access_key(request.GET.get("key")):
        raise Http404
    if job.status not in (JobStatus.AWAITING_PAYMENT, JobStatus.ABANDONED):
        return HttpResponseRedirect(_order_status_url(job))

    context = {"job": job, "message": "", "error_field": "", "email": job.email}
    status = 200
    if request.method == "POST":
        action = request.POST.get("action", "")
        email = request.POST.get("email", "").strip()
        if action not in ACTIONS:
            context.update(message=_("Choose Pay, Decline card or Cancel."), error_field="action")
            status = 400
        elif action == "cancel":
            return HttpResponseRedirect(_cancel_url(request, job))
        elif action == "pay" and not job.email and not email:
            # Stripe always collects an email; without one the download link goes nowhere.
            context.update(
                message=_("Enter your email address: the download link is sent there."),
                error_field="email",
            )
            status = 400
        elif action == "pay" and not job.email and not _valid_email(email):
            context.update(message=_("Enter a valid email address."), error_field="email", email=email)
            status = 400
        elif action == "pay":
            # mark_paid backfills the email only on a job that has none.
            mark_paid(
                job.pk,
                email=email,
                payment_intent_id=DummyProvider.payment_intent_id(job),
                reason=_("Paid on the dummy checkout page"),
            )
            return HttpResponseRedirect(_order_status_url(job))
        else:
            # No email: the address on this page was typed into our own form, not confirmed
            # by a payment provider, and each click would mail it again. The page says it.
            mark_payment_failed(
                job.pk,
                reason=_("Card declined on the dummy checkout page"),
                message=_("The card was declined."),
            )
            context["message"] = _("Your card was declined. No money was taken: you can try again.")
            context["declined"] = True
    context.update(
        image_url=_image_url(job),
        price=format_price(job.amount_cents, job.currency),
        cancel_url=_cancel_url(request, job),
    )
    return render(request, "wagtail_smi/payments/dummy_checkout.html", context, status=status)


def _valid_email(value: str) -> bool:
    try:
        validate_email(value)
    except ValidationError:
        return False
    return True
