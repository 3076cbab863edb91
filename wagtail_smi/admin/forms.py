"""The forms on the order actions' confirmation pages (``actions.py``)."""

from __future__ import annotations

import re
import secrets

from django import forms
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ..analytics import major_units
from ..models import JobStatus, PurchaseJob
from ..operations.refunds import REQUEST_KEY
from ..operations.resolution import DELIVERED_BY_HAND, REFUNDED_OUTSIDE
from ..pricing import format_price, minor_unit_exponent


class ConfirmForm(forms.Form):
    """Nothing to fill in: the POST (with its CSRF token) is the confirmation."""


class ReasonForm(forms.Form):
    """A reason, kept in the order's event log (and, for a refund, sent to the provider)."""

    reason = forms.CharField(label=_("Reason"), max_length=500, strip=True)


class RefundForm(forms.Form):
    """How much to refund (what is left, by default), why, and whether a partial refund
    also revokes the download. ``token`` identifies this form: submitting it twice with the
    same amount refunds once (``operations.refunds.submission_key``)."""

    amount = forms.CharField(
        label=_("Amount to refund"),
        max_length=20,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    reason = forms.CharField(
        label=_("Reason"),
        max_length=500,
        strip=True,
        help_text=_(
            "Kept on the order and sent to the payment provider; the customer does not see it."
        ),
    )
    revoke = forms.BooleanField(
        label=_("Also revoke the download"),
        required=False,
        help_text=_(
            "For a partial refund: the customer keeps the download unless you tick this. "
            "Refunding everything left always revokes it."
        ),
    )
    token = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args, job: PurchaseJob, **kwargs):
        self.job = job
        super().__init__(*args, **kwargs)
        left = job.refundable_cents
        self.fields["amount"].initial = str(major_units(left, job.currency))
        self.fields["amount"].help_text = gettext(
            "In %(currency)s. At most %(max)s (everything left); less is a partial refund."
        ) % {"currency": job.currency.upper(), "max": format_price(left, job.currency)}
        self.fields["token"].initial = secrets.token_urlsafe(16)
        if job.status != JobStatus.COMPLETED or job.access_revoked_at:
            del self.fields["revoke"]

    def clean_amount(self) -> int:
        job = self.job
        cents = parse_major_amount(self.cleaned_data["amount"].strip(), job.currency)
        if cents <= 0:
            raise forms.ValidationError(gettext("The amount must be more than zero."))
        if cents > job.refundable_cents:
            raise forms.ValidationError(
                gettext(
                    "At most %(max)s can be refunded: %(paid)s was paid and %(refunded)s is "
                    "already refunded."
                )
                % {
                    "max": format_price(job.refundable_cents, job.currency),
                    "paid": format_price(job.paid_amount_cents, job.currency),
                    "refunded": format_price(job.refund_amount_cents, job.currency),
                }
            )
        return cents

    def clean_token(self) -> str:
        token = self.cleaned_data["token"]
        if not REQUEST_KEY.fullmatch(token):
            raise forms.ValidationError(gettext("This form has expired: open it again."))
        return token


class AnonymiseForm(forms.Form):
    """An erasure request: the address again (so the right customer is erased) and why."""

    confirm_email = forms.EmailField(
        label=_("Type the customer's email address to confirm"), max_length=254
    )
    reason = forms.CharField(
        label=_("Reason"),
        max_length=500,
        strip=True,
        help_text=_("For example: erasure request received by email on 3 March."),
    )

    def __init__(self, *args, email: str, **kwargs):
        self.email = email
        super().__init__(*args, **kwargs)

    def clean_confirm_email(self) -> str:
        typed = self.cleaned_data["confirm_email"].strip()
        if typed.lower() != self.email.strip().lower():
            raise forms.ValidationError(gettext("This is not the customer's address."))
        return typed


class ResolveForm(forms.Form):
    OUTCOMES = [
        (DELIVERED_BY_HAND, _("Delivered by hand")),
        (REFUNDED_OUTSIDE, _("Refunded outside the system")),
    ]
    outcome = forms.ChoiceField(
        label=_("What happened"), choices=OUTCOMES, widget=forms.RadioSelect
    )
    reason = forms.CharField(label=_("Details"), max_length=500, strip=True)
    amount = forms.CharField(
        label=_("Amount refunded"),
        required=False,
        max_length=20,
        help_text=_("Only for a refund outside the system; empty means everything that was paid."),
        widget=forms.TextInput(attrs={"inputmode": "decimal"}),
    )

    def __init__(self, *args, job: PurchaseJob, **kwargs):
        self.job = job
        super().__init__(*args, **kwargs)

    def clean_amount(self) -> int:
        """The refunded amount, typed in major units (5.76), as minor units; empty means
        everything that was paid."""
        raw = (self.cleaned_data.get("amount") or "").strip()
        paid = self.job.paid_amount_cents
        if not raw:
            return paid
        cents = parse_major_amount(raw, self.job.currency)
        if cents > paid:
            raise forms.ValidationError(
                gettext("At most %(amount)s was paid.")
                % {"amount": format_price(paid, self.job.currency)}
            )
        return cents


# A plain amount: digits, optionally a decimal point (or comma) and more digits. Nothing
# that ``Decimal`` would also take: no sign, exponent, "Infinity" or "NaN".
PLAIN_AMOUNT = re.compile(r"(\d+)(?:[.,](\d+))?", re.ASCII)


def parse_major_amount(raw: str, currency: str) -> int:
    """``"5.76"`` → 576 (for USD): finite, not negative, and no finer than the currency's
    minor unit (trailing zeros aside), else a ``ValidationError`` that says which."""
    exponent = minor_unit_exponent(currency)
    example = "5" if exponent == 0 else "5." + "76543"[:exponent]
    match = PLAIN_AMOUNT.fullmatch(raw)
    if match is None:
        if raw.startswith("-"):
            raise forms.ValidationError(gettext("The amount cannot be negative."))
        raise forms.ValidationError(
            gettext("Enter a plain amount such as %(example)s.") % {"example": example}
        )
    whole, fraction = match.group(1), (match.group(2) or "").rstrip("0")
    if len(fraction) > exponent:
        if exponent == 0:
            message = gettext("%(currency)s amounts are whole numbers, such as %(example)s.")
        else:
            message = gettext(
                "%(currency)s amounts have at most %(places)d decimal places, such as %(example)s."
            )
        raise forms.ValidationError(
            message % {"currency": currency.upper(), "places": exponent, "example": example}
        )
    return int(whole + fraction.ljust(exponent, "0"))
