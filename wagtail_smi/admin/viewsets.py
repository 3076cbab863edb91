"""The "Orders" admin: ``PurchaseJob`` as a read-only snippet.

Orders are created by checkout and changed only through the operations, so the viewset has
no add, copy, edit, delete, history or usage views (and so no such URLs or buttons): a
list (filters, search, CSV/XLSX export), an inspect view with the event log and the
downloads, one confirmation page per action (``actions.py``) and the snippet chooser
(``chooser.py``). The model has no revisions, drafts, locking or workflow, so Wagtail adds
none of those views either. Orders have their own menu item and are listed on the Snippets
page too.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlencode

from django.contrib.admin.utils import quote
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from django.urls import NoReverseMatch, path, reverse
from django.utils.functional import cached_property
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from wagtail.admin.admin_url_finder import ModelAdminURLFinder
from wagtail.admin.ui.tables import BaseColumn, Column, DateColumn, StatusTagColumn, TitleColumn
from wagtail.admin.widgets.button import Button
from wagtail.images import get_image_model
from wagtail.snippets.views import snippets

from .. import analytics, timeline
from ..analytics import Column as ExportColumn
from ..conf import smi_settings
from ..licensing import order_licence
from ..models import EventCode, JobStatus, PurchaseJob
from ..permissions import VIEW_ACTIONS, user_can_act_on_orders, user_can_view_orders
from ..pricing import format_price
from .actions import ORDER_ACTIONS, offered_actions
from .chooser import OrderChooserViewSet
from .exports import ColumnExportMixin
from .filters import OrderFilterSet, search_orders

THUMBNAIL_SPEC = "fill-80x80"

# URL names a ``SnippetViewSet`` would otherwise hand its views: orders have no such views.
WRITE_URL_NAMES = (
    "add_url_name",
    "copy_url_name",
    "edit_url_name",
    "delete_url_name",
    "history_url_name",
    "usage_url_name",
    "lock_url_name",
    "unlock_url_name",
    "revisions_view_url_name",
    "revisions_revert_url_name",
    "revisions_compare_url_name",
    "revisions_unschedule_url_name",
    "unpublish_url_name",
)


def order_amount(job: PurchaseJob) -> str:
    return format_price(job.amount_cents, job.currency)


def stripe_dashboard_url(payment_intent_id: str) -> str:
    """The payment's page in Stripe's dashboard (its test-mode page for a test key)."""
    if not payment_intent_id:
        return ""
    key = (smi_settings.STRIPE or {}).get("SECRET_KEY") or ""
    mode = "test/" if key.startswith(("sk_test_", "rk_test_")) else ""
    return f"https://dashboard.stripe.com/{mode}payments/{payment_intent_id}"


def orders_of_customer_url(email: str) -> str:
    return f"{reverse('smi_orders:list')}?{urlencode({'email': email})}"


#: The orders export, by the one export rule (``exports``): money in major units beside
#: the currency, states as the admin reads them, times in the site's time zone.
ORDER_EXPORT_COLUMNS = [
    ExportColumn("id", _("Order")),
    ExportColumn("created_at", _("Created"), "datetime"),
    ExportColumn("status", _("Status")),
    ExportColumn("email", _("Customer email")),
    ExportColumn("image_title", _("Image title")),
    ExportColumn("image_ref", _("Image id"), "count"),
    ExportColumn("page_title", _("Page title")),
    ExportColumn("page_ref", _("Page id"), "count"),
    ExportColumn("resolution", _("Resolution")),
    ExportColumn("output_size", _("Output size (pixels)")),
    # The licence as bought (empty for orders from before licences).
    ExportColumn("licence", _("Licence")),
    ExportColumn("licence_version", _("Licence version")),
    ExportColumn("licence_key", _("Licence key")),
    ExportColumn("currency", _("Currency")),
    ExportColumn("amount", _("Price"), "money"),
    ExportColumn("discount", _("Discount"), "money"),
    ExportColumn("paid", _("Paid"), "money"),
    ExportColumn("refunded", _("Refunded"), "money"),
    ExportColumn("net", _("Net revenue"), "money"),
    ExportColumn("cost", _("Upscaling cost"), "money"),
    ExportColumn("refund_reason", _("Refund reason")),
    ExportColumn("checkout_session_id", _("Checkout session id")),
    ExportColumn("payment_intent_id", _("Payment intent id")),
    ExportColumn("withdrawal_waived_at", _("Withdrawal right waived at"), "datetime"),
    ExportColumn("paid_at", _("Paid at"), "datetime"),
    ExportColumn("completed_at", _("Completed at"), "datetime"),
    ExportColumn("refunded_at", _("Refunded at"), "datetime"),
]


def order_export_row(job: PurchaseJob) -> dict:
    return {
        "id": str(job.pk),
        "created_at": job.created_at,
        "status": str(job.get_status_display()),
        "email": job.email,
        "image_title": job.image_title,
        "image_ref": job.image_ref,
        "page_title": job.page_title,
        "page_ref": job.page_ref,
        "resolution": job.resolution,
        "output_size": f"{job.output_width} × {job.output_height}",
        "licence": job.licence_name,
        "licence_version": job.licence_version,
        "licence_key": job.licence_key,
        "currency": job.currency,
        "amount": job.amount_cents,
        "discount": job.discount_cents,
        "paid": job.paid_amount_cents if job.is_paid else 0,
        "refunded": job.refund_amount_cents,
        "net": (job.paid_amount_cents - job.refund_amount_cents) if job.is_paid else 0,
        "cost": job.upscale_cost_cents,
        "refund_reason": job.refund_reason,
        "checkout_session_id": job.checkout_session_id,
        "payment_intent_id": job.payment_intent_id,
        "withdrawal_waived_at": job.withdrawal_waived_at,
        "paid_at": job.paid_at,
        "completed_at": job.completed_at,
        "refunded_at": job.refunded_at,
    }


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


class OrderIndexView(ColumnExportMixin, snippets.IndexView):
    any_permission_required = VIEW_ACTIONS
    default_ordering = "-created_at"
    export_columns = ORDER_EXPORT_COLUMNS
    export_sheet_name = _("Orders")

    def export_row(self, instance) -> dict:
        return order_export_row(instance)

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
        # No bulk-action checkboxes: no bulk action applies to orders.
        return [
            ThumbnailColumn("thumbnail", label=_("Image")),
            TitleColumn(
                "short_id",
                label=_("Order"),
                get_url=lambda job: reverse(self.inspect_url_name, args=[quote(job.pk)]),
                get_title_id=lambda job: f"order_{job.pk}_title",
            ),
            Column("email", label=_("Customer"), sort_key="email"),
            OrderStatusColumn("get_status_display", label=_("Status"), sort_key="status"),
            Column("resolution", label=_("Resolution"), sort_key="resolution"),
            Column("amount", label=_("Amount"), accessor=order_amount, sort_key="amount_cents"),
            DateColumn("created_at", label=_("Created"), sort_key="created_at"),
        ]


class OrderInspectView(snippets.InspectView):
    any_permission_required = VIEW_ACTIONS

    MONEY_LABELS = {
        "amount_cents": _("Price"),
        "discount_cents": _("Discount"),
        "upscale_cost_cents": _("Upscaling cost"),
        "refund_amount_cents": _("Refunded"),
    }

    def get_object(self, queryset=None):
        return get_object_or_404(
            PurchaseJob.objects.select_related("image", "page", "site"), pk=self.pk
        )

    def get_page_subtitle(self):
        return str(self.object)

    def get_field_label(self, field_name, field):
        if field_name in self.MONEY_LABELS:
            return self.MONEY_LABELS[field_name]
        return super().get_field_label(field_name, field)

    def get_field_display_value(self, field_name, field):
        if field_name in self.MONEY_LABELS:
            cents = getattr(self.object, field_name) or 0
            if not cents and field_name != "amount_cents":
                return None  # no discount, no refund: nothing to show
            return format_price(cents, self.object.currency)
        value = super().get_field_display_value(field_name, field)
        if isinstance(value, datetime):
            return timeline.format_moment(value)  # one format, the site's time zone
        return value

    def get_id_display_value(self):
        return str(self.object.pk)

    def get_currency_display_value(self):
        return self.object.currency.upper()

    @cached_property
    def actions(self) -> list[dict]:
        """The actions offered on this order, for a user who may run them."""
        if not user_can_act_on_orders(self.request.user):
            return []
        namespace = self.index_url_name.rsplit(":", 1)[0]
        return [
            {
                "name": action.name,
                "label": action.label,
                "summary": action.summary,
                "url": reverse(f"{namespace}:action_{action.name}", args=[quote(self.object.pk)]),
            }
            for action in offered_actions(self.object)
        ]

    @cached_property
    def header_more_buttons(self):
        return [
            Button(action["label"], url=action["url"], priority=10 + index)
            for index, action in enumerate(self.actions)
        ]

    def links(self) -> dict:
        """Where this order's image, page, payment and customer live."""
        job = self.object
        found = {}
        if job.image is not None:
            found["image"] = {
                "label": job.image.title,
                "url": reverse("wagtailimages:edit", args=[job.image.pk]),
            }
        if job.page is not None:
            page = {"label": job.page.title}
            try:
                page["url"] = reverse("wagtailadmin_pages:edit", args=[job.page.pk])
            except NoReverseMatch:  # the pages admin is not mounted
                page["url"] = ""
            page["live_url"] = job.page.full_url if job.page.live else ""
            found["page"] = page
        if job.payment_provider == "stripe" and job.payment_intent_id:
            found["payment"] = {
                "label": job.payment_intent_id,
                "url": stripe_dashboard_url(job.payment_intent_id),
            }
        return found

    def customer(self) -> dict | None:
        job = self.object
        if not job.email:
            return None
        orders = PurchaseJob.objects.filter(email__iexact=job.email)
        lifetime = analytics.customer_lifetime(job.email)
        return {
            "email": job.email,
            "orders": orders.count(),
            "orders_url": orders_of_customer_url(job.email),
            "spent": [figures.money("net") for figures in lifetime.values()],
            "anonymise_url": (
                f"{reverse('wagtail_smi_customers:anonymise')}?{urlencode({'email': job.email})}"
                if user_can_act_on_orders(self.request.user)
                else ""
            ),
        }

    def timeline_entries(self) -> list[dict]:
        job = self.object
        payment_url = self.links().get("payment", {}).get("url", "")
        entries = []
        for event in job.events.select_related("actor").order_by("created_at", "id"):
            entry = {
                "kind": event.kind,
                "code": event.code,
                "when": timeline.format_moment(event.created_at),
                "iso": event.created_at.isoformat(),
                "sentence": timeline.describe(event),
                "change": timeline.status_change(event),
                "actor": timeline.actor_label(event),
                "by_person": event.actor_id is not None,
                "link": None,
            }
            if payment_url and event.code in PAYMENT_CODES:
                entry["link"] = {"url": payment_url, "label": gettext("See it in Stripe")}
            entries.append(entry)
        return entries

    def refunds(self) -> list[dict]:
        job = self.object
        return [
            {
                "when": timeline.format_moment(request.created_at),
                "amount": format_price(request.amount_cents, request.currency),
                "status": request.get_status_display(),
                "status_key": request.status,
                "reason": request.reason,
                "error": request.error,
                "by": (request.actor.get_full_name() or request.actor.get_username())
                if request.actor
                else gettext("System"),
            }
            for request in job.refund_requests.select_related("actor")
        ]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        job = self.object
        resolved = job.state.final and job.status != JobStatus.NEEDS_ATTENTION
        context.update(
            timeline=self.timeline_entries(),
            downloads=[
                {"when": timeline.format_moment(d.created_at), "ranged": d.ranged}
                for d in job.downloads.all()[:50]
            ],
            refunds=self.refunds(),
            links=self.links(),
            customer=self.customer(),
            show_last_error=bool(job.last_error) and not resolved,
            amount_display=order_amount(job),
            paid_display=format_price(job.paid_amount_cents, job.currency),
            refunded_display=format_price(job.refund_amount_cents, job.currency),
            refundable_display=format_price(job.refundable_cents, job.currency),
            status_tone=job.state.tone,
            actions=self.actions,
            licence=order_licence(job),
            withdrawal_waived_display=timeline.format_moment(job.withdrawal_waived_at)
            if job.withdrawal_waived_at
            else "",
            rights_missing=self.rights_missing(),
        )
        return context

    def rights_missing(self) -> bool:
        """Whether the file delivered last went out without its rights in its metadata."""
        last = (
            self.object.events.filter(code__in=(EventCode.DELIVERED, EventCode.REDELIVERED))
            .order_by("-created_at", "-id")
            .first()
        )
        return bool(last and last.data.get("rights_metadata") is False)


#: Events a payment provider's dashboard shows: linked to the payment there.
PAYMENT_CODES = frozenset(
    {
        EventCode.PAYMENT_RECEIVED,
        EventCode.REFUNDED,
        EventCode.PARTIAL_REFUND,
        EventCode.REFUND_REFUSED,
    }
)


class OrderAdminURLFinder(ModelAdminURLFinder):
    """An order's admin page is its inspect view, for whoever may see orders (Wagtail's
    default asks for "change" and an edit view, which orders do not have)."""

    edit_url_name = "smi_orders:inspect"

    def get_edit_url(self, instance):
        if self.user is not None and not user_can_view_orders(self.user):
            return None
        return self.construct_edit_url(instance)


class OrderViewSet(snippets.SnippetViewSet):
    model = PurchaseJob
    icon = "smi-cart"
    menu_label = _("Orders")
    menu_name = "orders"
    menu_order = 250
    add_to_admin_menu = True
    # Listed on the Snippets page as well as in the menu (Wagtail leaves snippets that
    # have their own menu item off that page unless told otherwise).
    menu_item_is_registered = False
    url_namespace = "smi_orders"
    url_prefix = "smi/orders"
    url_finder_class = OrderAdminURLFinder
    chooser_viewset_class = OrderChooserViewSet
    add_to_reference_index = False
    copy_view_enabled = False
    inspect_view_enabled = True
    index_view_class = OrderIndexView
    inspect_view_class = OrderInspectView
    # Wagtail's generic templates, not the snippet ones: those add the bulk-action bar.
    index_template_name = "wagtailadmin/generic/index.html"
    index_results_template_name = "wagtailadmin/generic/index_results.html"
    inspect_template_name = "wagtail_smi/admin/order_inspect.html"
    filterset_class = OrderFilterSet
    search_fields = ["email", "checkout_session_id", "payment_intent_id"]
    search_backend_name = None
    list_per_page = 50
    export_filename = "orders"
    list_export = [column.key for column in ORDER_EXPORT_COLUMNS]
    inspect_view_fields = [
        "id",
        "status",
        "email",
        "image_title",
        "image_ref",
        "page_title",
        "page_ref",
        "resolution",
        "licence_key",
        "licence_name",
        "licence_version",
        "licence_summary",
        "licence_terms_url",
        "original_width",
        "original_height",
        "output_width",
        "output_height",
        "currency",
        "amount_cents",
        "discount_cents",
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
        "withdrawal_waived_at",
        "locale",
        "created_at",
        "paid_at",
        "processing_at",
        "completed_at",
        "failed_at",
        "refunded_at",
        "abandoned_at",
        "needs_attention_at",
        "taken_in_hand_at",
        "taken_in_hand_by",
        "anonymised_at",
    ]

    def get_common_view_kwargs(self, **kwargs):
        view_kwargs = super().get_common_view_kwargs(**kwargs)
        for name in WRITE_URL_NAMES:
            view_kwargs.pop(name, None)
        return view_kwargs

    def get_permissions_to_register(self):
        # The group editor offers "view" and "change" (run actions) for orders, nothing else.
        return (
            super()
            .get_permissions_to_register()
            .filter(codename__in=["view_purchasejob", "change_purchasejob"])
        )

    def action_view(self, action_class):
        return self.construct_view(action_class, inspect_url_name=self.get_url_name("inspect"))

    def get_urlpatterns(self):
        conv = self.pk_path_converter
        return [
            path("", self.index_view, name="list"),
            path("results/", self.index_results_view, name="list_results"),
            # The names the orders list had before it was a snippet, for links made then.
            path("", self.index_view, name="index"),
            path("results/", self.index_results_view, name="index_results"),
            path(f"inspect/<{conv}:pk>/", self.inspect_view, name="inspect"),
            *(
                path(
                    f"{action.name.replace('_', '-')}/<{conv}:pk>/",
                    self.action_view(action),
                    name=f"action_{action.name}",
                )
                for action in ORDER_ACTIONS
            ),
        ]
