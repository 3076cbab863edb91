"""Validation for the site's pricing settings (``SmiSiteSettings``).

The model's ``base_form_class``, kept beside the model as Wagtail's own docs do, so the
models never import the admin. Keep this module free of anything that needs the app
registry at import time: it loads while models load.
"""

from __future__ import annotations

import copy
from decimal import Decimal

from django import forms
from django.utils.text import capfirst
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from wagtail.admin.forms import WagtailAdminModelForm
from wagtail.blocks import BlockField, BlockWidget

from ..pricing import FIXED, minor_unit_exponent, parse_major_units, to_major_units

# Currencies Stripe accepts for charges (lowercase ISO 4217, Stripe's supported list).
STRIPE_CURRENCIES = frozenset(
    """
    usd aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bhd bif bmd bnd bob brl bsd
    bwp byn bzd cad cdf chf clp cny cop crc cve czk djf dkk dop dzd egp etb eur fjd fkp gbp
    gel gip gmd gnf gtq gyd hkd hnl htg huf idr ils inr isk jmd jod jpy kes kgs khr kmf krw
    kwd kyd kzt lak lbp lkr lrd lsl mad mdl mga mkd mmk mnt mop mur mvr mwk mxn myr mzn nad
    ngn nio nok npr nzd omr pab pen pgk php pkr pln pyg qar ron rsd rub rwf sar sbd scr sek
    sgd shp sle sos srd std szl thb tjs tnd top try ttd twd tzs uah ugx uyu uzs vnd vuv wst
    xaf xcd xof xpf yer zar zmw
    """.split()
)


def clean_currency_code(value: str) -> str:
    code = (value or "").strip().lower()
    if code not in STRIPE_CURRENCIES:
        raise forms.ValidationError(
            gettext(
                "“%(code)s” is not a currency Stripe accepts (use a code such as usd, eur, gbp)."
            )
            % {"code": value}
        )
    return code


def resolution_errors(options) -> list[str]:
    """Problems with a list of (key, enabled) pairs: duplicate keys, nothing offered."""
    errors, seen = [], set()
    for key, _enabled in options:
        if key in seen:
            errors.append(gettext("The resolution key “%(key)s” is used twice.") % {"key": key})
        seen.add(key)
    if not any(enabled for _key, enabled in options):
        errors.append(gettext("Offer at least one resolution."))
    return errors


def licence_errors(licences, resolution_keys) -> list[str]:
    """Problems with the licence tiers, given as dicts (``key``, ``default``,
    ``resolutions`` as a tuple of keys): duplicate keys, not exactly one default, a default
    that is not sold with every resolution, unknown resolution keys."""
    errors, seen = [], set()
    for licence in licences:
        if licence["key"] in seen:
            errors.append(
                gettext("The licence key “%(key)s” is used twice.") % {"key": licence["key"]}
            )
        seen.add(licence["key"])
        unknown = [key for key in licence["resolutions"] if key not in resolution_keys]
        if unknown:
            errors.append(
                gettext("The licence “%(key)s” names unknown resolutions: %(unknown)s.")
                % {"key": licence["key"], "unknown": ", ".join(unknown)}
            )
    defaults = [licence for licence in licences if licence["default"]]
    if licences and len(defaults) != 1:
        errors.append(gettext("Mark exactly one licence as the default."))
    elif defaults and defaults[0]["resolutions"]:
        errors.append(
            gettext("The default licence must be sold with every resolution: leave its list empty.")
        )
    return errors


def with_currency_exponent(block, exponent: int):
    """A copy of a StreamField's block whose money blocks convert with ``exponent`` decimals
    (the form's currency), leaving the model's own blocks untouched for other requests."""
    block = copy.deepcopy(block)
    pending = [block]
    while pending:
        current = pending.pop()
        if hasattr(current, "set_exponent"):
            current.set_exponent(exponent)
        pending.extend(getattr(current, "child_blocks", {}).values())
    return block


MONEY_STREAMS = ("resolutions", "licences", "collection_prices")


class MajorUnitsField(forms.DecimalField):
    """An amount stored in minor units (``minimum_price_cents``), shown and typed in major
    units; ``clean`` gives minor units in the form's currency."""

    def __init__(self, *, exponent: int = 2, **kwargs):
        self.exponent = exponent
        super().__init__(
            min_value=Decimal(0),
            max_value=Decimal(10_000_000),
            decimal_places=exponent,
            **kwargs,
        )
        self.widget.attrs.update({"inputmode": "decimal", "autocomplete": "off"})

    def prepare_value(self, value):
        if isinstance(value, int) and not isinstance(value, bool):
            return to_major_units(value, self.exponent)
        return value

    def clean(self, value):
        amount = super().clean(value)
        if amount is None:
            return None
        try:
            return parse_major_units(str(amount), self.exponent)
        except ValueError:
            raise forms.ValidationError(
                gettext("Enter an amount with at most %(places)s decimals.")
                % {"places": self.exponent}
            ) from None


class SmiSiteSettingsForm(WagtailAdminModelForm):
    """Amounts in major units (stored in minor units), and the price list checked as a
    whole: resolution and licence keys, one default licence, fixed prices where the
    strategy needs them, collection prices for known resolutions."""

    minimum_price_cents = MajorUnitsField(
        label=_("minimum price"),
        help_text=_("In the currency above, e.g. 0.50. Applies to cost-plus prices."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        exponent = minor_unit_exponent(self._form_currency())
        if "minimum_price_cents" in self.fields:
            old = self.fields["minimum_price_cents"]
            self.fields["minimum_price_cents"] = MajorUnitsField(
                exponent=exponent, label=capfirst(old.label), help_text=old.help_text
            )
        for name in MONEY_STREAMS:
            field = self.fields.get(name)
            if isinstance(field, BlockField):
                field.block = with_currency_exponent(field.block, exponent)
                field.widget = BlockWidget(field.block)

    def _form_currency(self) -> str:
        """The currency being saved (a valid one typed in), else the stored one."""
        if self.is_bound:
            try:
                return clean_currency_code(self.data.get(self.add_prefix("currency")))
            except forms.ValidationError:
                pass
        return (getattr(self.instance, "currency", "") or "usd").lower()

    def clean_currency(self):
        return clean_currency_code(self.cleaned_data.get("currency"))

    def _non_negative(self, name):
        value = self.cleaned_data.get(name)
        if value is not None and Decimal(value) < 0:
            raise forms.ValidationError(gettext("Must be zero or more."))
        return value

    def clean_markup_percent(self):
        return self._non_negative("markup_percent")

    def clean_minimum_price_cents(self):
        return self._non_negative("minimum_price_cents")

    def clean_cost_per_credit(self):
        return self._non_negative("cost_per_credit")

    def clean_credits_per_megapixel(self):
        return self._non_negative("credits_per_megapixel")

    def clean_cost_per_megapixel(self):
        return self._non_negative("cost_per_megapixel")

    def clean_resolutions(self):
        stream = self.cleaned_data.get("resolutions")
        if stream is None:
            return stream
        options = [
            ((block.value.get("key") or "").strip(), bool(block.value.get("enabled")))
            for block in stream
        ]
        errors = resolution_errors(options)
        if errors:
            raise forms.ValidationError(errors)
        return stream

    def clean(self):
        cleaned = super().clean()
        resolutions = cleaned.get("resolutions")
        if resolutions is None:
            return cleaned
        keys = {(block.value.get("key") or "").strip() for block in resolutions}
        if cleaned.get("pricing_strategy") == FIXED:
            missing = [
                block.value["key"]
                for block in resolutions
                if block.value.get("enabled") and not isinstance(block.value.get("price"), int)
            ]
            if missing:
                self.add_error(
                    "resolutions",
                    gettext("Give every offered resolution a fixed price (missing: %(keys)s).")
                    % {"keys": ", ".join(missing)},
                )
        licences = cleaned.get("licences")
        if licences is not None:
            errors = licence_errors(
                [
                    {
                        "key": block.value.get("key"),
                        "default": bool(block.value.get("default")),
                        "resolutions": _keys(block.value.get("resolutions")),
                    }
                    for block in licences
                ],
                keys,
            )
            if errors:
                self.add_error("licences", errors)
        collection_prices = cleaned.get("collection_prices")
        if collection_prices is not None:
            errors = collection_price_errors(
                [(b.value.get("collection"), b.value.get("resolution")) for b in collection_prices],
                keys,
            )
            if errors:
                self.add_error("collection_prices", errors)
        return cleaned


def collection_price_errors(pairs, resolution_keys) -> list[str]:
    """Problems with (collection id, resolution key) pairs: unknown keys, twice the same."""
    errors, seen = [], set()
    for collection, key in pairs:
        if key not in resolution_keys:
            errors.append(gettext("There is no resolution “%(key)s”.") % {"key": key})
        if (collection, key) in seen:
            errors.append(gettext("A collection has two prices for “%(key)s”.") % {"key": key})
        seen.add((collection, key))
    return errors


def _keys(text) -> tuple[str, ...]:
    return tuple(k.strip() for k in (text or "").split(",") if k.strip())
