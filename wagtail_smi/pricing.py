"""Quotes from an image's size and a site's pricing rules (SPEC §3). Pure: no I/O, no models.

All arithmetic is Decimal; prices come out as integer minor units of the rules' currency.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

MEGAPIXEL = 1_000_000

# Currencies whose smallest unit is the whole unit (Stripe's list of zero-decimal currencies).
ZERO_DECIMAL_CURRENCIES = frozenset(
    "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split()
)
# Stripe's three-decimal currencies.
THREE_DECIMAL_CURRENCIES = frozenset("bhd jod kwd omr tnd".split())


def minor_unit_exponent(currency: str) -> int:
    code = currency.lower()
    if code in ZERO_DECIMAL_CURRENCIES:
        return 0
    if code in THREE_DECIMAL_CURRENCIES:
        return 3
    return 2


@dataclass(frozen=True)
class ResolutionOption:
    key: str
    factor: int
    label: str
    description: str = ""
    enabled: bool = True


DEFAULT_RESOLUTIONS: tuple[ResolutionOption, ...] = (
    ResolutionOption("4x", 4, _("Standard Quality"), _("Web and print ready")),
    ResolutionOption("8x", 8, _("Premium Quality"), _("Higher resolution for large prints")),
)


@dataclass(frozen=True)
class PricingRules:
    currency: str = "usd"
    cost_per_credit: Decimal = Decimal("0.04")
    credits_per_megapixel: Decimal = Decimal("0.25")
    markup_percent: Decimal = Decimal("200")
    minimum_price_cents: int = 50
    max_output_megapixels: int = 400
    resolutions: tuple[ResolutionOption, ...] = DEFAULT_RESOLUTIONS

    def option(self, key: str) -> ResolutionOption | None:
        for option in self.resolutions:
            if option.key == key:
                return option
        return None


@dataclass(frozen=True)
class Quote:
    key: str
    factor: int
    label: str
    description: str
    output_width: int
    output_height: int
    credits: int
    cost_cents: int
    price_cents: int
    currency: str
    available: bool
    reason: str

    @property
    def output_megapixels(self) -> Decimal:
        return Decimal(self.output_width * self.output_height) / MEGAPIXEL


def _to_minor_units(amount: Decimal, currency: str) -> int:
    scale = Decimal(10) ** minor_unit_exponent(currency)
    return int((amount * scale).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def credits_for(output_width: int, output_height: int, rules: PricingRules) -> int:
    pixels = Decimal(output_width) * Decimal(output_height)
    return math.ceil(pixels / MEGAPIXEL * rules.credits_per_megapixel)


def quote(width: int, height: int, option: ResolutionOption, rules: PricingRules) -> Quote:
    if width <= 0 or height <= 0:
        raise ValueError("image size must be positive")
    out_w, out_h = width * option.factor, height * option.factor
    credits = credits_for(out_w, out_h, rules)
    cost = credits * rules.cost_per_credit
    price = cost * (1 + rules.markup_percent / 100)
    price_cents = max(_to_minor_units(price, rules.currency), rules.minimum_price_cents)
    available, reason = True, ""
    if not option.enabled:
        available, reason = False, gettext("This resolution is not offered.")
    elif out_w * out_h > rules.max_output_megapixels * MEGAPIXEL:
        available = False
        reason = gettext(
            "The result would be %(mp)s megapixels, more than the %(max)s we can produce."
        ) % {"mp": _format_mp(out_w * out_h), "max": rules.max_output_megapixels}
    return Quote(
        key=option.key,
        factor=option.factor,
        label=str(option.label),
        description=str(option.description),
        output_width=out_w,
        output_height=out_h,
        credits=credits,
        cost_cents=_to_minor_units(cost, rules.currency),
        price_cents=price_cents,
        currency=rules.currency,
        available=available,
        reason=reason,
    )


def quote_all(
    width: int, height: int, rules: PricingRules, only: Iterable[str] | None = None
) -> dict[str, Quote]:
    """Quotes for every offered resolution, in the rules' order.

    ``only`` restricts the offer (a block's choice): other keys are left out entirely.
    Disabled resolutions are left out too; unavailable ones stay, with their reason.
    """
    allowed = set(only) if only else None
    return {
        option.key: quote(width, height, option, rules)
        for option in rules.resolutions
        if option.enabled and (allowed is None or option.key in allowed)
    }


def _format_mp(pixels: int) -> str:
    return f"{Decimal(pixels) / MEGAPIXEL:.1f}"


CURRENCY_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "cad": "CA$", "aud": "A$"}


def format_price(amount_cents: int, currency: str) -> str:
    """A display string such as ``$5.76`` or ``12.00 CHF`` (no locale machinery needed)."""
    exponent = minor_unit_exponent(currency)
    amount = Decimal(abs(amount_cents)) / (Decimal(10) ** exponent)
    sign = "\u2212" if amount_cents < 0 else ""  # a real minus sign: −$0.40
    number = f"{amount:,.{exponent}f}"
    symbol = CURRENCY_SYMBOLS.get(currency.lower())
    if symbol:
        return f"{sign}{symbol}{number}"
    return f"{sign}{number} {currency.upper()}"
