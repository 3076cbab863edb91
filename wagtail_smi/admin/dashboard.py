"""Dashboard: a "last 30 days" panel and a "needs attention" summary item.

Both are shown only to users who may view orders, and cost a fixed number of queries.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, Sum
from django.urls import reverse
from django.utils import timezone
from wagtail.admin.site_summary import SummaryItem
from wagtail.admin.ui.components import Component

from ..models import ImageClick, JobStatus, PurchaseJob
from ..permissions import user_can_view_orders
from ..pricing import format_price
from .reports import ratio

WINDOW_DAYS = 30


def last_days_figures(days: int = WINDOW_DAYS) -> dict:
    since = timezone.now() - timedelta(days=days)
    paid = PurchaseJob.objects.order_by().filter(paid_at__gte=since)
    per_currency = list(
        paid.values("currency")
        .annotate(
            revenue=Sum("amount_cents"), refunds=Sum("refund_amount_cents"), orders=Count("id")
        )
        .order_by("-revenue", "currency")
    )
    orders = sum(row["orders"] for row in per_currency)
    clicks = ImageClick.objects.filter(created_at__gte=since).count()
    return {
        "days": days,
        "revenue": [
            {**row, "display": format_price(row["revenue"] or 0, row["currency"])}
            for row in per_currency
        ],
        "orders": orders,
        "clicks": clicks,
        "conversion": ratio(orders, clicks),
    }


class SalesPanel(Component):
    name = "smi_sales"
    order = 90
    template_name = "wagtail_smi/admin/dashboard_panel.html"

    def get_context_data(self, parent_context=None):
        return {
            "figures": last_days_figures(),
            "orders_url": reverse("smi_orders:list"),
            "revenue_url": reverse("wagtail_smi_reports:revenue"),
        }


class NeedsAttentionSummaryItem(SummaryItem):
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


def add_panel(request, panels):
    if user_can_view_orders(request.user):
        panels.append(SalesPanel())


def add_summary_item(request, items):
    items.append(NeedsAttentionSummaryItem(request))


__all__ = ["NeedsAttentionSummaryItem", "SalesPanel", "last_days_figures"]
