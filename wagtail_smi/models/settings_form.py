"""Validation for the site's pricing settings (``SmiSiteSettings``).

The model's ``base_form_class``, kept beside the model as Wagtail's own docs do, so the
models never import the admin. Keep this module free of anything that needs the app
registry at import time: it loads while models load.
"""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.utils.translation import gettext
from wagtail.admin.forms import WagtailAdminModelForm

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


class SmiSiteSettingsForm(WagtailAdminModelForm):
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
