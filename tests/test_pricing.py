"""Pricing (SPEC §3): the worked examples, rounding, availability, and properties."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from wagtail_smi.pricing import (
    DEFAULT_RESOLUTIONS,
    PricingRules,
    ResolutionOption,
    format_price,
    quote,
    quote_all,
)

RULES = PricingRules()
X4, X8 = DEFAULT_RESOLUTIONS


@pytest.mark.parametrize(
    ("width", "height", "option", "expected_cents"),
    [(1000, 1000, X4, 50), (1000, 1000, X8, 192), (2000, 1500, X8, 576)],
)
def test_spec_examples(width, height, option, expected_cents):
    assert quote(width, height, option, RULES).price_cents == expected_cents


def test_output_size_is_original_times_factor():
    q = quote(640, 480, X8, RULES)
    assert (q.output_width, q.output_height) == (5120, 3840)


def test_credits_round_up_to_whole_credits():
    # 1001×1000 at 4x = 16.016 MP → 4.004 credits → 5 credits.
    assert quote(1001, 1000, X4, RULES).credits == 5


def test_price_rounds_half_up_to_the_cent():
    # 1 credit × 0.0125 × 1.2 = 0.015 → 0.02 (half up, not banker's 0.02/0.01 ambiguity).
    rules = PricingRules(
        cost_per_credit=Decimal("0.0125"),
        markup_percent=Decimal("20"),
        minimum_price_cents=0,
        credits_per_megapixel=Decimal("1"),
    )
    option = ResolutionOption("1x", 1, "Same")
    assert quote(1000, 1000, option, rules).price_cents == 2


def test_minimum_price_applies():
    assert quote(10, 10, X4, RULES).price_cents == 50


def test_output_over_the_maximum_is_unavailable_but_priced():
    # 3000×3000 at 8x = 576 MP > 400 MP.
    q = quote(3000, 3000, X8, RULES)
    assert q.available is False
    assert "400" in q.reason
    assert (
        q.price_cents
        == quote(3000, 3000, X8, PricingRules(max_output_megapixels=10_000)).price_cents
    )


def test_quote_all_keeps_order_and_honours_a_restriction():
    assert list(quote_all(1000, 1000, RULES)) == ["4x", "8x"]
    assert list(quote_all(1000, 1000, RULES, only=["8x"])) == ["8x"]


def test_disabled_resolutions_are_not_offered():
    rules = PricingRules(resolutions=(X4, ResolutionOption("8x", 8, "Premium", enabled=False)))
    assert list(quote_all(1000, 1000, rules)) == ["4x"]


def test_zero_decimal_currency_prices_in_whole_units():
    rules = PricingRules(currency="jpy", cost_per_credit=Decimal("6"), minimum_price_cents=80)
    # 64 MP → 16 credits × 6 × 3 = 288 yen.
    assert quote(1000, 1000, X8, rules).price_cents == 288


def test_format_price():
    assert format_price(576, "usd") == "$5.76"
    assert format_price(288, "jpy") == "¥288"
    assert format_price(1200, "chf") == "12.00 CHF"
    assert format_price(-40, "usd") == "\u2212$0.40"
    assert format_price(-1200, "chf") == "\u221212.00 CHF"


sizes = st.integers(min_value=1, max_value=20_000)


@hsettings(max_examples=300, deadline=None)
@given(w=sizes, h=sizes, dw=st.integers(0, 5000), dh=st.integers(0, 5000))
def test_price_never_decreases_when_the_image_grows(w, h, dw, dh):
    for option in DEFAULT_RESOLUTIONS:
        assert (
            quote(w + dw, h + dh, option, RULES).price_cents
            >= quote(w, h, option, RULES).price_cents
        )


@hsettings(max_examples=300, deadline=None)
@given(w=sizes, h=sizes)
def test_price_is_at_least_the_minimum_and_8x_costs_at_least_4x(w, h):
    q4, q8 = quote(w, h, X4, RULES), quote(w, h, X8, RULES)
    assert q4.price_cents >= RULES.minimum_price_cents
    assert q8.price_cents >= q4.price_cents
    assert isinstance(q4.price_cents, int)


@hsettings(max_examples=200, deadline=None)
@given(
    w=sizes,
    h=sizes,
    markup=st.decimals(min_value=0, max_value=1000, places=2),
    extra=st.decimals(min_value=0, max_value=100, places=2),
)
def test_price_never_decreases_when_the_markup_grows(w, h, markup, extra):
    low = quote(w, h, X4, PricingRules(markup_percent=markup))
    high = quote(w, h, X4, PricingRules(markup_percent=markup + extra))
    assert high.price_cents >= low.price_cents
