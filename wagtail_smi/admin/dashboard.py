"""Dashboard: a sales panel (today and this month, each against the same stretch before,
from ``analytics``), the "needs attention" summary item, neutral when there is none, and a
warning while orders break an invariant (``invariants``).

All are shown only to users who may view orders, and cost a fixed number of queries.
"""

from __future__ import annotations

from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from wagtail.admin.site_summary import SummaryItem
from wagtail.admin.ui.components import Component

from .. import analytics, invariants
from ..checks import SWEEPER_HINT, sweeper_silence
from ..models import JobStatus, PurchaseJob
from ..permissions import user_can_view_orders
from .reports import delta_display


def sales_figures(now=None) -> dict:
    """Net revenue and paid orders, today and this month, per currency, with the change
    against yesterday and last month up to the same point; clicks and conversion over the
    last 30 days."""
    snapshot = analytics.snapshot(now)
    windows = []
    for key, label, against in (
        ("today", analytics.PRESET_LABELS["today"], _("yesterday, same time")),
        ("this_month", analytics.PRESET_LABELS["this-month"], _("last month, same days")),
    ):
        rows = [
            {
                "currency": c.currency,
                "net": c.current.money("net"),
                "orders": c.current.orders,
                "delta": delta_display(c.delta("net"), "money", c.currency),
            }
            for c in snapshot[key]
        ]
        windows.append({"key": key, "label": label, "rows": rows, "against": against})
    funnel = analytics.funnel(analytics.resolve_period("last-30-days", now=now))
    return {
        "windows": windows,
        "clicks": funnel.clicks,
        "paid": funnel.paid,
        "conversion": analytics.ratio(funnel.paid, funnel.clicks),
    }


class SalesPanel(Component):
    name = "smi_sales"
    order = 90
    template_name = "wagtail_smi/admin/dashboard_panel.html"

    def get_context_data(self, parent_context=None):
        return {
            "figures": sales_figures(),
            "orders_url": reverse("smi_orders:list"),
            "revenue_url": reverse("wagtail_smi_reports:revenue") + "?period=this-month",
            "customers_url": reverse("wagtail_smi_reports:customers"),
        }


class NeedsAttentionSummaryItem(SummaryItem):
    """A warning when orders need an admin; a plain, neutral line when none does."""

    order = 350
    template_name = "wagtail_smi/admin/summary_needs_attention.html"

    def get_context_data(self, parent_context):
        count = PurchaseJob.objects.filter(status=JobStatus.NEEDS_ATTENTION).count()
        return {
            "count": count,
            "url": reverse("smi_orders:list") + f"?status={JobStatus.NEEDS_ATTENTION}",
        }

    def is_shown(self):
        return user_can_view_orders(self.request.user)


class SweeperWarning(Component):
    """Shown while the sweeper has not run for 5 minutes: no worker runs the schedules."""

    name = "smi_sweeper_warning"
    order = 80

    def __init__(self, message: str):
        self.message = message

    def render_html(self, parent_context=None):
        return format_html(
            '<section class="panel"><p class="help-block help-warning" role="alert">{} {}</p>'
            "</section>",
            self.message,
            SWEEPER_HINT,
        )


class InvariantWarning(Component):
    """Shown while orders break an invariant (``invariants``, the database checks: the
    storage is listed by ``smi_check`` and the sweeper, not on every dashboard view)."""

    name = "smi_invariants"
    order = 85
    SHOWN = 5

    def __init__(self, found: list):
        self.found = found

    def render_html(self, parent_context=None):
        count = len(self.found)
        summary = ngettext(
            "The consistency check found %(count)s problem.",
            "The consistency check found %(count)s problems.",
            count,
        ) % {"count": count}
        items = format_html_join(
            "",
            '<li><a href="{}">{}</a>: {}</li>',
            (
                (reverse("smi_orders:inspect", args=[v.job_id]), str(v.job_id)[:8], v.label)
                for v in self.found[: self.SHOWN]
                if v.job_id
            ),
        )
        return format_html(
            '<section class="panel smi-invariants" data-smi-violations="{}">'
            '<p class="help-block help-critical" role="alert">{} {}</p><ul>{}</ul></section>',
            count,
            summary,
            _("Run python manage.py smi_check for the full list, stored files included."),
            items,
        )


def add_panel(request, panels):
    if user_can_view_orders(request.user):
        silence = sweeper_silence()
        if silence:
            panels.append(SweeperWarning(silence))
        found = invariants.find_violations()
        if found:
            panels.append(InvariantWarning(found))
        panels.append(SalesPanel())


def add_summary_item(request, items):
    items.append(NeedsAttentionSummaryItem(request))


__all__ = ["InvariantWarning", "NeedsAttentionSummaryItem", "SalesPanel", "sales_figures"]
