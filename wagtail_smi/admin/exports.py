"""Spreadsheet exports: one format rule for every CSV and XLSX the admin writes, and no
formulas smuggled into a spreadsheet.

The rule (``analytics.export_value``, shared with ``smi_report``): money in major units as
a number (5.76), its currency in a Currency column or in the heading ("Net revenue
(USD)"); states and headings as people read them ("Completed", "Paid orders"), never raw
keys; times in the site's time zone. XLSX files have named sheets ("Orders", "Revenue",
"By resolution") with columns wide enough to read.

Wagtail's CSV/XLSX export writes values as they are: a customer email such as
``=HYPERLINK(...)`` would run as a formula when the file is opened. Every text cell that
starts with one of ``= + - @``, a tab or a carriage return is prefixed with an apostrophe
(the OWASP "CSV injection" advice); numbers are left alone.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from itertools import islice

from django.utils.encoding import force_str
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.utils import get_column_letter

from ..analytics import (
    FORMULA_PREFIXES,
    Column,
    Table,
    csv_lines,
    csv_value,
    escape_formula,
    export_value,
)

#: Widths (in characters) by kind of column; text columns follow their content.
KIND_WIDTHS = {"money": 14, "count": 11, "percent": 12, "datetime": 19, "date": 12}
MIN_WIDTH, MAX_WIDTH = 8, 48
DATETIME_FORMAT = "yyyy-mm-dd hh:mm"


def sheet_title(name: str) -> str:
    """Excel's limits: 31 characters, none of ``[]:*?/\\``."""
    cleaned = "".join(" " if c in "[]:*?/\\" else c for c in force_str(name)).strip()
    return (cleaned or "Sheet")[:31]


def column_width(column: Column, sample: Iterable) -> int:
    """Wide enough for the heading and the longest of the sampled values."""
    longest = max((len(force_str(v)) for v in sample if v is not None), default=0)
    base = KIND_WIDTHS.get(column.kind, longest)
    return max(MIN_WIDTH, min(MAX_WIDTH, max(len(column.heading), base) + 2))


def xlsx_cell(sheet, column: Column, value):
    cell = WriteOnlyCell(sheet, escape_formula(value))
    if cell.data_type == "f":  # anything openpyxl takes for a formula stays text
        cell.data_type = "s"
    if column.kind == "datetime" and value is not None:
        cell.number_format = DATETIME_FORMAT
    return cell


def write_sheet(workbook, table: Table, rows: Iterable[dict]) -> None:
    """A named sheet: headings, then the rows' export values, widths from the first 200."""
    sheet = workbook.create_sheet(title=sheet_title(table.name))
    rows = iter(rows)
    first = [[export_value(c, row) for c in table.columns] for row in islice(rows, 200)]
    for index, column in enumerate(table.columns, start=1):
        width = column_width(column, (values[index - 1] for values in first))
        sheet.column_dimensions[get_column_letter(index)].width = width
    sheet.append([escape_formula(c.heading) for c in table.columns])

    def values() -> Iterator[list]:
        yield from first
        for row in rows:
            yield [export_value(c, row) for c in table.columns]

    for row_values in values():
        sheet.append(
            [xlsx_cell(sheet, c, v) for c, v in zip(table.columns, row_values, strict=True)]
        )


def write_xlsx(tables: list[Table], output) -> None:
    workbook = Workbook(write_only=True)
    for table in tables:
        write_sheet(workbook, table, table.rows)
    workbook.save(output)


class FormulaEscapingExportMixin:
    """Mix into a view that has Wagtail's ``SpreadsheetExportMixin`` (before it in the MRO)."""

    def preprocess_field_value(self, field, value, export_format):
        return escape_formula(super().preprocess_field_value(field, value, export_format))

    def get_heading(self, queryset, field):
        return escape_formula(super().get_heading(queryset, field))


class ColumnExportMixin(FormulaEscapingExportMixin):
    """For a listing of model instances (the orders): ``export_columns`` say what each
    column is, ``export_row`` gives an instance's plain values; the rule above does the
    rest, and the XLSX sheet is called ``export_sheet_name``."""

    export_columns: list[Column] = []
    export_sheet_name = ""

    @property
    def export_column_map(self) -> dict[str, Column]:
        return {column.key: column for column in self.export_columns}

    def export_row(self, instance) -> dict:
        raise NotImplementedError

    def to_row_dict(self, item):
        row = self.export_row(item)
        return OrderedDict(
            (key, export_value(self.export_column_map[key], row)) for key in self.list_export
        )

    def preprocess_field_value(self, field, value, export_format):
        # The rule's values are final: only the formula escaping applies (and text for CSV).
        if export_format == self.FORMAT_CSV:
            return csv_value(value)
        return escape_formula(value)

    def get_heading(self, queryset, field):
        return escape_formula(self.export_column_map[field].heading)

    def write_xlsx(self, queryset, output):
        table = Table(
            self.export_sheet_name or self.get_filename(),
            [self.export_column_map[key] for key in self.list_export],
            [],
        )
        workbook = Workbook(write_only=True)
        write_sheet(workbook, table, (self.export_row(item) for item in queryset))
        workbook.save(output)


__all__ = [
    "FORMULA_PREFIXES",
    "ColumnExportMixin",
    "FormulaEscapingExportMixin",
    "csv_lines",
    "escape_formula",
    "write_xlsx",
]
