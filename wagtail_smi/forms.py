"""Input of the public JSON API, validated with Django forms.

The API takes JSON (typed: an id must be a JSON number, a flag a JSON boolean) or
form-encoded bodies (everything is text). The fields below know which one they got, so
``"12"`` is a fine id in a form and a wrong type in JSON. Every error names its field and
says what is wrong, in the shape of every other API error (``api.invalid``).
"""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.translation import gettext as _

from .utils import parse_id

TRUE_WORDS, FALSE_WORDS = {"1", "true", "on", "yes"}, {"", "0", "false", "off", "no"}


class TypedField(forms.Field):
    """A field that knows whether the body was JSON (``typed``) or a form."""

    typed = False

    def error(self, message: str) -> ValidationError:
        return ValidationError(message % {"field": self.name}, code="invalid")

    def validate(self, value):
        if self.required and value in self.empty_values:
            raise self.error(_("%(field)s is required."))


class IdField(TypedField):
    """A positive database id: a JSON integer, or ASCII digits in a form."""

    def to_python(self, value):
        if value is None or value == "":
            return None
        if self.typed and isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif (
            not self.typed
            and isinstance(value, str)
            and value.strip().isascii()
            and value.strip().isdigit()
        ):
            number = int(value.strip())
        else:
            raise self.error(_("%(field)s must be a whole number."))
        if parse_id(number) is None:
            raise self.error(_("%(field)s is out of range."))
        return number


class TextField(TypedField):
    def __init__(self, *, max_length: int = 255, **kwargs):
        self.max_length = max_length
        super().__init__(**kwargs)

    def to_python(self, value):
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self.error(_("%(field)s must be text."))
        value = value.strip()
        if len(value) > self.max_length:
            raise self.error(_("%(field)s is too long."))
        return value


class EmailField(TextField):
    def __init__(self, **kwargs):
        super().__init__(max_length=254, required=False, **kwargs)

    def to_python(self, value):
        email = super().to_python(value)
        if email:
            try:
                validate_email(email)
            except ValidationError:
                raise self.error(
                    _("Please give a valid email address, or leave it empty.")
                ) from None
        return email


class FlagField(TypedField):
    def __init__(self, **kwargs):
        super().__init__(required=False, **kwargs)

    def to_python(self, value):
        if value is None:
            return False
        if self.typed and isinstance(value, bool):
            return value
        if (
            not self.typed
            and isinstance(value, str)
            and value.strip().lower() in TRUE_WORDS | FALSE_WORDS
        ):
            return value.strip().lower() in TRUE_WORDS
        raise self.error(_("%(field)s must be true or false."))


class ApiForm(forms.Form):
    def __init__(self, data, *, typed: bool):
        super().__init__(data)
        for name, field in self.fields.items():
            field.typed, field.name = typed, name

    def first_error(self) -> tuple[str, str]:
        """(field, message) of the first field in error, in the fields' order."""
        for name in self.fields:
            if name in self.errors:
                return name, self.errors[name][0]
        name, errors = next(iter(self.errors.items()))
        return name, errors[0]


class OfferForm(ApiForm):
    """``calculate-all-prices`` and ``track-click``."""

    image_id = IdField()
    page_id = IdField()


class CheckoutForm(OfferForm):
    """``create-checkout``."""

    resolution = TextField(max_length=16)
    # A licence's key; empty: the site's default licence.
    licence = TextField(max_length=32, required=False)
    email = EmailField()
    terms_accepted = FlagField()
    # The buyer asks for immediate delivery, waiving the EU right of withdrawal.
    waive_withdrawal = FlagField()
