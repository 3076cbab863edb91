"""Every email the package sends, built in one place from templates a site can override.

Templates live under ``wagtail_smi/emails/``: ``<name>_subject.txt``, ``<name>.txt`` and
``<name>.html``. The sender is ``WAGTAIL_SMI["FROM_EMAIL"]`` or ``DEFAULT_FROM_EMAIL``;
the support contact comes from the site's settings. Emails are rendered in the language
the customer bought in. Tokens and links appear only in the message, never in logs.

Every email, to a customer or to the admins, is recorded on its order: ``email_sent`` with
the email's name, or ``email_failed`` with what went wrong (the exception is raised again
for the caller).
"""

from __future__ import annotations

import logging
import zoneinfo
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template import Context, Template
from django.template.loader import get_template, render_to_string
from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.functional import lazy
from django.utils.translation import gettext_lazy as _

from . import links
from .conf import smi_settings
from .licensing import order_licence
from .models import EventCode, SmiSiteSettings
from .pricing import format_price, quote_all
from .upscalers import within_upscaler_limits
from .utils import absolute_url
from .workflow import record_event

logger = logging.getLogger(__name__)

# What the customer is told for each automatic refund reason (the ``reason`` of a failed
# order, see ``operations.processing``). Only
# these refunds (the order failed, not the customer's choice) suggest other resolutions.
REFUND_EXPLANATIONS = {
    "upscale_failed": _("The upscaling service could not process your image."),
    "result_invalid": _("The upscaled image we received did not pass our quality checks."),
    "result_unavailable": _("We could not retrieve the upscaled image from the upscaling service."),
    "not_delivered_in_time": _(
        "We could not deliver it within the time we promised, so we have refunded you rather "
        "than keep you waiting."
    ),
}


def _site_settings(job):
    if job.site_id:
        return SmiSiteSettings.for_site(job.site)
    return None


def _support_email(job) -> str:
    site_settings = _site_settings(job)
    return (site_settings.support_email if site_settings else "") or (
        smi_settings.FROM_EMAIL or settings.DEFAULT_FROM_EMAIL
    )


def _site_name(job) -> str:
    if job.site_id and job.site.site_name:
        return job.site.site_name
    return getattr(settings, "WAGTAIL_SITE_NAME", "") or absolute_url("/")


def _base_context(job) -> dict:
    return {
        "job": job,
        "site_name": _site_name(job),
        "support_email": _support_email(job),
        "order_url": links.order_url(job),
        "amount": format_price(job.amount_cents, job.currency),
        # The licence as bought (None for an order from before licences).
        "licence": order_licence(job),
    }


def render_plain_text(template_name: str, context: dict) -> str:
    """Render a template with autoescaping off: a subject is a header, not HTML, so a title
    such as "Fish & Chips" must not arrive as "Fish &amp; Chips". (Header injection is
    not possible: the caller joins the lines, and Django refuses line breaks in headers.)"""
    template = get_template(template_name)
    compiled = getattr(template, "template", None)
    if isinstance(compiled, Template):  # the Django template language: render unescaped
        return compiled.render(Context(context, autoescape=False))
    return template.render(context)


def _send(name: str, context: dict, recipients: list[str], *, language: str = "") -> bool:
    """Send one email and record on the order that it went out, or why it did not."""
    job = context["job"]
    recipients = [r for r in recipients if r]
    if not recipients:
        logger.warning("email %s for job %s not sent: no recipient", name, job.pk)
        _record(job, EventCode.EMAIL_FAILED, name, problem="no recipient")
        return False
    try:
        _deliver(name, context, recipients, language=language)
    except Exception as exc:
        _record(job, EventCode.EMAIL_FAILED, name, problem=f"{exc.__class__.__name__}: {exc}")
        raise
    logger.info("email %s sent for job %s", name, job.pk)
    _record(job, EventCode.EMAIL_SENT, name)
    return True


def _record(job, code: str, name: str, **data) -> None:
    try:
        record_event(job, code, {"email": name, **{k: v[:500] for k, v in data.items()}})
    except Exception:  # the log must never turn an email into a crash
        logger.exception("job %s: could not record the %s email", job.pk, name)


def _deliver(name: str, context: dict, recipients: list[str], *, language: str = "") -> None:
    with translation.override(language or settings.LANGUAGE_CODE):
        subject = render_plain_text(f"wagtail_smi/emails/{name}_subject.txt", context)
        subject = " ".join(subject.split())  # one line: a header
        text = render_to_string(f"wagtail_smi/emails/{name}.txt", context)
        html = render_to_string(f"wagtail_smi/emails/{name}.html", context)
    message = EmailMultiAlternatives(
        subject=subject,
        body=text,
        from_email=smi_settings.FROM_EMAIL or settings.DEFAULT_FROM_EMAIL,
        to=recipients,
        reply_to=[context["support_email"]] if context.get("support_email") else None,
    )
    message.attach_alternative(html, "text/html")
    message.send()


def _moment_text(moment) -> str:
    zone = zoneinfo.ZoneInfo(settings.TIME_ZONE or "UTC")
    local = timezone.localtime(moment, zone)
    return f"{date_format(local, 'DATETIME_FORMAT')} {local.tzname()}"


def format_expiry(moment) -> str:
    """A moment as customers read it, in emails and on pages alike: in the site's time zone
    (``TIME_ZONE``), in the language's ``DATETIME_FORMAT``, with the zone named ("Dec. 1,
    2026, 2 p.m. UTC", "1 décembre 2026 14:00 UTC"). Lazy, so it is written in the language
    the message is rendered in, not the one active when its context was built."""
    return lazy(_moment_text, str)(moment)


def send_download_ready(job, token: str) -> bool:
    context = _base_context(job) | {
        "download_url": links.download_url(token),
        "expires_at": format_expiry(job.token_expires_at) if job.token_expires_at else "",
        "download_limit": job.download_limit,
    }
    return _send("download_ready", context, [job.email], language=job.locale)


def send_refund_notice(job) -> bool:
    refunded = job.refund_amount_cents or job.amount_cents
    alternatives = _alternatives(job)
    context = _base_context(job) | {
        "explanation": REFUND_EXPLANATIONS.get(job.refund_reason, ""),
        "refund_amount": format_price(refunded, job.currency),
        "alternatives": alternatives,
        # The page the image was bought from (set by the checkout), to order another size.
        "shop_url": job.cancel_url if alternatives else "",
    }
    return _send("refund_notice", context, [job.email], language=job.locale)


def send_payment_failed(job) -> bool:
    context = _base_context(job) | {"retry_url": job.cancel_url or absolute_url("/")}
    return _send("payment_failed", context, [job.email], language=job.locale)


def auto_refund_at(job):
    """When a paid order not delivered by then is refunded on its own (None: never, or an
    admin has taken it in hand)."""
    hours = smi_settings.AUTO_REFUND_AFTER_HOURS
    if not hours or not job.paid_at or job.taken_in_hand_at:
        return None
    return job.paid_at + timedelta(hours=hours)


def _refund_promise(job) -> dict:
    moment = auto_refund_at(job)
    return {"refund_by": format_expiry(moment) if moment else ""}


def send_receipt(job) -> bool:
    """Proof of purchase at payment: what was bought, what was paid, what happens next."""
    context = (
        _base_context(job)
        | _refund_promise(job)
        | {
            "paid": format_price(job.paid_amount_cents, job.currency),
            "discount": format_price(job.discount_cents, job.currency)
            if job.discount_cents
            else "",
            "paid_at": format_expiry(job.paid_at) if job.paid_at else "",
        }
    )
    return _send("receipt", context, [job.email], language=job.locale)


# Why a paid order needs an admin, as the "taking longer" email explains it.
DELAY_DELIVERY = "delivery"
DELAY_REFUND = "refund"


def send_taking_longer(job, cause: str = DELAY_DELIVERY) -> bool:
    """A paid order went to an admin: tell the customer, and what happens next."""
    context = _base_context(job) | _refund_promise(job) | {"cause": cause}
    return _send("taking_longer", context, [job.email], language=job.locale)


def admin_recipients() -> list[str]:
    configured = smi_settings.ADMIN_EMAILS
    if configured:
        return list(configured)
    return [entry[1] if isinstance(entry, (list, tuple)) else entry for entry in settings.ADMINS]


def send_admin_alert(job, message: str) -> bool:
    context = _base_context(job) | {
        "message": message,
        "admin_url": links.admin_order_url(job),
    }
    return _send("admin_alert", context, admin_recipients())


def _alternatives(job) -> list:
    """Other resolutions of the same image the customer could buy instead (pricing quotes).

    Only when processing failed (a refund the customer did not ask for), and only those the
    site offers now and can produce for this image's size.
    """
    if job.refund_reason not in REFUND_EXPLANATIONS:
        return []
    site_settings = _site_settings(job)
    if not site_settings or not job.original_width or not job.original_height:
        return []
    rules = within_upscaler_limits(site_settings.pricing_rules())
    quotes = quote_all(job.original_width, job.original_height, rules)
    return [quote for quote in quotes.values() if quote.available and quote.key != job.resolution]
