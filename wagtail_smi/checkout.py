"""Starting a purchase: a server-side quote, the job, and the provider's checkout page.

Called by the JSON API and by the no-JavaScript purchase page, so both behave the same.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from . import pricing, workflow
from .catalog import SaleOffer
from .models import PurchaseJob
from .payments import get_payment_provider
from .upscalers import within_upscaler_limits
from .utils import absolute_url

logger = logging.getLogger(__name__)


class CheckoutError(Exception):
    """A purchase that cannot start; ``code`` and ``message`` go to the client as they are."""

    def __init__(self, code: str, message: str, status: int = 400, *, field: str = "", job=None):
        super().__init__(message)
        self.code, self.message, self.status, self.field, self.job = code, message, status, field, job


def quotes_for(offer: SaleOffer) -> tuple[dict[str, pricing.Quote], str]:
    """Every quote the offer allows, and the currency; sizes come from the stored image."""
    rules = within_upscaler_limits(offer.settings().pricing_rules())
    quotes = pricing.quote_all(
        offer.image.width, offer.image.height, rules, only=offer.resolutions or None
    )
    return quotes, rules.currency


def order_status_url(job: PurchaseJob) -> str:
    return absolute_url(
        reverse("wagtail_smi:order_status", args=[job.pk]) + "?key=" + job.access_key
    )


def page_url(offer: SaleOffer) -> str:
    return absolute_url(offer.page.relative_url(offer.site) or "/")


def start_checkout(
    *, offer: SaleOffer, resolution_key: str, email: str = "", terms_accepted: bool = False,
    request=None,
) -> PurchaseJob:
    """Create the job (``awaiting_payment``) and the provider's checkout session.

    Raises ``CheckoutError`` (400) for a resolution not on offer or unavailable, or for
    terms not accepted; (502) when the provider fails, leaving the job awaiting payment
    with ``last_error`` so the admin sees what happened.
    """
    settings = offer.settings()
    quotes, currency = quotes_for(offer)
    chosen = quotes.get(resolution_key)
    if chosen is None:
        raise CheckoutError(
            "resolution_unavailable", _("This resolution is not offered for this image."),
            field="resolution",
        )
    if not chosen.available:
        raise CheckoutError("resolution_unavailable", chosen.reason, field="resolution")
    if settings.terms_url and not terms_accepted:
        raise CheckoutError(
            "terms_required", _("Please accept the terms to continue."), field="terms_accepted"
        )

    image, page = offer.image, offer.page
    with transaction.atomic():
        job = PurchaseJob.objects.create(
            site=offer.site,
            image=image,
            image_ref=image.pk,
            image_title=image.title[:255],
            page=page,
            page_ref=page.pk,
            page_title=page.title[:255],
            resolution=chosen.key,
            factor=chosen.factor,
            original_width=image.width,
            original_height=image.height,
            output_width=chosen.output_width,
            output_height=chosen.output_height,
            amount_cents=chosen.price_cents,
            currency=currency,
            credits=chosen.credits,
            upscale_cost_cents=chosen.cost_cents,
            email=email or "",
            terms_accepted_at=timezone.now() if terms_accepted else None,
            locale=(translation.get_language() or "")[:16],
            cancel_url=page_url(offer),
        )
        workflow.record_note(job, "checkout started")

    provider = None
    try:
        provider = get_payment_provider()
        session = provider.create_checkout(
            job, success_url=order_status_url(job), cancel_url=job.cancel_url
        )
    except Exception as exc:  # any provider failure: keep the job, tell the buyer kindly
        logger.warning("job %s: checkout session failed: %s", job.pk, type(exc).__name__)
        job = workflow.update_job(
            job, last_error=f"checkout session failed: {type(exc).__name__}: {exc}"[:2000],
            payment_provider=(getattr(provider, "name", "") or "")[:32],
        )
        raise CheckoutError(
            "payment_provider_error",
            _("We could not start the payment just now. Please try again in a moment."),
            status=502,
            job=job,
        ) from exc
    return workflow.update_job(
        job,
        checkout_session_id=session.session_id,
        checkout_url=session.url,
        payment_provider=(getattr(provider, "name", "") or "")[:32],
    )
