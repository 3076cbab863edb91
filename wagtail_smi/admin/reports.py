"""Reports: revenue over time, images and pages, and the purchase funnel.

Every figure comes from database aggregation (``values().annotate()`` / ``aggregate()``);
Python only walks the aggregated rows (periods, images, funnel stages), never the orders,
so a report costs the same few queries whatever the number of orders. Money is summed per
currency and never mixed. Periods are cut in the site's time zone
(``timezone.get_current_timezone()``).

Definitions (also in docs/admin.md):

- revenue: ``amount_cents`` of orders that were paid (``paid_at`` set), dated by payment;
- refunds: ``refund_amount_cents`` of those orders, in the period the order was paid;
- upscaling cost: ``upscale_cost_cents`` of those orders;
- profit: revenue − refunds − upscaling cost; margin: profit / (revenue − refunds);
- average order value: revenue / paid orders; unique customers: distinct emails.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Count, Max, Q, Sum, Value
from django.db.models.fields import DateTimeField
from django.db.models.functions import Coalesce, Trunc
from django.urls import include, path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from wagtail.admin.menu import MenuItem
from wagtail.admin.views.reports import ReportView
from wagtail.images import get_image_model

from ..models import ImageClick, JobStatus, PurchaseJob
from ..permissions import user_can_view_orders
from ..pricing import format_price, minor_unit_exponent
from . import charts
from .exports import FormulaEscapingExportMixin
from .filters import ImagesPagesFilterSet, ReportFilterSet, RevenueFilterSet

PAID = Q(paid_at__isnull=False)


def major_units(cents: int | None, currency: str) -> Decimal:
    """Minor units → a Decimal in major units (for spreadsheets: 576 usd → 5.76)."""
    exponent = minor_unit_exponent(currency or "usd")
    return (Decimal(cents or 0) / (Decimal(10) ** exponent)).quantize(Decimal(1).scaleb(-exponent))


def ratio(numerator, denominator) -> Decimal | None:
    """A percentage with one decimal, or None when there is nothing to divide by."""
    if not denominator:
        return None
    return (Decimal(numerator) * 100 / Decimal(denominator)).quantize(
        Decimal("0.1"), rounding=ROUND_HALF_UP
    )


def divide_cents(numerator: int, denominator: int) -> int:
    if not denominator:
        return 0
    return int(
        (Decimal(numerator) / Decimal(denominator)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    )


def format_ratio(value: Decimal | None) -> str:
    return "—" if value is None else f"{value}%"


MONEY_SUMS = {
    "revenue": Coalesce(Sum("amount_cents", filter=PAID), Value(0)),
    "refunds": Coalesce(Sum("refund_amount_cents", filter=PAID), Value(0)),
    "cost": Coalesce(Sum("upscale_cost_cents", filter=PAID), Value(0)),
}


def money_row(row: dict) -> dict:
    """Add profit, margin and average order value to an aggregated row (money in cents)."""
    currency = row["currency"]
    net = row["revenue"] - row["refunds"]
    profit = net - row["cost"]
    orders = row.get("orders", row.get("purchases", 0))
    row.update(
        profit=profit,
        margin=ratio(profit, net),
        aov=divide_cents(row["revenue"], orders),
    )
    row["display"] = {
        key: format_price(row[key], currency)
        for key in ("revenue", "refunds", "cost", "profit", "aov")
    }
    row["display"]["margin"] = format_ratio(row["margin"])
    return row


class SmiReportView(FormulaEscapingExportMixin, ReportView):
    """Shared by the reports: gated by the orders' view permission, never paginated away."""

    model = PurchaseJob
    permission_required = "view"
    header_icon = "smi-cart"
    paginate_by = None
    template_name = "wagtail_smi/admin/reports/report.html"
    url_namespace = "wagtail_smi_reports"
    url_name = ""

    @property
    def index_url_name(self):
        return f"{self.url_namespace}:{self.url_name}"

    @property
    def index_results_url_name(self):
        return f"{self.url_namespace}:{self.url_name}_results"

    def filtered_jobs(self):
        jobs = PurchaseJob.objects.order_by()
        if self.filters and self.filters.is_valid():
            jobs = self.filters.filter_queryset(jobs)
        return jobs.order_by()

    def cleaned_filter(self, name, default=None):
        if self.filters and self.filters.is_valid():
            return self.filters.form.cleaned_data.get(name) or default
        return default

    def cleaned_choice(self, name, allowed, default):
        value = self.cleaned_filter(name, default)
        return value if value in allowed else default

    def filter_clicks(self, clicks):
        window = self.cleaned_filter("created_at")
        if window is not None:
            if window.start:
                clicks = clicks.filter(created_at__gte=window.start)
            if window.stop:
                clicks = clicks.filter(created_at__lte=window.stop)
        return clicks

    def get_filtered_queryset(self):
        return self.build_rows()

    def build_rows(self) -> list[dict]:
        raise NotImplementedError

    def get_valid_orderings(self):
        return []


class RevenueReportView(SmiReportView):
    page_title = _("Revenue")
    url_name = "revenue"
    filterset_class = RevenueFilterSet
    results_template_name = "wagtail_smi/admin/reports/revenue_results.html"
    export_filename = "revenue"
    list_export = [
        "period_label",
        "currency",
        "revenue_major",
        "refunds_major",
        "cost_major",
        "profit_major",
        "margin",
        "orders",
        "aov_major",
        "customers",
    ]
    export_headings = {
        "period_label": _("Period"),
        "currency": _("Currency"),
        "revenue_major": _("Revenue"),
        "refunds_major": _("Refunds"),
        "cost_major": _("Upscaling cost"),
        "profit_major": _("Profit"),
        "margin": _("Margin (%)"),
        "orders": _("Orders"),
        "aov_major": _("Average order value"),
        "customers": _("Unique customers"),
    }

    @cached_property
    def period(self) -> str:
        return self.cleaned_choice("period", ("day", "week", "month"), "day")

    @property
    def period_name(self) -> str:
        return {"day": gettext("day"), "week": gettext("week"), "month": gettext("month")}[
            self.period
        ]

    def period_label(self, moment) -> str:
        day = timezone.localtime(moment, timezone.get_current_timezone()).date()
        if self.period == "month":
            return day.strftime("%Y-%m")
        if self.period == "week":
            year, week, _weekday = day.isocalendar()
            return f"{year}-W{week:02d}"
        return day.isoformat()

    def _aggregates(self):
        return {
            **MONEY_SUMS,
            "orders": Count("id", filter=PAID),
            "customers": Count("email", distinct=True, filter=PAID & ~Q(email="")),
        }

    def _finish(self, row: dict) -> dict:
        row = money_row(row)
        for key in ("revenue", "refunds", "cost", "profit", "aov"):
            row[f"{key}_major"] = major_units(row[key], row["currency"])
        return row

    def build_rows(self) -> list[dict]:
        jobs = self.filtered_jobs().filter(PAID)
        period = Trunc(
            "paid_at",
            self.period,
            output_field=DateTimeField(),
            tzinfo=timezone.get_current_timezone(),
        )
        rows = (
            jobs.annotate(period=period)
            .values("period", "currency")
            .annotate(**self._aggregates())
            .order_by("-period", "currency")
        )
        result = []
        for row in rows:
            row["period_label"] = self.period_label(row["period"])
            result.append(self._finish(row))
        return result

    @cached_property
    def totals(self) -> list[dict]:
        rows = (
            self.filtered_jobs()
            .filter(PAID)
            .values("currency")
            .annotate(**self._aggregates())
            .order_by("currency")
        )
        result = []
        for row in rows:
            row["period_label"] = gettext("Total")
            result.append(self._finish(row))
        return result

    def decorate_paginated_queryset(self, object_list):
        if self.is_export:
            return [*object_list, *self.totals]
        return object_list

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        rows = context["object_list"]
        context["totals"] = self.totals
        context["period"] = self.period
        context["period_name"] = self.period_name
        context["charts"] = [
            {
                "currency": currency,
                "svg": self.chart_for(currency, [r for r in rows if r["currency"] == currency]),
            }
            for currency in sorted({r["currency"] for r in rows})
        ]
        return context

    def period_start(self, moment) -> date:
        day = timezone.localtime(moment, timezone.get_current_timezone()).date()
        if self.period == "month":
            return day.replace(day=1)
        if self.period == "week":
            return day - timedelta(days=day.weekday())
        return day

    def next_period(self, day: date) -> date:
        if self.period == "month":
            return (day.replace(day=28) + timedelta(days=4)).replace(day=1)
        return day + timedelta(days=7 if self.period == "week" else 1)

    def chart_for(self, currency: str, rows: list[dict]):
        """Oldest period first, empty periods drawn as zero (at most the last 90 periods)."""
        by_start = {self.period_start(r["period"]): r for r in rows}
        slots, day = [], min(by_start)
        last = max(by_start)
        while day <= last:
            slots.append(day)
            day = self.next_period(day)
        slots = slots[-90:]
        bars = []
        for start in slots:
            row = by_start.get(start)
            if row is None:
                label = self.period_label(
                    timezone.make_aware(
                        datetime.combine(start, time(12)), timezone.get_current_timezone()
                    )
                )
                bars.append(charts.Bar(label=label, value=0, display=format_price(0, currency)))
            else:
                bars.append(
                    charts.Bar(
                        label=row["period_label"],
                        value=row["revenue"],
                        display=row["display"]["revenue"],
                        alt_value=row["refunds"],
                        alt_display=row["display"]["refunds"],
                    )
                )
        rows = [by_start[start] for start in slots if start in by_start]
        total = sum(r["revenue"] for r in rows)
        return charts.column_chart(
            bars,
            chart_id=f"smi-revenue-{currency}",
            title=gettext("Revenue per %(period)s (%(currency)s)")
            % {"period": self.period_name, "currency": currency.upper()},
            description=gettext(
                "%(count)s periods from %(first)s to %(last)s, %(total)s in all; "
                "the table below lists every figure."
            )
            % {
                "count": len(bars),
                "first": bars[0].label if bars else "",
                "last": bars[-1].label if bars else "",
                "total": format_price(total, currency),
            },
            series_label=gettext("Revenue"),
            alt_series_label=gettext("Refunds"),
            peak_text=gettext("Best period: %(amount)s (%(period)s)"),
        )


class ImagesPagesReportView(SmiReportView):
    page_title = _("Images and pages")
    url_name = "images"
    filterset_class = ImagesPagesFilterSet
    results_template_name = "wagtail_smi/admin/reports/images_results.html"
    export_filename = "images-and-pages"
    paginate_by = 50
    SORT_KEYS = ("title", "clicks", "purchases", "conversion", "revenue", "profit")
    default_ordering = "-revenue"
    list_export = [
        "ref",
        "title",
        "currency",
        "clicks",
        "purchases",
        "conversion",
        "revenue_major",
        "profit_major",
        "top_resolution",
    ]
    export_headings = {
        "ref": _("Id"),
        "title": _("Title"),
        "currency": _("Currency"),
        "clicks": _("Clicks"),
        "purchases": _("Purchases"),
        "conversion": _("Conversion (%)"),
        "revenue_major": _("Revenue"),
        "profit_major": _("Profit"),
        "top_resolution": _("Top resolution"),
    }

    @cached_property
    def group(self) -> str:
        return self.cleaned_choice("group", ("image", "page"), "image")

    def get_valid_orderings(self):
        return [*self.SORT_KEYS, *(f"-{key}" for key in self.SORT_KEYS)]

    def build_rows(self) -> list[dict]:
        ref = f"{self.group}_ref"
        title = f"{self.group}_title"
        jobs = self.filtered_jobs()
        sales = (
            jobs.values(ref, "currency")
            .annotate(
                title=Max(title),
                purchases=Count("id", filter=PAID),
                **MONEY_SUMS,
            )
            .order_by()
        )
        clicks = dict(
            self.filter_clicks(ImageClick.objects.order_by())
            .values(ref)
            .annotate(n=Count("id"))
            .values_list(ref, "n")
        )
        top = {}
        for row in (
            jobs.filter(PAID)
            .values(ref, "currency", "resolution")
            .annotate(n=Count("id"))
            .order_by(ref, "currency", "-n", "resolution")
        ):
            top.setdefault((row[ref], row["currency"]), row["resolution"])

        rows, seen = [], set()
        for row in sales:
            key = row[ref]
            seen.add(key)
            rows.append(
                self._row(
                    key,
                    row["title"],
                    row["currency"],
                    clicks.get(key, 0),
                    row,
                    top.get((key, row["currency"]), ""),
                )
            )
        missing = [key for key in clicks if key not in seen]
        titles = self._titles(missing)
        for key in missing:
            empty = {"purchases": 0, "revenue": 0, "refunds": 0, "cost": 0}
            rows.append(self._row(key, titles.get(key, ""), "", clicks[key], empty, ""))
        return self._sort(rows)

    def _titles(self, keys) -> dict[int, str]:
        if not keys:
            return {}
        if self.group == "image":
            model = get_image_model()
        else:
            # Deferred: the page model is looked up when the report runs, not while the
            # admin's hooks load (Wagtail 8 lets a site swap its page model).
            from wagtail.models import Page as model
        return dict(model.objects.filter(pk__in=keys).values_list("pk", "title"))

    def _row(self, key, title, currency, clicks, sums, top_resolution) -> dict:
        row = {
            "ref": key,
            "title": title or f"#{key}",
            "currency": currency,
            "clicks": clicks,
            "purchases": sums["purchases"],
            "revenue": sums["revenue"],
            "refunds": sums["refunds"],
            "cost": sums["cost"],
            "top_resolution": top_resolution,
        }
        row = money_row({**row, "currency": currency or "usd"})
        row["currency"] = currency
        row["conversion"] = ratio(row["purchases"], clicks)
        row["display"]["conversion"] = format_ratio(row["conversion"])
        if not currency:
            row["display"]["revenue"] = row["display"]["profit"] = "—"
        row["revenue_major"] = major_units(row["revenue"], currency or "usd")
        row["profit_major"] = major_units(row["profit"], currency or "usd")
        return row

    def _sort(self, rows):
        ordering = self.request.GET.get("ordering", self.default_ordering)
        if ordering not in self.get_valid_orderings():
            ordering = self.default_ordering
        key = ordering.lstrip("-")
        self.current_ordering = ordering

        def sort_key(row):
            value = row[key]
            if key == "title":
                return (0, str(value).lower())
            return (0 if value is not None else -1, value if value is not None else 0)

        return sorted(rows, key=sort_key, reverse=ordering.startswith("-"))

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["group"] = self.group
        context["ordering"] = getattr(self, "current_ordering", self.default_ordering)
        params = self.request.GET.copy()
        params.pop("p", None)
        params.pop("_w_filter_fragment", None)
        sort_links = {}
        for key in self.SORT_KEYS:
            params["ordering"] = f"-{key}" if context["ordering"] != f"-{key}" else key
            sort_links[key] = f"{reverse(self.index_url_name)}?{params.urlencode()}"
        context["sort_links"] = sort_links
        return context


class FunnelReportView(SmiReportView):
    page_title = _("Purchase funnel")
    url_name = "funnel"
    filterset_class = ReportFilterSet
    results_template_name = "wagtail_smi/admin/reports/funnel_results.html"
    export_filename = "funnel"
    list_export = ["stage", "count", "of_previous", "of_first"]
    export_headings = {
        "stage": _("Stage"),
        "count": _("Count"),
        "of_previous": _("Of the previous stage (%)"),
        "of_first": _("Of clicks (%)"),
    }

    @cached_property
    def figures(self) -> dict:
        jobs = self.filtered_jobs()
        figures = jobs.aggregate(
            started=Count("id"),
            paid=Count("id", filter=PAID),
            delivered=Count("id", filter=Q(completed_at__isnull=False)),
            refunded=Count("id", filter=Q(refunded_at__isnull=False)),
            abandoned=Count("id", filter=Q(status=JobStatus.ABANDONED)),
        )
        figures["clicks"] = self.filter_clicks(ImageClick.objects.order_by()).count()
        figures["abandonment_rate"] = ratio(
            figures["started"] - figures["paid"], figures["started"]
        )
        figures["refund_rate"] = ratio(figures["refunded"], figures["paid"])
        return figures

    def build_rows(self) -> list[dict]:
        f = self.figures
        stages = [
            (gettext("Clicks"), f["clicks"]),
            (gettext("Checkouts started"), f["started"]),
            (gettext("Paid"), f["paid"]),
            (gettext("Delivered"), f["delivered"]),
        ]
        rows, previous = [], None
        for label, count in stages:
            rows.append(
                {
                    "stage": label,
                    "count": count,
                    "of_previous": ratio(count, previous) if previous is not None else None,
                    "of_first": ratio(count, f["clicks"]),
                }
            )
            previous = count
        return rows

    def resolutions(self) -> list[dict]:
        rows = (
            self.filtered_jobs()
            .values("resolution")
            .annotate(started=Count("id"), paid=Count("id", filter=PAID))
            .order_by("-paid", "-started", "resolution")
        )
        return [{**row, "conversion": ratio(row["paid"], row["started"])} for row in rows]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        rows = context["object_list"]
        context["figures"] = self.figures
        context["popular_resolutions"] = self.resolutions()
        context["chart"] = charts.funnel_chart(
            [charts.Bar(label=r["stage"], value=r["count"], display=str(r["count"])) for r in rows],
            chart_id="smi-funnel",
            title=gettext("Purchase funnel"),
            description=", ".join(f"{r['stage']}: {r['count']}" for r in rows),
        )
        return context


class ReportMenuItem(MenuItem):
    def is_shown(self, request):
        return user_can_view_orders(request.user)


REPORTS = [RevenueReportView, ImagesPagesReportView, FunnelReportView]
ICONS = {"revenue": "smi-cart", "images": "image", "funnel": "order-down"}


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


__all__ = ["FunnelReportView", "ImagesPagesReportView", "RevenueReportView"]
