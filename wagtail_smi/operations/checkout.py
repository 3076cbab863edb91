"""Start a purchase: a server-side quote, the order, and the provider's checkout page.

The JSON API and the no-JavaScript purchase page both call ``start_checkout``, so both
behave the same; the price always comes from ``SaleOffer.quotes()``, never from the client.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from .. import links, workflow
from ..catalog import SaleOffer
from ..models import EventCode, PurchaseJob
from ..payments import get_payment_provider
from .errors import InvalidInput, ServiceUnavailable

logger = logging.getLogger(__name__)


class CheckoutUnavailable(ServiceUnavailable):
    """The payment provider could not open a checkout; the order is kept, awaiting payment,
    with the error on it for the admin."""

    code = "payment_provider_error"

    def __init__(self, message: str, *, job: PurchaseJob) -> None:
        super().__init__(message)
        self.job = job


def start_checkout(
    *,
    offer: SaleOffer,
    resolution_key: str,
    email: str = "",
    terms_accepted: bool = False,
) -> PurchaseJob:
    """Create the order (``awaiting_payment``) and the provider's checkout session.

    Raises ``InvalidInput`` for a resolution not on offer or unavailable, or for terms not
    accepted; ``CheckoutUnavailable`` when the provider fails, leaving the order awaiting
    payment with ``last_error`` so the admin sees what happened.
    """
    site_settings = offer.settings()
    quotes, currency = offer.quotes()
    chosen = quotes.get(resolution_key)
    if chosen is None:
        raise InvalidInput(
            _("This resolution is not offered for this image."),
            code="resolution_unavailable",
            field="resolution",
        )
    if not chosen.available:
        raise InvalidInput(chosen.reason, code="resolution_unavailable", field="resolution")
    if site_settings.terms_url and not terms_accepted:
        raise InvalidInput(
            _("Please accept the terms to continue."), code="terms_required", field="terms_accepted"
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
            cancel_url=links.page_url(page, offer.site),
        )
        workflow.record_event(
            job,
            EventCode.CHECKOUT_STARTED,
            {"resolution": chosen.key, "amount_cents": chosen.price_cents, "currency": currency},
        )

    provider = None
    try:
        provider = get_payment_provider()
        session = provider.create_checkout(
            job, success_url=links.order_url(job), cancel_url=job.cancel_url
        )
    except Exception as exc:  # any provider failure: keep the order, tell the buyer kindly
        logger.warning("job %s: checkout session failed: %s", job.pk, type(exc).__name__)
        job = workflow.update_job(
            job,
            last_error=f"checkout session failed: {type(exc).__name__}: {exc}"[:2000],
            payment_provider=(getattr(provider, "name", "") or "")[:32],
        )
        raise CheckoutUnavailable(
            _("We could not start the payment just now. Please try again in a moment."), job=job
        ) from exc
    return workflow.update_job(
        job,
        checkout_session_id=session.session_id,
        checkout_url=session.url,
        payment_provider=(getattr(provider, "name", "") or "")[:32],
    )
