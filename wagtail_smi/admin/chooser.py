"""The order chooser (Wagtail's snippet chooser for ``PurchaseJob``).

Wagtail's chooser views let anyone who can reach the admin pick from them; orders carry
customer emails, so these views ask for the same permission as the orders list. Orders are
made by checkout alone: the chooser has no "create" tab or URL, and searches the way the
orders list does (no search index).
"""

from __future__ import annotations

from django import forms
from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext_lazy as _
from wagtail.admin.forms.choosers import BaseFilterForm
from wagtail.admin.ui.tables import Column, DateColumn
from wagtail.snippets.views import chooser

from ..permissions import user_can_view_orders
from .filters import search_orders


class OrderSearchForm(BaseFilterForm):
    q = forms.CharField(
        label=_("Search term"),
        required=False,
        widget=forms.TextInput(attrs={"placeholder": _("Email, order number or payment id")}),
    )

    def filter(self, objects):
        objects = super().filter(objects)
        query = (self.cleaned_data.get("q") or "").strip()
        if query:
            self.is_searching, self.search_query = True, query
            objects = search_orders(objects, query)
        return objects


class OrderPermissionRequired:
    def dispatch(self, request, *args, **kwargs):
        if not user_can_view_orders(request.user):
            raise PermissionDenied
        return super().dispatch(request, *args, **kwargs)


class OrderListingMixin(OrderPermissionRequired):
    filter_form_class = OrderSearchForm
    ordering = "-created_at"
    results_template_name = "wagtailadmin/generic/chooser/results.html"

    def can_create(self):
        return False

    @property
    def columns(self):
        return [
            *super().columns,
            Column("email", label=_("Customer")),
            Column("status", label=_("Status"), accessor="get_status_display"),
            DateColumn("created_at", label=_("Created")),
        ]


class ChooseView(OrderListingMixin, chooser.ChooseView):
    pass


class ChooseResultsView(OrderListingMixin, chooser.ChooseResultsView):
    pass


class ChosenView(OrderPermissionRequired, chooser.SnippetChosenView):
    pass


class ChosenMultipleView(OrderPermissionRequired, chooser.SnippetChosenMultipleView):
    pass


class OrderChooserViewSet(chooser.SnippetChooserViewSet):
    choose_view_class = ChooseView
    choose_results_view_class = ChooseResultsView
    chosen_view_class = ChosenView
    chosen_multiple_view_class = ChosenMultipleView
    choose_one_text = _("Choose an order")
    choose_another_text = _("Choose another order")
    edit_item_text = _("Open this order")

    def get_urlpatterns(self):
        return [pattern for pattern in super().get_urlpatterns() if pattern.name != "create"]
