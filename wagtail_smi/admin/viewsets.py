"""The "Orders" admin: a read-only ModelViewSet over ``PurchaseJob``.

Orders are created by checkout and changed only by the state machine, so the admin has no
add, copy, edit or delete views: a list (filters, search, export) and an inspect view with
the event log, the downloads and the actions (``views.py``).
"""

from __future__ import annotations

import uuid

from django.db.models import Prefetch, Q
from django.urls import path, reverse
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _
from wagtail.admin.ui.tables import BaseColumn, Column, DateColumn, StatusTagColumn, TitleColumn
from wagtail.admin.views import generic
from wagtail.admin.viewsets.model import ModelViewSet
from wagtail.images import get_image_model

from ..models import PurchaseJob
from ..permissions import VIEW_ACTIONS, user_can_act_on_orders
from ..pricing import format_price
from ..timeline import describe
from . import views
from .exports import FormulaEscapingExportMixin
from .filters import OrderFilterSet

THUMBNAIL_SPEC = "fill-80x80"



def order_amount(job: PurchaseJob) -> str:
    return format_price(job.amount_cents, job.currency)


def search_orders(queryset, query: str):
    """Email, job id (whole or its first characters), Stripe session or payment intent id."""
    query = query.strip()
    condition = (
        Q(email__icontains=query)
        | Q(checkout_session_id__icontains=query)
        | Q(payment_intent_id__icontains=query)
    )
    try:
        condition |= Q(pk=uuid.UUID(query))
    except ValueError:
        compact = query.replace("-", "").lower()
        if 4 <= len(compact) < 32 and all(c in "0123456789abcdef" for c in compact):
            # The short id shown in the list (the UUID's first 8 hex digits).
            condition |= Q(pk__startswith=query.lower())
    return queryset.filter(condition)


class ThumbnailColumn(BaseColumn):
    cell_template_name = "wagtail_smi/admin/cells/thumbnail.html"

    def get_cell_context_data(self, instance, parent_context):
        context = super().get_cell_context_data(instance, parent_context)
        context["image"] = instance.image
        context["spec"] = THUMBNAIL_SPEC
        return context


class OrderStatusColumn(StatusTagColumn):
    cell_template_name = "wagtail_smi/admin/cells/status.html"

    def get_cell_context_data(self, instance, parent_context):
        context = super().get_cell_context_data(instance, parent_context)
        context["status_key"] = instance.status
        context["tone"] = instance.state.tone
        return context


class OrderIndexView(FormulaEscapingExportMixin, generic.IndexView):
    any_permission_required = VIEW_ACTIONS
    default_ordering = "-created_at"

    def get_base_queryset(self):
        Image = get_image_model()
        return (
            super()
            .get_base_queryset()
            .prefetch_related(
                Prefetch("image", queryset=Image.objects.prefetch_renditions(THUMBNAIL_SPEC))
            )
        )

    def search_queryset(self, queryset):
        if not self.is_searching:
            return queryset
        return search_orders(queryset, self.search_query)

    @cached_property
    def columns(self):
        return [
            ThumbnailColumn("thumbnail", label=_("Image")),
            TitleColumn(
                "short_id",
                label=_("Order"),
                get_url=lambda job: reverse(self.inspect_url_name, args=[job.pk]),
                get_title_id=lambda job: f"order_{job.pk}_title",
            ),
            Column("email", label=_("Customer"), sort_key="email"),
            OrderStatusColumn("get_status_display", label=_("Status"), sort_key="status"),
            Column("resolution", label=_("Resolution"), sort_key="resolution"),
            Column("amount", label=_("Amount"), accessor=order_amount, sort_key="amount_cents"),
            DateColumn("created_at", label=_("Created"), sort_key="created_at"),
        ]


class OrderInspectView(generic.InspectView):
    any_permission_required = VIEW_ACTIONS
    template_name = "wagtail_smi/admin/order_inspect.html"

    def get_object(self, queryset=None):
        from django.shortcuts import get_object_or_404

        return get_object_or_404(
            PurchaseJob.objects.select_related("image", "page", "site"), pk=self.pk
        )

    def get_page_subtitle(self):
        return str(self.object)

    MONEY_LABELS = {
        "amount_cents": _("Amount"),
        "upscale_cost_cents": _("Upscaling cost"),
        "refund_amount_cents": _("Refunded"),
    }

    def get_field_label(self, field_name, field):
        if field_name in self.MONEY_LABELS:
            return self.MONEY_LABELS[field_name]
        return super().get_field_label(field_name, field)

    def _money(self, cents):
        return format_price(cents or 0, self.object.currency)

    def get_amount_cents_display_value(self):
        return self._money(self.object.amount_cents)

    def get_upscale_cost_cents_display_value(self):
        return self._money(self.object.upscale_cost_cents)

    def get_refund_amount_cents_display_value(self):
        return self._money(self.object.refund_amount_cents)

    def get_id_display_value(self):
        return str(self.object.pk)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        job = self.object
        events = list(job.events.select_related("actor").order_by("created_at", "id"))
        for event in events:
            event.sentence = describe(event)
        context["events"] = events
        context["downloads"] = job.downloads.all()[:50]
        context["amount_display"] = order_amount(job)
        context["status_tone"] = job.state.tone
        context["can_act"] = user_can_act_on_orders(self.request.user)
        context["actions"] = views.available_actions(job) if context["can_act"] else []
        context["action_urls"] = {
            name: reverse(f"{self.index_url_name.rsplit(':', 1)[0]}:action_{name}", args=[job.pk])
            for name in views.ACTIONS
        }
        return context


class OrderViewSet(ModelViewSet):
    model = PurchaseJob
    icon = "smi-cart"
    menu_label = _("Orders")
    menu_order = 250
    add_to_admin_menu = True
    name = "smi_orders"
    url_prefix = "smi/orders"
    add_to_reference_index = False
    copy_view_enabled = False
    inspect_view_enabled = True
    index_view_class = OrderIndexView
    inspect_view_class = OrderInspectView
    filterset_class = OrderFilterSet
    search_fields = ["email", "checkout_session_id", "payment_intent_id"]
    search_backend_name = None
    list_per_page = 50
    export_filename = "orders"
    list_export = [
        "id",
        "created_at",
        "status",
        "email",
        "image_ref",
        "image_title",
        "page_ref",
        "page_title",
        "resolution",
        "output_width",
        "output_height",
        "amount_cents",
        "currency",
        "upscale_cost_cents",
        "refund_amount_cents",
        "refund_reason",
        "checkout_session_id",
        "payment_intent_id",
        "paid_at",
        "completed_at",
        "refunded_at",
    ]
    inspect_view_fields = [
        "id",
        "status",
        "email",
        "image_title",
        "image_ref",
        "page_title",
        "page_ref",
        "resolution",
        "original_width",
        "original_height",
        "output_width",
        "output_height",
        "amount_cents",
        "currency",
        "credits",
        "upscale_cost_cents",
        "payment_provider",
        "checkout_session_id",
        "payment_intent_id",
        "upscaler",
        "upscaler_job_id",
        "upscaler_status",
        "upscaler_credits",
        "attempts",
        "next_attempt_at",
        "deadline_at",
        "last_error",
        "result_size_bytes",
        "result_content_type",
        "token_expires_at",
        "download_count",
        "download_limit",
        "delivery_email_sent_at",
        "access_revoked_at",
        "file_deleted_at",
        "refund_amount_cents",
        "refund_reason",
        "refund_id",
        "terms_accepted_at",
        "locale",
        "created_at",
        "paid_at",
        "processing_at",
        "completed_at",
        "failed_at",
        "refunded_at",
        "abandoned_at",
        "needs_attention_at",
    ]

    def get_common_view_kwargs(self, **kwargs):
        view_kwargs = super().get_common_view_kwargs(**kwargs)
        # Orders are never added, edited or deleted here: no such URLs exist.
        for name in ("add_url_name", "edit_url_name", "delete_url_name", "history_url_name",
                     "usage_url_name", "copy_url_name"):
            view_kwargs.pop(name, None)
        return view_kwargs

    def get_permissions_to_register(self):
        return super().get_permissions_to_register().filter(
            codename__in=["view_purchasejob", "change_purchasejob"]
        )

    def get_urlpatterns(self):
        urlpatterns = [
            path("", self.index_view, name="index"),
            path("results/", self.index_results_view, name="index_results"),
            path("inspect/<uuid:pk>/", self.inspect_view, name="inspect"),
        ]
        for name, view in views.ACTIONS.items():
            urlpatterns.append(path(f"{name.replace('_', '-')}/<uuid:pk>/", view, name=f"action_{name}"))
        return urlpatterns


order_viewset = OrderViewSet()
