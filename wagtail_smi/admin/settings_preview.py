"""Live price preview for the settings form: the real quotes on unsaved values.

The settings page's script posts the whole form here as it is being edited; the site's own
settings form reads it (amounts in major units, the strategy, resolutions with their fixed
prices, licences, collection prices) into an unsaved settings object. Two sample sizes are
priced from its rules with the configured upscaler's limits and costs
(``upscalers.for_upscaler``); an image of the library chosen in the panel
(``preview_image``) is priced by ``catalog.image_offer(...).quotes()``, the very function
the dialog and checkout use, so its own and its collection's prices apply. The preview
cannot disagree with what checkout will charge, and beside each price it shows what the
copy costs to make and the margin, per resolution and per licence.

``GET`` with query parameters (``markup_percent=150``, ``resolution=key:factor:enabled:label``
…) prices a few values without a form, for scripts.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.http import JsonResponse
from django.utils.translation import gettext
from django.views.decorators.http import require_http_methods
from wagtail.contrib.settings.views import get_setting_edit_handler

from ..catalog import image_offer
from ..models import SmiSiteSettings
from ..models.settings import images_visible_to
from ..models.settings_form import STRIPE_CURRENCIES
from ..pricing import (
    COST_BY_CREDITS,
    COST_PLUS,
    DEFAULT_RESOLUTIONS,
    FIXED,
    SOURCE_COLLECTION,
    SOURCE_IMAGE,
    PricingRules,
    ResolutionOption,
    format_price,
    quote_all,
    seller_figures,
)
from ..upscalers import for_upscaler, get_upscaler

SAMPLE_SIZES = ((1000, 1000), (2000, 1500))
DECIMAL_FIELDS = ("cost_per_credit", "credits_per_megapixel", "markup_percent")
INTEGER_FIELDS = ("minimum_price_cents", "max_output_megapixels")
# The settings form's fields that change a price: an error in one of them is the preview's.
PRICING_FIELDS = (
    "currency",
    "pricing_strategy",
    "cost_per_credit",
    "credits_per_megapixel",
    "markup_percent",
    "minimum_price_cents",
    "cost_per_megapixel",
    "max_output_megapixels",
    "resolutions",
    "licences",
    "collection_prices",
    "min_short_side",
)


class PreviewError(ValueError):
    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


# --- the settings form, unsaved ------------------------------------------------------------


def settings_from_form(data, user) -> SmiSiteSettings:
    """The settings the posted form would save (unsaved), read by the form itself."""
    form_class = get_setting_edit_handler(SmiSiteSettings).get_form_class()
    form = form_class(data, instance=SmiSiteSettings(), for_user=user)
    form.is_valid()  # fills the unsaved instance with every field that is valid
    for name in PRICING_FIELDS:
        if form.errors.get(name):
            raise PreviewError(name, _first_message(form.errors[name]))
    return form.instance


def preview_image(data, user):
    """The library image chosen in the panel (``preview_image``), or None for none. Only
    an image the user may choose or edit: others are "no such image"."""
    raw = (data.get("preview_image") or "").strip()
    if not raw:
        return None
    image = None
    if raw.isdigit() and len(raw) < 19:
        image = images_visible_to(user).filter(pk=int(raw)).select_related("collection").first()
    if image is None:
        raise PreviewError("preview_image", gettext("There is no such image."))
    return image


def _first_message(errors) -> str:
    for error in errors.as_data():
        for message in error.messages:
            return str(message)
    return gettext("Enter a valid value.")


# --- query parameters ----------------------------------------------------------------------


def _decimal(params, name, default):
    raw = params.get(name, "")
    if raw == "":
        return default
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise PreviewError(name, gettext("Enter a number.")) from None
    if not value.is_finite() or value < 0 or value > Decimal("1000000"):
        raise PreviewError(name, gettext("Enter a number between 0 and 1,000,000."))
    return value


def _resolutions(params) -> tuple[ResolutionOption, ...]:
    """``resolution=key:factor:enabled:label`` items."""
    raw = params.getlist("resolution")
    if not raw:
        return DEFAULT_RESOLUTIONS
    options = []
    for item in raw[:20]:
        parts = item.split(":", 3)
        if len(parts) < 3 or not parts[0]:
            raise PreviewError("resolution", gettext("Expected key:factor:enabled."))
        key, factor, enabled = parts[0][:16], parts[1], parts[2]
        try:
            factor_value = int(factor)
        except ValueError:
            raise PreviewError(
                "resolution", gettext("The factor must be a whole number.")
            ) from None
        if not 2 <= factor_value <= 16:
            raise PreviewError("resolution", gettext("The factor must be between 2 and 16."))
        label = parts[3][:64] if len(parts) > 3 and parts[3] else key
        options.append(
            ResolutionOption(key, factor_value, label, "", enabled in ("1", "true", "on"))
        )
    return tuple(options)


def rules_from_params(params) -> PricingRules:
    """Cost-plus rules from query parameters (amounts per credit in major units, the
    minimum price in minor units), with the default licences."""
    defaults = PricingRules()
    currency = (params.get("currency") or defaults.currency).strip().lower()
    if currency not in STRIPE_CURRENCIES:
        raise PreviewError("currency", gettext("Not a currency Stripe accepts."))
    values = {name: _decimal(params, name, getattr(defaults, name)) for name in DECIMAL_FIELDS}
    for name in INTEGER_FIELDS:
        value = _decimal(params, name, Decimal(getattr(defaults, name)))
        if value != value.to_integral_value():
            raise PreviewError(name, gettext("Enter a whole number."))
        values[name] = int(value)
    if values["max_output_megapixels"] < 1:
        raise PreviewError("max_output_megapixels", gettext("Must be at least 1."))
    return PricingRules(currency=currency, resolutions=_resolutions(params), **values)


# --- the answer ----------------------------------------------------------------------------


def preview_json(rules: PricingRules, *, site_settings=None, image=None) -> dict:
    """The chosen image's quotes (when one is), then each sample size's: price, upscaling
    cost and margin, for every licence, and where each price came from."""
    rules = for_upscaler(rules)
    currency = rules.currency
    licences = [
        {"key": licence.key, "name": str(licence.name), "default": licence is rules.default_licence}
        for licence in rules.licences
    ]
    names = {licence["key"]: licence["name"] for licence in licences}
    samples = []
    if image is not None:
        quotes, _currency = image_offer(image, None, site_settings=site_settings).quotes()
        samples.append(
            {
                "width": image.width,
                "height": image.height,
                "image": {
                    "id": image.pk,
                    "title": image.title,
                    "collection": getattr(image.collection, "name", ""),
                },
                "quotes": [_quote_json(q, currency, names) for q in quotes.values()],
            }
        )
    for width, height in SAMPLE_SIZES:
        quotes = quote_all(width, height, rules).values()
        samples.append(
            {
                "width": width,
                "height": height,
                "image": None,
                "quotes": [_quote_json(q, currency, names) for q in quotes],
            }
        )
    return {
        "currency": currency,
        "licences": licences,
        "cost_basis": rules.cost_basis,
        "cost_note": cost_note(rules),
        "samples": samples,
    }


def cost_note(rules: PricingRules) -> str:
    """How the upscaling cost beside each price is counted, in the seller's words."""
    upscaler = get_upscaler().name or gettext("the configured upscaler")
    if rules.cost_basis == COST_BY_CREDITS:
        return gettext(
            "Upscaling cost: the credits %(upscaler)s charges for the output "
            "(%(credits)s per megapixel) at %(cost)s per credit."
        ) % {
            "upscaler": upscaler,
            "credits": _plain(rules.credits_per_megapixel),
            "cost": f"{_plain(rules.cost_per_credit)} {rules.currency.upper()}",
        }
    return gettext(
        "Upscaling cost: %(upscaler)s runs on your own machines, at %(cost)s per output "
        "megapixel (set it above)."
    ) % {
        "upscaler": upscaler,
        "cost": f"{_plain(rules.cost_per_megapixel or 0)} {rules.currency.upper()}",
    }


def _plain(amount) -> str:
    """A Decimal without trailing zeros or exponent: ``0.0400`` → ``0.04``."""
    text = f"{Decimal(amount):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def price_source_label(source: str) -> str:
    """Where a base price came from, as the seller reads it."""
    labels = {
        SOURCE_IMAGE: gettext("The image's own price"),
        SOURCE_COLLECTION: gettext("Its collection's price"),
        FIXED: gettext("Fixed price"),
        COST_PLUS: gettext("Cost plus markup"),
    }
    return labels.get(source, source)


def _quote_json(q, currency: str, names: dict[str, str]) -> dict:
    figures = seller_figures(q)
    default_first = sorted(q.licence_prices, key=lambda key: key != q.default_licence)
    return {
        "key": q.key,
        "label": q.label,
        "factor": q.factor,
        "output_width": q.output_width,
        "output_height": q.output_height,
        "credits": q.credits,
        "price_cents": figures["price_cents"],
        "price_display": figures["price_display"],
        "cost_cents": figures["cost_cents"],
        "cost_display": figures["cost_display"],
        "margin_cents": figures["margin_cents"],
        "margin_display": figures["margin_display"],
        "price_source": figures["price_source"],
        "price_source_label": price_source_label(figures["price_source"]),
        "available": q.available,
        "reason": q.reason,
        "licences": [
            {
                "key": key,
                "name": names.get(key, key),
                "default": key == q.default_licence,
                "price_cents": figures["licence_prices"][key],
                "price_display": format_price(figures["licence_prices"][key], currency),
                "margin_cents": figures["licence_margins"][key],
                "margin_display": format_price(figures["licence_margins"][key], currency),
            }
            for key in default_first
        ],
    }


def user_can_edit_pricing(user) -> bool:
    return user.is_active and (
        user.is_superuser or user.has_perm("wagtail_smi.change_smisitesettings")
    )


@require_http_methods(["GET", "POST"])
def price_preview(request):
    if not user_can_edit_pricing(request.user):
        return JsonResponse(
            {"error": "forbidden", "message": gettext("You may not edit the pricing settings.")},
            status=403,
        )
    try:
        if request.method == "POST":
            site_settings = settings_from_form(request.POST, request.user)
            answer = preview_json(
                site_settings.pricing_rules(),
                site_settings=site_settings,
                image=preview_image(request.POST, request.user),
            )
        else:
            answer = preview_json(rules_from_params(request.GET))
    except PreviewError as exc:
        return JsonResponse(
            {"error": "invalid", "field": exc.field, "message": str(exc)}, status=400
        )
    return JsonResponse(answer)
