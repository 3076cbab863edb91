"""Reports: revenue (with the previous period beside it), images and pages, the purchase
funnel, and customers.

Thin views over ``wagtail_smi.analytics``, the query layer ``smi_report`` uses too, so the
admin, its exports and the command line give the same figures. Each report covers a period:
a preset (today, last 7 / 30 days, this / last month, this / last year, all time) picked in
one click above the results, or custom dates from the filters; periods are cut in the
site's time zone.
"""

from __future__ import annotations

from io import BytesIO
from urllib.parse import urlencode

from django.contrib import messages
from django.http import FileResponse, StreamingHttpResponse
from django.urls import include, path, reverse
from django.utils.functional import cached_property
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from wagtail.admin.menu import MenuItem
from wagtail.admin.views.reports import ReportView

from .. import analytics
from ..analytics import Period, PeriodError
from ..models import PurchaseJob
from ..permissions import user_can_act_on_orders, user_can_view_orders
from ..pricing import format_price
from ..timeline import format_moment
from . import charts
from .exports import FormulaEscapingExportMixin, csv_lines, write_xlsx
from .filters import ImagesPagesFilterSet, ReportFilterSet, RevenueFilterSet


class SmiReportView(FormulaEscapingExportMixin, ReportView):
    """Shared by the reports: gated by the orders' view permission, one period each,
    exported as named sheets by the one export rule (``exports``)."""

    model = PurchaseJob
    permission_required = "view"
    header_icon = "smi-cart"
    paginate_by = None
    template_name = "wagtail_smi/admin/reports/report.html"
    url_namespace = "wagtail_smi_reports"
    url_name = ""
    filterset_class = ReportFilterSet
    default_period = "last-30-days"
    #: Which query-string options survive a change of period (besides the period itself).
    kept_options: tuple[str, ...] = ()
    #: Names of the list export's columns (they come from the tables; Wagtail shows the
    #: export buttons when this is not empty).
    list_export = ["table"]

    @property
    def index_url_name(self):
        return f"{self.url_namespace}:{self.url_name}"

    @property
    def index_results_url_name(self):
        return f"{self.url_namespace}:{self.url_name}_results"

    def cleaned_filter(self, name, default=None):
        if self.filters and self.filters.is_valid():
            return self.filters.form.cleaned_data.get(name) or default
        return default

    def cleaned_choice(self, name, allowed, default):
        value = self.cleaned_filter(name, default)
        return value if value in allowed else default

    @cached_property
    def period(self) -> Period:
        key = self.cleaned_filter("period", self.default_period)
        dates = self.cleaned_filter("dates")
        start = getattr(dates, "start", None)
        stop = getattr(dates, "stop", None)
        try:
            return analytics.resolve_period(
                key,
                start=start.date() if start else None,
                end=stop.date() if stop else None,
            )
        except PeriodError as exc:
            messages.warning(self.request, str(exc))
            return analytics.resolve_period(self.default_period)

    def period_links(self) -> list[dict]:
        """One link per preset, keeping the report's own options."""
        kept = {
            name: self.request.GET[name] for name in self.kept_options if self.request.GET.get(name)
        }
        base = reverse(self.index_url_name)
        return [
            {
                "key": key,
                "label": label,
                "url": f"{base}?{urlencode({'period': key, **kept})}",
                "current": self.period.key == key,
            }
            for key, label in analytics.PRESETS
            if key != "custom"
        ]

    def get_filtered_queryset(self):
        return self.build_rows()

    def build_rows(self):
        raise NotImplementedError

    def get_valid_orderings(self):
        return []

    def export_tables(self) -> list[analytics.Table]:
        raise NotImplementedError

    def get_filename(self):
        start, end = self.period.first_day, self.period.last_day
        if start is None:
            return f"{self.export_filename}-all-time"
        return f"{self.export_filename}-{start.isoformat()}-{end.isoformat()}"

    def as_spreadsheet(self, queryset, spreadsheet_format):
        tables = self.export_tables()
        if spreadsheet_format == self.FORMAT_CSV:
            response = StreamingHttpResponse(csv_lines(tables[0]), content_type="text/csv")
            response["Content-Disposition"] = f'attachment; filename="{self.get_filename()}.csv"'
            return response
        output = BytesIO()
        write_xlsx(tables, output)
        output.seek(0)
        return FileResponse(
            output,
            as_attachment=True,
            content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            filename=f"{self.get_filename()}.xlsx",
        )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        previous = self.period.previous()
        context.update(
            period=self.period,
            previous_period=previous,
            period_links=self.period_links(),
        )
        return context


def grid(table: analytics.Table, rows=None, totals=(), key: str = "") -> dict:
    """A table's headings and cells as people read them (``analytics.display_value``)."""

    def cells(row):
        return {
            "currency": row.get("currency", ""),
            "cells": [
                {"text": analytics.display_value(c, row), "numeric": c.kind != "text"}
                for c in table.columns
            ],
        }

    return {
        "key": key,
        "caption": table.name,
        "headings": [{"text": c.heading, "numeric": c.kind != "text"} for c in table.columns],
        "rows": [cells(row) for row in (table.rows if rows is None else rows)],
        "totals": [cells(row) for row in totals],
    }


def money_ticks(currency: str):
    return lambda cents: format_price(cents, currency)


def delta_display(delta: analytics.Delta, kind: str, currency: str = "") -> dict:
    """What a scorecard shows under a figure: the previous value and the change."""
    if delta.previous is None:
        return {"direction": "none", "text": "", "previous": ""}
    if kind == "money":
        previous = format_price(delta.previous, currency)
    elif kind == "percent":
        previous = analytics.format_ratio(delta.previous)
    else:
        previous = str(delta.previous)
    change = delta.change
    if not change:
        text = "—" if change is None else "±0"
    elif kind == "percent":
        text = f"{change:+} pt"
    elif delta.percent is not None:
        text = f"{delta.percent:+}%"
    else:
        text = gettext("new")
    # A real minus sign, as prices have (format_price).
    return {"direction": delta.direction, "text": text.replace("-", "\u2212"), "previous": previous}


SCORECARDS = [
    ("net", _("Net revenue"), "money"),
    ("sales", _("Sales"), "money"),
    ("refunds", _("Refunds"), "money"),
    ("margin", _("Margin"), "money"),
    ("margin_rate", _("Margin rate"), "percent"),
    ("orders", _("Paid orders"), "count"),
    ("aov", _("Average order value"), "money"),
    ("customers", _("Customers"), "count"),
]


def scorecards(comparison: analytics.Comparison) -> list[dict]:
    cards = []
    for name, label, kind in SCORECARDS:
        value = getattr(comparison.current, name)
        if kind == "money":
            shown = format_price(value, comparison.currency)
        elif kind == "percent":
            shown = analytics.format_ratio(value)
        else:
            shown = str(value)
        cards.append(
            {
                "name": name,
                "label": label,
                "value": shown,
                "delta": delta_display(comparison.delta(name), kind, comparison.currency),
                # Less is better for refunds.
                "inverse": name == "refunds",
            }
        )
    return cards


class RevenueReportView(SmiReportView):
    page_title = _("Revenue")
    url_name = "revenue"
    filterset_class = RevenueFilterSet
    results_template_name = "wagtail_smi/admin/reports/revenue_results.html"
    export_filename = "revenue"
    kept_options = ("per",)

    @cached_property
    def granularity(self) -> str:
        return self.cleaned_choice(
            "per", ("day", "week", "month"), analytics.default_granularity(self.period)
        )

    @cached_property
    def series(self) -> analytics.Series:
        return analytics.series(self.period, self.granularity)

    @cached_property
    def comparison(self) -> list[analytics.Comparison]:
        return analytics.compare(self.period)

    @cached_property
    def totals(self) -> dict[str, analytics.Figures]:
        return {c.currency: c.current for c in self.comparison if c.current.orders}

    @cached_property
    def table(self) -> analytics.Table:
        return analytics.revenue_table(self.series, self.totals)

    @cached_property
    def breakdowns(self) -> list[tuple[analytics.Breakdown, analytics.Table]]:
        return [
            (found, analytics.breakdown_table(name, analytics.breakdown(self.period, name)))
            for name, found in analytics.BREAKDOWNS.items()
        ]

    def build_rows(self):
        return [row for row in self.table.rows if not row.get("total")]

    def export_tables(self):
        return [self.table, *(table for _found, table in self.breakdowns)]

    def chart_for(self, currency: str):
        """Net revenue and margin per bucket, on the x-axis every currency shares."""
        name = dict(analytics.GRANULARITIES)[self.granularity]
        bars = [
            charts.Bar(
                label=analytics.bucket_short_label(day, self.granularity),
                value=figures.net,
                display=figures.money("net"),
                alt_value=figures.margin,
                alt_display=figures.money("margin"),
            )
            for day, figures in zip(self.series.buckets, self.series.figures(currency), strict=True)
        ]
        total = sum(bar.value for bar in bars)
        return charts.column_chart(
            bars,
            chart_id=f"smi-revenue-{currency}",
            title=gettext("Net revenue and margin per %(period)s (%(currency)s)")
            % {"period": str(name).lower(), "currency": currency.upper()},
            description=gettext(
                "%(count)s bars from %(first)s to %(last)s, %(total)s net revenue in all; "
                "the table below lists every figure."
            )
            % {
                "count": len(bars),
                "first": bars[0].label if bars else "",
                "last": bars[-1].label if bars else "",
                "total": format_price(total, currency),
            },
            series_label=gettext("Net revenue"),
            alt_series_label=gettext("Margin"),
            x_label=str(name),
            y_label=gettext("Amount (%(currency)s)") % {"currency": currency.upper()},
            tick_format=money_ticks(currency),
        )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(
            granularity=self.granularity,
            granularity_name=dict(analytics.GRANULARITIES)[self.granularity],
            grid=grid(
                self.table,
                rows=context["object_list"],
                totals=[row for row in self.table.rows if row.get("total")],
                key="revenue",
            ),
            comparisons=[
                {"currency": c.currency, "cards": scorecards(c)}
                for c in self.comparison
                if c.current.orders or (c.previous and c.previous.orders)
            ],
            charts=[
                {"currency": currency, "svg": self.chart_for(currency)}
                for currency in self.series.currencies
            ],
            breakdowns=[
                {"name": found.name, "label": found.label, "grid": grid(table, key=found.name)}
                for found, table in self.breakdowns
            ],
        )
        return context


class ImagesPagesReportView(SmiReportView):
    page_title = _("Images and pages")
    url_name = "images"
    filterset_class = ImagesPagesFilterSet
    results_template_name = "wagtail_smi/admin/reports/images_results.html"
    export_filename = "images-and-pages"
    paginate_by = 50
    kept_options = ("group", "ordering")
    default_ordering = "-net"

    @cached_property
    def group(self) -> str:
        return self.cleaned_choice("group", ("image", "page"), "image")

    @cached_property
    def item_ordering(self) -> str:
        ordering = self.request.GET.get("ordering", self.default_ordering)
        return ordering if ordering.lstrip("-") in analytics.ITEM_ORDERINGS else "-net"

    @cached_property
    def found(self) -> analytics.Items:
        return analytics.items(self.period, self.group, self.item_ordering)

    def build_rows(self):
        return self.found.rows

    def export_tables(self):
        return [analytics.items_table(self.found)]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["group"] = self.group
        context["currencies"] = self.found.currencies
        context["ordering"] = self.item_ordering
        params = self.request.GET.copy()
        params.pop("p", None)
        params.pop("_w_filter_fragment", None)
        sort_links = {}
        for key in analytics.ITEM_ORDERINGS:
            params["ordering"] = f"-{key}" if self.item_ordering != f"-{key}" else key
            sort_links[key] = f"{reverse(self.index_url_name)}?{params.urlencode()}"
        context["sort_links"] = sort_links
        context["rows"] = [
            {
                "item": item,
                "money": [
                    {
                        "currency": currency,
                        "net": item.money[currency].money("net") if currency in item.money else "—",
                        "margin": item.money[currency].money("margin")
                        if currency in item.money
                        else "—",
                    }
                    for currency in self.found.currencies
                ],
            }
            for item in context["object_list"]
        ]
        return context


class FunnelReportView(SmiReportView):
    page_title = _("Purchase funnel")
    url_name = "funnel"
    results_template_name = "wagtail_smi/admin/reports/funnel_results.html"
    export_filename = "funnel"

    @cached_property
    def figures(self) -> analytics.Funnel:
        return analytics.funnel(self.period)

    def build_rows(self):
        return self.figures.rows()

    def export_tables(self):
        return [analytics.funnel_table(self.figures)]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        rows = context["object_list"]
        context["figures"] = self.figures
        context["popular_resolutions"] = analytics.funnel_resolutions(self.period)
        context["chart"] = charts.funnel_chart(
            [charts.Bar(label=r["stage"], value=r["count"], display=str(r["count"])) for r in rows],
            chart_id="smi-funnel",
            title=gettext("Purchase funnel"),
            description=", ".join(f"{r['stage']}: {r['count']}" for r in rows),
        )
        return context


class CustomersReportView(SmiReportView):
    page_title = _("Customers")
    url_name = "customers"
    results_template_name = "wagtail_smi/admin/reports/customers_results.html"
    export_filename = "customers"
    paginate_by = 50
    default_period = "all"
    kept_options = ("ordering",)

    @cached_property
    def customer_ordering(self) -> str:
        ordering = self.request.GET.get("ordering", "orders")
        return ordering if ordering in analytics.CUSTOMER_ORDERINGS else "orders"

    def build_rows(self):
        return analytics.CustomerList(self.period, self.customer_ordering)

    def export_tables(self):
        return [analytics.customers_table(list(self.build_rows()))]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        people = list(context["object_list"])
        summary = analytics.customer_summary(self.period)
        orders_url = reverse("smi_orders:list")
        may_act = user_can_act_on_orders(self.request.user)
        params = self.request.GET.copy()
        params.pop("p", None)
        params.pop("_w_filter_fragment", None)
        sort_links = {}
        for key in analytics.CUSTOMER_ORDERINGS:
            params["ordering"] = key
            sort_links[key] = f"{reverse(self.index_url_name)}?{params.urlencode()}"
        context.update(
            summary=summary,
            ordering=self.customer_ordering,
            sort_links=sort_links,
            customers=[
                {
                    "person": person,
                    "orders_url": f"{orders_url}?{urlencode({'email': person.email})}",
                    "anonymise_url": (
                        f"{reverse('wagtail_smi_customers:anonymise')}?"
                        f"{urlencode({'email': person.email})}"
                        if may_act
                        else ""
                    ),
                    "money": [
                        {"currency": currency, "net": figures.money("net")}
                        for currency, figures in person.money.items()
                    ],
                    "first_order": format_moment(person.first_order),
                    "last_order": format_moment(person.last_order),
                }
                for person in people
            ],
        )
        return context


class ReportMenuItem(MenuItem):
    def is_shown(self, request):
        return user_can_view_orders(request.user)


REPORTS = [RevenueReportView, ImagesPagesReportView, FunnelReportView, CustomersReportView]
ICONS = {"revenue": "smi-cart", "images": "image", "funnel": "order-down", "customers": "user"}


def _urls():
    patterns = []
    for view in REPORTS:
        slug = view.url_name
        patterns.append(path(f"{slug}/", view.as_view(), name=slug))
        patterns.append(
            path(f"{slug}/results/", view.as_view(results_only=True), name=f"{slug}_results")
        )
    return patterns


urlpatterns = [path("smi/reports/", include((_urls(), "wagtail_smi_reports")))]


def menu_items():
    def make(view, order):
        def register():
            return ReportMenuItem(
                view.page_title,
                reverse(f"wagtail_smi_reports:{view.url_name}"),
                name=f"smi-report-{view.url_name}",
                icon_name=ICONS[view.url_name],
                order=order,
            )

        return register

    return [make(view, 1200 + i) for i, view in enumerate(REPORTS)]


__all__ = [
    "CustomersReportView",
    "FunnelReportView",
    "ImagesPagesReportView",
    "RevenueReportView",
]
