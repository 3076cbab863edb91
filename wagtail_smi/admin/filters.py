"""Search and filters for the orders list, the order chooser and the reports (plain ORM:
SQLite and PostgreSQL alike, no search index to keep up to date)."""

from __future__ import annotations

import uuid

import django_filters
from django import forms
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from wagtail.admin.filters import DateRangePickerWidget, WagtailFilterSet
from wagtail.images import get_image_model

from .. import analytics
from ..models import JobStatus, PurchaseJob


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


def _page_choices(request):
    # Deferred: the page model is looked up when the form is built, not while the admin's
    # hooks load (Wagtail 8 lets a site swap its page model).
    from wagtail.models import Page

    return Page.objects.filter(pk__in=PurchaseJob.objects.values("page_ref").distinct()).order_by(
        "title"
    )


def _image_choices(request):
    return (
        get_image_model()
        .objects.filter(pk__in=PurchaseJob.objects.values("image_ref").distinct())
        .order_by("title")
    )


def _resolution_choices():
    keys = PurchaseJob.objects.order_by().values_list("resolution", flat=True).distinct()
    return [(key, key) for key in sorted(keys)]


class OrderFilterSet(WagtailFilterSet):
    status = django_filters.MultipleChoiceFilter(
        label=_("Status"), choices=JobStatus.choices, widget=forms.CheckboxSelectMultiple
    )
    resolution = django_filters.ChoiceFilter(
        label=_("Resolution"), choices=_resolution_choices, empty_label=_("All")
    )
    created_at = django_filters.DateFromToRangeFilter(
        label=_("Created"), widget=DateRangePickerWidget
    )
    page = django_filters.ModelChoiceFilter(
        label=_("Page"), queryset=_page_choices, method="filter_page"
    )
    image = django_filters.ModelChoiceFilter(
        label=_("Image"), queryset=_image_choices, method="filter_image"
    )
    currency = django_filters.CharFilter(label=_("Currency"), method="filter_currency")
    email = django_filters.CharFilter(
        label=_("Customer email"), method="filter_email", widget=forms.EmailInput
    )

    class Meta:
        model = PurchaseJob
        fields = ["status", "resolution", "created_at", "page", "image", "currency", "email"]

    # By id snapshot, so orders whose page or image was deleted still match their id.
    def filter_page(self, queryset, name, value):
        return queryset.filter(page_ref=value.pk) if value else queryset

    def filter_image(self, queryset, name, value):
        return queryset.filter(image_ref=value.pk) if value else queryset

    def filter_currency(self, queryset, name, value):
        return queryset.filter(currency=value.lower()) if value else queryset

    def filter_email(self, queryset, name, value):
        """One customer's orders (the whole address, as the customers report links it)."""
        return queryset.filter(email__iexact=value.strip()) if value else queryset


def read_by_the_view(queryset, name, value):
    """For report options (period, grouping): shown as filters, applied by the view."""
    return queryset


class ReportFilterSet(WagtailFilterSet):
    """The period every report covers: a preset, or custom dates (which win), in the
    site's time zone (``analytics.resolve_period``)."""

    period = django_filters.ChoiceFilter(
        label=_("Period"),
        choices=[(k, v) for k, v in analytics.PRESETS if k != "custom"],
        empty_label=None,
        method=read_by_the_view,
    )
    dates = django_filters.DateFromToRangeFilter(
        label=_("Custom dates"), widget=DateRangePickerWidget, method=read_by_the_view
    )

    class Meta:
        model = PurchaseJob
        fields = ["period", "dates"]


class RevenueFilterSet(ReportFilterSet):
    per = django_filters.ChoiceFilter(
        label=_("Per"),
        choices=analytics.GRANULARITIES,
        empty_label=_("Automatic"),
        method=read_by_the_view,
    )

    class Meta:
        model = PurchaseJob
        fields = ["period", "dates", "per"]


GROUP_CHOICES = [("image", _("Image")), ("page", _("Page"))]


class ImagesPagesFilterSet(ReportFilterSet):
    group = django_filters.ChoiceFilter(
        label=_("Per"), choices=GROUP_CHOICES, empty_label=None, method=read_by_the_view
    )

    class Meta:
        model = PurchaseJob
        fields = ["period", "dates", "group"]
