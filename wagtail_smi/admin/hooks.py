"""Admin integration for orders, reports, the dashboard and the settings preview.

Imported by ``wagtail_smi.wagtail_hooks``: this module is the table of contents.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.templatetags.static import static
from django.urls import path
from django.utils.html import format_html
from wagtail import hooks
from wagtail.snippets.models import register_snippet

from .. import permissions
from ..models import PurchaseJob
from . import customers, dashboard, reports, settings_preview
from .viewsets import OrderViewSet

permissions.register()

# Orders: a read-only snippet with its own menu item (``viewsets.py``).
register_snippet(OrderViewSet)


@hooks.register("before_delete_snippet")
def keep_orders(request, instances):
    """Orders are never deleted from the admin, not even by a superuser through the
    snippets' bulk "Delete" (which Wagtail offers for every snippet model)."""
    if any(isinstance(instance, PurchaseJob) for instance in instances):
        raise PermissionDenied


@hooks.register("register_icons")
def register_icons(icons):
    return [*icons, "wagtail_smi/admin/icons/smi-cart.svg"]


@hooks.register("insert_global_admin_css")
def admin_css():
    return format_html('<link rel="stylesheet" href="{}">', static("wagtail_smi/admin/admin.css"))


@hooks.register("insert_global_admin_js")
def admin_js():
    return format_html(
        '<script src="{}" defer></script>', static("wagtail_smi/admin/price-preview.js")
    )


@hooks.register("register_admin_urls")
def register_admin_urls():
    return [
        *reports.urlpatterns,
        *customers.urlpatterns,
        path(
            "smi/price-preview/",
            settings_preview.price_preview,
            name="wagtail_smi_price_preview",
        ),
    ]


for menu_item in reports.menu_items():
    hooks.register("register_reports_menu_item", menu_item)

hooks.register("construct_homepage_panels", dashboard.add_panel)
hooks.register("construct_homepage_summary_items", dashboard.add_summary_item)
