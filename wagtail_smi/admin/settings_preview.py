"""Live price preview for the settings form: the real ``pricing.quote`` on unsaved values.

The settings page's script sends the form's current values here and shows the answer, so
the preview can never disagree with what checkout will charge.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.http import JsonResponse
from django.utils.translation import gettext
from django.views.decorators.http import require_GET

from ..models.settings_form import STRIPE_CURRENCIES
from ..pricing import DEFAULT_RESOLUTIONS, PricingRules, ResolutionOption, format_price, quote

SAMPLE_SIZES = ((1000, 1000), (2000, 1500))
DECIMAL_FIELDS = ("cost_per_credit", "credits_per_megapixel", "markup_percent")
INTEGER_FIELDS = ("minimum_price_cents", "max_output_megapixels")


class PreviewError(ValueError):
    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


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
    """``resolution=key:factor:enabled:label`` items, as the form currently has them."""
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


def user_can_edit_pricing(user) -> bool:
    return user.is_active and (
        user.is_superuser or user.has_perm("wagtail_smi.change_smisitesettings")
    )


@require_GET
def price_preview(request):
    if not user_can_edit_pricing(request.user):
        return JsonResponse(
            {"error": "forbidden", "message": gettext("You may not edit the pricing settings.")},
            status=403,
        )
    try:
        rules = rules_from_params(request.GET)
    except PreviewError as exc:
        return JsonResponse(
            {"error": "invalid", "field": exc.field, "message": str(exc)}, status=400
        )
    samples = []
    for width, height in SAMPLE_SIZES:
        quotes = [
            quote(width, height, option, rules) for option in rules.resolutions if option.enabled
        ]
        samples.append(
            {
                "width": width,
                "height": height,
                "quotes": [
                    {
                        "key": q.key,
                        "label": q.label,
                        "factor": q.factor,
                        "output_width": q.output_width,
                        "output_height": q.output_height,
                        "price_cents": q.price_cents,
                        "price_display": format_price(q.price_cents, rules.currency),
                        "available": q.available,
                        "reason": q.reason,
                    }
                    for q in quotes
                ],
            }
        )
    return JsonResponse({"currency": rules.currency, "samples": samples})
