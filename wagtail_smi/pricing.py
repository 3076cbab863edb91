"""Quotes from an image's size and a site's price list (SPEC §3). Pure: no I/O, no models.

A price is built in three steps, the same for the dialog, the checkout, the emails and the
admin's preview:

1. the **base price** of a resolution: an override for the image, else one for its
   collection, else the site's **strategy** (``cost_plus``, the seed's formula and the
   default, or ``fixed``, a price set on each resolution);
2. the **licence** changes it (a multiplier, then a fixed add-on); the default licence's
   price is the quote's ``price_cents``;
3. the **upscaling cost** of the copy (the upscaler's credits, or its cost per output
   megapixel) is quoted beside it, so the seller sees the margin.

All arithmetic is Decimal; amounts come out as integer minor units of the rules' currency.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from types import MappingProxyType

from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

MEGAPIXEL = 1_000_000

# Currencies whose smallest unit is the whole unit (Stripe's list of zero-decimal currencies).
ZERO_DECIMAL_CURRENCIES = frozenset(
    "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split()
)
# Stripe's three-decimal currencies.
THREE_DECIMAL_CURRENCIES = frozenset("bhd jod kwd omr tnd".split())


def minor_unit_exponent(currency: str | int) -> int:
    """How many decimals the currency's minor unit has (2 for usd, 0 for jpy). An int is
    taken as that number already (money blocks know decimals, not the currency)."""
    if isinstance(currency, int):
        return currency
    code = currency.lower()
    if code in ZERO_DECIMAL_CURRENCIES:
        return 0
    if code in THREE_DECIMAL_CURRENCIES:
        return 3
    return 2


def to_minor_units(amount: Decimal, currency: str | int) -> int:
    """A major-unit amount (what an admin types: ``29.00``) as integer minor units,
    rounded half up: ``2900`` cents, ``29`` yen."""
    scale = Decimal(10) ** minor_unit_exponent(currency)
    return int((Decimal(amount) * scale).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def to_major_units(amount_cents: int, currency: str | int) -> Decimal:
    """Integer minor units as the major-unit Decimal an admin reads (``2900`` → ``29.00``)."""
    exponent = minor_unit_exponent(currency)
    return (Decimal(int(amount_cents)) / (Decimal(10) ** exponent)).quantize(
        Decimal(1).scaleb(-exponent)
    )


def parse_major_units(text: str, currency: str | int) -> int:
    """Text typed in major units (``"29"``, ``"29.5"``) as minor units; ``ValueError`` for
    anything that is not a plain, non-negative amount with at most the currency's decimals."""
    try:
        amount = Decimal(str(text).strip())
    except (InvalidOperation, ValueError):
        raise ValueError("not a number") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError("not a non-negative amount")
    if amount != amount.quantize(Decimal(1).scaleb(-minor_unit_exponent(currency)), ROUND_HALF_UP):
        raise ValueError("too many decimals for the currency")
    return to_minor_units(amount, currency)


# --- what is sold ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolutionOption:
    key: str
    factor: int
    label: str
    description: str = ""
    enabled: bool = True
    #: The price of this resolution under the ``fixed`` strategy (minor units); None: the
    #: cost-plus price stands in for it.
    price_cents: int | None = None


DEFAULT_RESOLUTIONS: tuple[ResolutionOption, ...] = (
    ResolutionOption("4x", 4, _("Standard Quality"), _("Web and print ready")),
    ResolutionOption("8x", 8, _("Premium Quality"), _("Higher resolution for large prints")),
)


@dataclass(frozen=True)
class LicenceOption:
    """A licence tier: what the buyer may do with the copy, and how it changes the price."""

    key: str
    name: str
    summary: str = ""
    version: str = ""
    #: The resolution's base price is multiplied by this, then ``add_on_cents`` is added.
    multiplier: Decimal = Decimal(1)
    add_on_cents: int = 0
    #: Resolution keys it is sold with; empty: every resolution.
    resolutions: tuple[str, ...] = ()
    default: bool = False
    #: Where the full terms can be read (a page of the site, or another address).
    terms_url: str = ""

    def applies_to(self, resolution_key: str) -> bool:
        return not self.resolutions or resolution_key in self.resolutions

    def price_cents(self, base_cents: int) -> int:
        multiplied = (Decimal(base_cents) * self.multiplier).quantize(
            Decimal(1), rounding=ROUND_HALF_UP
        )
        return max(int(multiplied) + int(self.add_on_cents), 0)


DEFAULT_LICENCES: tuple[LicenceOption, ...] = (
    LicenceOption(
        "personal",
        _("Personal use"),
        summary=_("Prints and screens at home; no resale, no advertising."),
        version="1",
        default=True,
    ),
    LicenceOption(
        "commercial",
        _("Commercial use"),
        summary=_("Use in products, advertising and client work, without reselling the file."),
        version="1",
        multiplier=Decimal(3),
    ),
)


def default_licence(licences: Iterable[LicenceOption]) -> LicenceOption | None:
    """The licence marked default, else the first one (None when there is none)."""
    licences = tuple(licences)
    for licence in licences:
        if licence.default:
            return licence
    return licences[0] if licences else None


# --- the rules ---------------------------------------------------------------------------------

COST_PLUS = "cost_plus"
FIXED = "fixed"
STRATEGY_CHOICES = (
    (COST_PLUS, _("Cost plus markup (upscaling credits × cost × markup, with a minimum)")),
    (FIXED, _("Fixed price per resolution")),
)

#: How the upscaling cost of a copy is counted: Upsampler bills credits; a self-hosted
#: upscaler (Pillow, Real-ESRGAN) costs the shop its own rate per output megapixel.
COST_BY_CREDITS = "credits"
COST_BY_MEGAPIXELS = "megapixels"


@dataclass(frozen=True)
class PricingRules:
    currency: str = "usd"
    cost_per_credit: Decimal = Decimal("0.04")
    credits_per_megapixel: Decimal = Decimal("0.25")
    markup_percent: Decimal = Decimal("200")
    minimum_price_cents: int = 50
    max_output_megapixels: int = 400
    resolutions: tuple[ResolutionOption, ...] = DEFAULT_RESOLUTIONS
    strategy: str = COST_PLUS
    licences: tuple[LicenceOption, ...] = DEFAULT_LICENCES
    cost_basis: str = COST_BY_CREDITS
    #: The self-hosted upscaler's cost per output megapixel (major units); None: the
    #: backend's own (``upscalers.with_upscaler_costs`` fills it in), 0 when unknown.
    cost_per_megapixel: Decimal | None = None

    def option(self, key: str) -> ResolutionOption | None:
        for option in self.resolutions:
            if option.key == key:
                return option
        return None

    def licence(self, key: str) -> LicenceOption | None:
        for licence in self.licences:
            if licence.key == key:
                return licence
        return None

    @property
    def default_licence(self) -> LicenceOption | None:
        return default_licence(self.licences)


@dataclass(frozen=True)
class PriceOverrides:
    """Prices set for one image or for its collection, per resolution key (minor units).

    The image's own price wins over its collection's, which wins over the site's strategy.
    """

    image: Mapping[str, int] = field(default_factory=dict)
    collection: Mapping[str, int] = field(default_factory=dict)

    def price_for(self, resolution_key: str) -> tuple[int, str] | None:
        if resolution_key in self.image:
            return int(self.image[resolution_key]), SOURCE_IMAGE
        if resolution_key in self.collection:
            return int(self.collection[resolution_key]), SOURCE_COLLECTION
        return None


NO_OVERRIDES = PriceOverrides()
SOURCE_IMAGE = "image"
SOURCE_COLLECTION = "collection"


# --- strategies --------------------------------------------------------------------------------


class PriceStrategy:
    """How a site prices a resolution when neither the image nor its collection has its
    own price. ``base_price_cents`` gets the resolution, the credits its output needs and
    the rules; it returns minor units."""

    key = ""
    label = ""

    def base_price_cents(self, option: ResolutionOption, credits: int, rules: PricingRules) -> int:
        raise NotImplementedError


class CostPlus(PriceStrategy):
    """SPEC §3, the seed's formula: credits × cost per credit × (1 + markup), rounded half
    up to the minor unit, then at least the minimum price."""

    key = COST_PLUS
    label = STRATEGY_CHOICES[0][1]

    def base_price_cents(self, option, credits, rules):
        price = credits * rules.cost_per_credit * (1 + rules.markup_percent / 100)
        return max(to_minor_units(price, rules.currency), rules.minimum_price_cents)


class FixedPrice(PriceStrategy):
    """The price set on each resolution, whatever the image's size (the minimum price does
    not apply: the seller named the amount). A resolution without one is priced cost-plus."""

    key = FIXED
    label = STRATEGY_CHOICES[1][1]

    def base_price_cents(self, option, credits, rules):
        if option.price_cents is None:
            return STRATEGIES[COST_PLUS].base_price_cents(option, credits, rules)
        return int(option.price_cents)


STRATEGIES: Mapping[str, PriceStrategy] = MappingProxyType(
    {strategy.key: strategy for strategy in (CostPlus(), FixedPrice())}
)


def strategy_for(rules: PricingRules) -> PriceStrategy:
    return STRATEGIES.get(rules.strategy) or STRATEGIES[COST_PLUS]


# --- quotes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quote:
    key: str
    factor: int
    label: str
    description: str
    output_width: int
    output_height: int
    credits: int
    #: What producing this copy costs the shop (minor units): never shown to buyers.
    cost_cents: int
    #: The price with the default licence (SPEC §4's ``price_cents``).
    price_cents: int
    currency: str
    available: bool
    reason: str
    #: The price before any licence: from the image, its collection or the strategy.
    base_price_cents: int = 0
    #: Where the base price came from: ``image``, ``collection``, or the strategy's key.
    price_source: str = COST_PLUS
    #: Each licence sold with this resolution and its price, in the site's order.
    licence_prices: Mapping[str, int] = field(default_factory=dict)
    default_licence: str = ""

    @property
    def output_megapixels(self) -> Decimal:
        return Decimal(self.output_width * self.output_height) / MEGAPIXEL

    @property
    def margin_cents(self) -> int:
        """What the shop keeps of the default licence's price, before payment fees."""
        return self.price_cents - self.cost_cents

    def price_for(self, licence_key: str | None = None) -> int | None:
        """The price with this licence (the default when None), or None when the licence
        is not sold with this resolution."""
        if not licence_key:
            return self.price_cents
        return self.licence_prices.get(licence_key)

    def margin_for(self, licence_key: str | None = None) -> int | None:
        price = self.price_for(licence_key)
        return None if price is None else price - self.cost_cents


def credits_for(output_width: int, output_height: int, rules: PricingRules) -> int:
    pixels = Decimal(output_width) * Decimal(output_height)
    return math.ceil(pixels / MEGAPIXEL * rules.credits_per_megapixel)


def upscaling_cost_cents(output_width: int, output_height: int, rules: PricingRules) -> int:
    """What one copy costs the shop: credits × cost per credit for a credit-billed upscaler,
    output megapixels × cost per megapixel for a self-hosted one."""
    if rules.cost_basis == COST_BY_MEGAPIXELS:
        megapixels = Decimal(output_width) * Decimal(output_height) / MEGAPIXEL
        return to_minor_units(megapixels * (rules.cost_per_megapixel or 0), rules.currency)
    credits = credits_for(output_width, output_height, rules)
    return to_minor_units(credits * rules.cost_per_credit, rules.currency)


def base_price(
    option: ResolutionOption, credits: int, rules: PricingRules, overrides: PriceOverrides
) -> tuple[int, str]:
    """The price of a resolution before its licence, and where it came from."""
    overridden = overrides.price_for(option.key)
    if overridden is not None:
        return overridden
    strategy = strategy_for(rules)
    return strategy.base_price_cents(option, credits, rules), strategy.key


def licence_prices(base_cents: int, resolution_key: str, rules: PricingRules) -> dict[str, int]:
    return {
        licence.key: licence.price_cents(base_cents)
        for licence in rules.licences
        if licence.applies_to(resolution_key)
    }


def quote(
    width: int,
    height: int,
    option: ResolutionOption,
    rules: PricingRules,
    overrides: PriceOverrides = NO_OVERRIDES,
) -> Quote:
    if width <= 0 or height <= 0:
        raise ValueError("image size must be positive")
    out_w, out_h = width * option.factor, height * option.factor
    credits = credits_for(out_w, out_h, rules)
    base_cents, source = base_price(option, credits, rules, overrides)
    prices = licence_prices(base_cents, option.key, rules)
    chosen = rules.default_licence
    default_key = chosen.key if chosen is not None and chosen.key in prices else ""
    available, reason = True, ""
    if not option.enabled:
        available, reason = False, gettext("This resolution is not offered.")
    elif out_w * out_h > rules.max_output_megapixels * MEGAPIXEL:
        available = False
        reason = gettext(
            "The result would be %(mp)s megapixels, more than the %(max)s we can produce."
        ) % {"mp": _format_mp(out_w * out_h), "max": rules.max_output_megapixels}
    elif not prices and rules.licences:
        available, reason = False, gettext("No licence is sold with this resolution.")
    return Quote(
        key=option.key,
        factor=option.factor,
        label=str(option.label),
        description=str(option.description),
        output_width=out_w,
        output_height=out_h,
        credits=credits,
        cost_cents=upscaling_cost_cents(out_w, out_h, rules),
        price_cents=prices[default_key] if default_key else base_cents,
        currency=rules.currency,
        available=available,
        reason=reason,
        base_price_cents=base_cents,
        price_source=source,
        licence_prices=prices,
        default_licence=default_key,
    )


def quote_all(
    width: int,
    height: int,
    rules: PricingRules,
    only: Iterable[str] | None = None,
    overrides: PriceOverrides = NO_OVERRIDES,
) -> dict[str, Quote]:
    """Quotes for every offered resolution, in the rules' order.

    ``only`` restricts the offer (a block's choice): other keys are left out entirely.
    Disabled resolutions are left out too; unavailable ones stay, with their reason.
    """
    allowed = set(only) if only else None
    return {
        option.key: quote(width, height, option, rules, overrides)
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


def seller_figures(quote: Quote) -> dict:
    """Price, upscaling cost and margin of a quote, for the seller's eyes only (the settings
    preview, the image's sales panel, reports): never part of a buyer's answer."""
    currency = quote.currency
    return {
        "price_cents": quote.price_cents,
        "price_display": format_price(quote.price_cents, currency),
        "cost_cents": quote.cost_cents,
        "cost_display": format_price(quote.cost_cents, currency),
        "margin_cents": quote.margin_cents,
        "margin_display": format_price(quote.margin_cents, currency),
        "price_source": quote.price_source,
        "licence_prices": dict(quote.licence_prices),
        "licence_margins": {
            key: price - quote.cost_cents for key, price in quote.licence_prices.items()
        },
    }
