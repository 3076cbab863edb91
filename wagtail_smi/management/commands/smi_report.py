"""``manage.py smi_report revenue|images|funnel|customers``: the admin's reports on the
command line, from the same query layer (``wagtail_smi.analytics``), so both give the same
figures for the same period.

    manage.py smi_report revenue --period last-month
    manage.py smi_report revenue --from 2026-01-01 --to 2026-03-31 --per month --format csv
    manage.py smi_report customers --period all --format json

``--format table`` (default) is for people; ``csv`` is the admin's CSV export of the same
report (money in major units, the one export rule); ``json`` is for programs: money in
integer minor units beside its currency, times in ISO 8601 with their offset.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from ... import analytics
from ...analytics import PeriodError, Table

REPORTS = ("revenue", "images", "funnel", "customers")
DEFAULT_PERIODS = {"customers": "all"}


def _json_default(value):
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise CommandError(_("Dates are YYYY-MM-DD, not %(text)r.") % {"text": text}) from exc


class Command(BaseCommand):
    help = "Revenue, images and pages, funnel or customers for a period (as in the admin)."

    def add_arguments(self, parser):
        parser.add_argument("report", choices=REPORTS)
        parser.add_argument(
            "--period",
            choices=[key for key, _label in analytics.PRESETS if key != "custom"],
            help="a preset (default: last-30-days; customers: all)",
        )
        parser.add_argument("--from", dest="start", help="first day, YYYY-MM-DD (custom dates)")
        parser.add_argument("--to", dest="end", help="last day, YYYY-MM-DD (default: today)")
        parser.add_argument("--per", choices=["day", "week", "month"], help="revenue buckets")
        parser.add_argument("--group", choices=["image", "page"], default="image")
        parser.add_argument("--format", choices=["table", "csv", "json"], default="table")

    def handle(self, *args, **options):
        report = options["report"]
        try:
            period = analytics.resolve_period(
                options["period"] or DEFAULT_PERIODS.get(report, "last-30-days"),
                start=_day(options["start"]) if options["start"] else None,
                end=_day(options["end"]) if options["end"] else None,
            )
        except PeriodError as exc:
            raise CommandError(str(exc)) from exc
        data, tables = getattr(self, f"build_{report}")(period, options)
        data = {"report": report, "period": period.to_dict(), **data}
        if options["format"] == "json":
            self.stdout.write(json.dumps(data, default=_json_default, indent=2))
        elif options["format"] == "csv":
            # What the admin's "Download CSV" gives for this report: its first table.
            for line in analytics.csv_lines(tables[0]):
                self.stdout.write(line, ending="")
        else:
            self.write_tables(period, tables)

    # The reports -------------------------------------------------------------------------

    def build_revenue(self, period, options):
        granularity = options["per"] or analytics.default_granularity(period)
        found = analytics.series(period, granularity)
        comparison = analytics.compare(period)
        totals = {c.currency: c.current for c in comparison if c.current.orders}
        tables = [analytics.revenue_table(found, totals)]
        breakdowns = {}
        for name in analytics.BREAKDOWNS:
            rows = analytics.breakdown(period, name)
            breakdowns[name] = [row.as_row() for row in rows]
            tables.append(analytics.breakdown_table(name, rows))
        previous = period.previous()
        data = {
            "previous_period": previous.to_dict() if previous else None,
            "granularity": granularity,
            "currencies": {
                c.currency: {
                    "current": c.current.as_row(),
                    "previous": c.previous.as_row() if c.previous is not None else None,
                }
                for c in comparison
            },
            "series": [row for row in tables[0].rows if not row.get("total")],
            "breakdowns": breakdowns,
        }
        return data, tables

    def build_images(self, period, options):
        found = analytics.items(period, options["group"])
        data = {
            "group": found.group,
            "currencies": found.currencies,
            "items": [item.as_row() for item in found.rows],
        }
        return data, [analytics.items_table(found)]

    def build_funnel(self, period, options):
        found = analytics.funnel(period)
        data = {
            "funnel": found.as_dict(),
            "stages": found.rows(),
            "resolutions": analytics.funnel_resolutions(period),
        }
        return data, [analytics.funnel_table(found)]

    def build_customers(self, period, options):
        people = list(analytics.CustomerList(period))
        summary = analytics.customer_summary(period)
        data = {
            "summary": summary.as_dict(),
            "customers": [person.as_row() for person in people],
        }
        return data, [analytics.customers_table(people)]

    # Output -------------------------------------------------------------------------------

    def write_tables(self, period, tables: list[Table]) -> None:
        self.stdout.write(f"{period.label}: {period.range_label}")
        previous = period.previous()
        if previous is not None:
            self.stdout.write(_("compared with %(range)s") % {"range": previous.range_label})
        for table in tables:
            self.stdout.write("")
            self.stdout.write(table.name)
            self.stdout.write(render_text_table(table))


def render_text_table(table: Table) -> str:
    headings = [column.heading for column in table.columns]
    rows = [[analytics.display_value(c, row) for c in table.columns] for row in table.rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headings)]
    numeric = [column.kind != "text" for column in table.columns]

    def line(cells):
        return "  ".join(
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, right in zip(cells, widths, numeric, strict=True)
        ).rstrip()

    out = [line(headings), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in rows]
    if not rows:
        out.append(_("(nothing in this period)"))
    return "\n".join(out)
