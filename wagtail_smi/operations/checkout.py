"""Start a purchase: a server-side quote, the order, and the provider's checkout page.

The JSON API and the no-JavaScript purchase page both call ``start_checkout``, so both
behave the same; the price always comes from ``SaleOffer.quotes()``, never from the client.

A double click, or the back button, must not make two orders: the same browser asking for
the same image, page, resolution and email within ``CHECKOUT_REUSE_MINUTES`` gets its open
order and checkout session back. The browser is known by a salted hash of a secret only it
holds (the API passes its CSRF cookie's secret), never by the email alone: an email address
is easy to guess, and the order's key travels with the answer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone, translation
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext as _

from .. import links, pricing, workflow
from ..catalog import SaleOffer
from ..conf import smi_settings
from ..models import EventCode, JobStatus, PurchaseJob, SaleListing
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


def browser_ref(secret: str) -> str:
    """A stand-in for a browser's own secret (its CSRF cookie): stable for that browser,
    useless to anyone who reads it."""
    if not secret:
        return ""
    return salted_hmac("wagtail_smi.checkout.browser", secret, algorithm="sha256").hexdigest()[:32]


def start_checkout(
    *,
    offer: SaleOffer,
    resolution_key: str,
    licence_key: str = "",
    email: str = "",
    terms_accepted: bool = False,
    withdrawal_waived: bool = False,
    browser: str = "",
) -> PurchaseJob:
    """Create the order (``awaiting_payment``) and the provider's checkout session, or give
    back the one this browser opened moments ago for the same thing.

    ``browser`` is a secret only the buyer's browser holds (the API passes its CSRF
    cookie's secret); without one, no order is reused.

    ``licence_key`` picks the licence (the site's default when empty); the order keeps a
    snapshot of it, and is charged the quote's price for that resolution and licence.

    Raises ``InvalidInput`` for an image that cannot be sold (``image_not_offered``), a
    resolution not on offer or unavailable, a licence the site does not sell with it
    (``unknown_licence``, ``licence_unavailable``), terms not accepted, or the withdrawal
    waiver not given where the site asks for it (``withdrawal_waiver_required``);
    ``CheckoutUnavailable`` when the provider fails, leaving the order awaiting payment
    with ``last_error`` so the admin sees what happened.
    """
    site_settings = offer.settings()
    refusal = offer.refusal()
    if refusal is not None:
        raise InvalidInput(refusal.message, code="image_not_offered", field="image_id")
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
    licence_key = licence_key or offer.default_licence_key()
    price_cents = _licence_price(offer, chosen, licence_key)
    if site_settings.terms_url and not terms_accepted:
        raise InvalidInput(
            _("Please accept the terms to continue."), code="terms_required", field="terms_accepted"
        )
    if site_settings.require_withdrawal_waiver and not withdrawal_waived:
        raise InvalidInput(
            _(
                "Please confirm that you want the image delivered immediately, waiving your "
                "right of withdrawal."
            ),
            code="withdrawal_waiver_required",
            field="waive_withdrawal",
        )
    purchase = Purchase(
        quote=chosen,
        currency=currency,
        price_cents=price_cents,
        licence=site_settings.licence_snapshot(licence_key),
        withdrawal_waived=withdrawal_waived and site_settings.require_withdrawal_waiver,
    )

    reference = browser_ref(browser)
    with transaction.atomic():
        job = _open_order(offer, purchase, email or "", reference)
        if job is None:
            job = _create_order(
                offer, purchase, email=email, terms_accepted=terms_accepted, reference=reference
            )
        else:
            workflow.record_event(
                job,
                EventCode.CHECKOUT_REUSED,
                {"resolution": chosen.key, "minutes": smi_settings.CHECKOUT_REUSE_MINUTES},
            )
            logger.info("job %s: the same browser asked again; its checkout is reused", job.pk)
    if job.checkout_url and job.checkout_session_id:
        return job
    return _open_checkout(job)


@dataclass(frozen=True)
class Purchase:
    """What the buyer is about to pay for: the quote, the licence's price and snapshot."""

    quote: pricing.Quote
    currency: str
    price_cents: int
    licence: dict[str, str]
    withdrawal_waived: bool = False


def _licence_price(offer: SaleOffer, chosen: pricing.Quote, licence_key: str) -> int:
    """The quote's price with this licence; ``InvalidInput`` naming ``licence`` when the
    site has no such licence or does not sell it with this resolution."""
    if not any(licence.key == licence_key for licence in offer.licences()):
        raise InvalidInput(
            _("This licence is not offered: choose one of the licences shown."),
            code="unknown_licence",
            field="licence",
        )
    price = chosen.price_for(licence_key)
    if price is None:
        raise InvalidInput(
            _("This licence is not offered with this resolution."),
            code="licence_unavailable",
            field="licence",
        )
    return price


def _create_order(
    offer: SaleOffer,
    purchase: Purchase,
    *,
    email: str,
    terms_accepted: bool,
    reference: str,
) -> PurchaseJob:
    image, page = offer.image, offer.page
    chosen, currency = purchase.quote, purchase.currency
    now = timezone.now()
    with transaction.atomic():  # the order and its first event, together
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
            amount_cents=purchase.price_cents,
            currency=currency,
            credits=chosen.credits,
            upscale_cost_cents=chosen.cost_cents,
            **purchase.licence,
            email=email or "",
            terms_accepted_at=now if terms_accepted else None,
            withdrawal_waived_at=now if purchase.withdrawal_waived else None,
            locale=(translation.get_language() or "")[:16],
            cancel_url=links.page_url(page, offer.site),
            browser_ref=reference,
        )
        workflow.record_event(
            job,
            EventCode.CHECKOUT_STARTED,
            {
                "resolution": chosen.key,
                "licence": purchase.licence["licence_key"],
                "amount_cents": purchase.price_cents,
                "currency": currency,
            },
        )
    return job


def _open_order(
    offer: SaleOffer, purchase: Purchase, email: str, reference: str
) -> PurchaseJob | None:
    """This browser's unpaid order for the same thing at the same price, started within
    ``CHECKOUT_REUSE_MINUTES`` and whose checkout can still be paid. Call it inside a
    transaction: the offer's listing row is locked, so two clicks at the same moment find
    one order rather than make two."""
    minutes = smi_settings.CHECKOUT_REUSE_MINUTES
    if not minutes or not reference:
        return None
    list(
        SaleListing.objects.select_for_update()
        .filter(image_id=offer.image.pk, page_id=offer.page.pk)
        .values_list("pk", flat=True)
    )
    return (
        PurchaseJob.objects.filter(
            status=JobStatus.AWAITING_PAYMENT,
            browser_ref=reference,
            image_ref=offer.image.pk,
            page_ref=offer.page.pk,
            resolution=purchase.quote.key,
            licence_key=purchase.licence["licence_key"],
            licence_version=purchase.licence["licence_version"],
            email=email,
            amount_cents=purchase.price_cents,
            currency=purchase.currency,
            withdrawal_waived_at__isnull=not purchase.withdrawal_waived,
            created_at__gte=timezone.now() - timedelta(minutes=minutes),
            # A payment on its way, or one that failed, has used the checkout up.
            payment_intent_id="",
            last_error="",
        )
        .order_by("-created_at")
        .first()
    )


def _open_checkout(job: PurchaseJob) -> PurchaseJob:
    """Ask the provider for the order's checkout session (the same one again for an order
    that has one: the request is idempotent per order)."""
    provider = None
    try:
        provider = get_payment_provider()
        session = provider.create_checkout(
            job, success_url=links.order_url(job), cancel_url=links.checkout_cancelled_url(job)
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
