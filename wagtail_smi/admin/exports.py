"""Spreadsheet exports that cannot smuggle formulas into a spreadsheet.

Wagtail's CSV/XLSX export writes values as they are: a customer email such as
``=HYPERLINK(...)`` would run as a formula when the file is opened. Every text cell that
starts with one of ``= + - @``, a tab or a carriage return is prefixed with an apostrophe
(the OWASP "CSV injection" advice); numbers are left alone.
"""

from __future__ import annotations

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def escape_formula(value):
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


class FormulaEscapingExportMixin:
    """Mix into a view that has Wagtail's ``SpreadsheetExportMixin`` (before it in the MRO)."""

    def preprocess_field_value(self, field, value, export_format):
        return escape_formula(super().preprocess_field_value(field, value, export_format))

    def get_heading(self, queryset, field):
        return escape_formula(super().get_heading(queryset, field))
