"""Theme template tags: ``{% sellable_image image page %}`` and ``{% smi_assets %}``.

``{% load smi_tags %}`` then ``{% sellable_image page.hero_image page caption="..." %}``
renders the same figure and button as ``SellableImageBlock``. The modal's CSS and JS are
included automatically with the first button of a page; ``{% smi_assets %}`` includes
them explicitly (e.g. in ``<head>``), and only once per request either way.
``{{ moment|smi_datetime }}`` writes a date as customers read it everywhere (pages and
emails alike: ``emails.format_expiry``).
"""

from __future__ import annotations

from django import template
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.translation import gettext as _

from ..emails import format_expiry
from ..pricing import minor_unit_exponent
from ..rendering import claim_assets, image_context, sale_badge, storefront_settings

register = template.Library()


def modal_config(request) -> dict:
    """Endpoints, the site's terms URL and every string the modal shows, translated."""
    settings_row = storefront_settings(request)
    currency = getattr(settings_row, "currency", "usd").lower()
    return {
        "endpoints": {
            "csrf": reverse("wagtail_smi:csrf_token"),
            "prices": reverse("wagtail_smi:calculate_all_prices"),
            "checkout": reverse("wagtail_smi:create_checkout"),
            "click": reverse("wagtail_smi:track_click"),
        },
        "termsUrl": getattr(settings_row, "terms_url", "") or "",
        "defaultResolution": "4x",
        # Digits after the decimal point of the site's currency, for a price the server
        # sent in minor units only.
        "currencyDigits": {currency: minor_unit_exponent(currency)},
        "strings": {
            "title": _("Buy a high-resolution copy"),
            "intro": _("We upscale this image for you with AI and email you a download link."),
            "original": _("Original: {w} × {h} pixels"),
            "close": _("Close"),
            "loading": _("Loading prices…"),
            "choose": _("Choose a resolution"),
            "becomes": _("{w}×{h} becomes {ow}×{oh}"),
            "unavailable": _("Unavailable"),
            "chooseLicence": _("Choose a licence"),
            "licenceOne": _("Licence: {name}"),
            "licenceTerms": _("Read the terms of the {name} licence"),
            "notWithLicence": _("Not sold with the {name} licence"),
            "waiverRequired": _(
                "Please confirm that you want the image delivered immediately, waiving your "
                "right of withdrawal."
            ),
            "email": _("Email for the download link (optional)"),
            "emailHelp": _("Leave it empty and the payment page will ask for it."),
            "terms": _("I accept the terms of sale"),
            "termsLink": _("Read the terms"),
            "termsRequired": _("Please accept the terms to continue."),
            "submit": _("Continue to payment"),
            "submitting": _("Opening the payment page…"),
            "notForSale": _("This image is no longer for sale."),
            "rateLimited": _("Too many requests, try again in a minute."),
            "network": _("We could not reach the shop. Check your connection and try again."),
            "error": _("Something went wrong. Please try again."),
            "noneAvailable": _("No resolution is available for this image."),
        },
    }


def assets_html(request) -> str:
    return render_to_string("wagtail_smi/storefront/assets.html", {"config": modal_config(request)})


@register.simple_tag(takes_context=True)
def smi_assets(context):
    """The modal's stylesheet, configuration and script (once per request)."""
    request = context.get("request")
    if not claim_assets(request):
        return ""
    return assets_html(request)


@register.simple_tag(takes_context=True)
def sellable_image(context, image, page=None, caption="", for_sale=True):
    """An image with its purchase button, for theme templates outside StreamField."""
    page = page if page is not None else context.get("page")
    request = context.get("request")
    values = image_context(request, image, getattr(page, "pk", page), for_sale=for_sale)
    values["caption"] = caption
    return render_to_string("wagtail_smi/blocks/sellable_image.html", values, request=None)


@register.simple_tag(takes_context=True)
def smi_sale_badge(context, image):
    """A "For sale" badge for admin listings when the image is for sale (on sale site-wide,
    or offered by a sellable image block on a live page)."""
    return sale_badge(context.get("request"), image)


@register.filter
def smi_datetime(moment) -> str:
    """A date and time in the site's time zone and the language's format, zone named."""
    if not moment:
        return ""
    return str(format_expiry(moment))
