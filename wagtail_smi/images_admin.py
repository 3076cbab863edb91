"""Image library integration: put images on sale site-wide, see and filter what is on sale,
and give images embedded in rich text the purchase button.

Imported by ``wagtail_hooks`` (the admin's table of contents). What it registers:

- bulk actions "Put on sale" / "Take off sale" in the image listing (``ImageForSale`` rows);
- a "For sale" filter in the image listing and ``?smi_for_sale=1`` in the image chooser;
- a badge in the listing and chooser (templates ``wagtailimages/images/results_image.html``,
  ``wagtailimages/images/title_column_cell.html`` and ``wagtailimages/chooser/title_column_cell.html``
  use ``{% smi_sale_badge image %}``);
- an ``image`` rich-text embed handler that renders Wagtail's usual image and, for an image
  on sale, the purchase button; the page comes from ``before_serve_page``.
"""

from __future__ import annotations

import contextvars

import django_filters
from django.core.signals import request_finished
from django.template.loader import render_to_string
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from wagtail import hooks
from wagtail.images.formats import get_image_format
from wagtail.images.rich_text import ImageEmbedHandler
from wagtail.images.views.bulk_actions.image_bulk_action import ImageBulkAction
from wagtail.images.views.images import ImagesFilterSet

from .blocks import button_for
from .models import ImageForSale

# --- bulk actions --------------------------------------------------------------------------


class _SaleBulkAction(ImageBulkAction):
    template_name = "wagtail_smi/images_admin/confirm_bulk_sale.html"
    question = ""
    confirm_label = ""

    def check_perm(self, image):
        return self.permission_policy.user_has_permission_for_instance(
            self.request.user, "change", image
        )

    def get_execution_context(self):
        return {"user": self.request.user}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(
            {"action_title": self.display_name, "question": self.question,
             "confirm_label": self.confirm_label}
        )
        return context


@hooks.register("register_bulk_action")
class PutOnSaleBulkAction(_SaleBulkAction):
    display_name = _("Put on sale")
    action_type = "smi_put_on_sale"
    aria_label = _("Put the selected images on sale on every page that shows them")
    action_priority = 40
    question = _("Put these images on sale wherever they appear on published pages?")
    confirm_label = _("Yes, put on sale")

    @classmethod
    def execute_action(cls, objects, user=None, **kwargs):
        already = set(
            ImageForSale.objects.filter(image__in=objects).values_list("image_id", flat=True)
        )
        ImageForSale.objects.bulk_create(
            [ImageForSale(image=image, created_by=user) for image in objects if image.pk not in already],
            ignore_conflicts=True,
        )
        return len(objects), 0

    def get_success_message(self, num_parent_objects, num_child_objects):
        return ngettext(
            "%(count)d image is now on sale",
            "%(count)d images are now on sale",
            num_parent_objects,
        ) % {"count": num_parent_objects}


@hooks.register("register_bulk_action")
class TakeOffSaleBulkAction(_SaleBulkAction):
    display_name = _("Take off sale")
    action_type = "smi_take_off_sale"
    aria_label = _("Take the selected images off sale (blocks marked for sale keep selling)")
    action_priority = 41
    question = _(
        "Take these images off sale? Sellable image blocks that offer them keep their button."
    )
    confirm_label = _("Yes, take off sale")

    @classmethod
    def execute_action(cls, objects, **kwargs):
        ImageForSale.objects.filter(image__in=objects).delete()
        return len(objects), 0

    def get_success_message(self, num_parent_objects, num_child_objects):
        return ngettext(
            "%(count)d image taken off sale",
            "%(count)d images taken off sale",
            num_parent_objects,
        ) % {"count": num_parent_objects}


# --- filters -------------------------------------------------------------------------------

FOR_SALE_CHOICES = [("1", _("For sale only")), ("0", _("Not for sale"))]


def _filter_for_sale(queryset, name, value):
    if value == "1":
        return queryset.filter(smi_for_sale__isnull=False)
    if value == "0":
        return queryset.filter(smi_for_sale__isnull=True)
    return queryset


# Wagtail has no hook for the image listing's filters; its FilterSet copies
# ``base_filters`` on every instantiation, so a filter declared here appears in the panel.
ImagesFilterSet.base_filters["smi_for_sale"] = django_filters.ChoiceFilter(
    label=_("For sale"),
    choices=FOR_SALE_CHOICES,
    method=_filter_for_sale,
    empty_label=_("All images"),
)


@hooks.register("construct_image_chooser_queryset")
def _chooser_for_sale_only(images, request):
    value = request.GET.get("smi_for_sale")
    return _filter_for_sale(images, "smi_for_sale", value) if value in {"0", "1"} else images


def on_sale_ids(request) -> frozenset[int]:
    """Ids of the images on sale site-wide, once per request (for listing badges)."""
    cached = getattr(request, "_smi_on_sale_ids", None) if request is not None else None
    if cached is None:
        cached = frozenset(ImageForSale.objects.values_list("image_id", flat=True))
        if request is not None:
            request._smi_on_sale_ids = cached
    return cached


def sale_badge(request, image) -> str:
    if image is None or image.pk not in on_sale_ids(request):
        return ""
    return format_html(
        '<span class="w-status w-status--primary smi-sale-badge">{}</span>', _("For sale")
    )


# --- rich text -----------------------------------------------------------------------------

# The page being served, so rich text (which renders without a context) knows it.
current_page: contextvars.ContextVar = contextvars.ContextVar("smi_current_page", default=None)
current_request: contextvars.ContextVar = contextvars.ContextVar("smi_current_request", default=None)


@hooks.register("before_serve_page")
def _remember_page(page, request, serve_args, serve_kwargs):
    current_page.set(page)
    current_request.set(request)


def _forget_page(**kwargs):
    current_page.set(None)
    current_request.set(None)


request_finished.connect(_forget_page, dispatch_uid="wagtail_smi.images_admin.forget_page")


class SellableImageEmbedHandler(ImageEmbedHandler):
    """Wagtail's rich-text image, plus the purchase button when the image is on sale."""

    @classmethod
    def expand_db_attributes_many(cls, attrs_list: list[dict]) -> list[str]:
        images = cls.get_many(attrs_list)
        tags = [
            get_image_format(attrs["format"]).image_to_html(image, attrs.get("alt", ""))
            if image else '<img alt="">'
            for attrs, image in zip(attrs_list, images, strict=True)
        ]
        page = current_page.get()
        ids = [image.pk for image in images if image is not None]
        if page is None or not ids:
            return tags
        on_sale = set(
            ImageForSale.objects.filter(image_id__in=ids).values_list("image_id", flat=True)
        )
        if not on_sale:
            return tags
        request = current_request.get()
        result = []
        for tag, image in zip(tags, images, strict=True):
            button = None
            if image is not None and image.pk in on_sale:
                button = button_for(request, image, page.pk)
            if button is None:
                result.append(tag)
                continue
            button_html = render_to_string(
                "wagtail_smi/storefront/button.html", {"button": button, "request": request}
            )
            result.append(
                mark_safe(f'<span class="smi-rich-image">{tag}{button_html}</span>')  # noqa: S308
            )
        return result


@hooks.register("register_rich_text_features", order=10)
def _sellable_rich_text_images(features):
    # After wagtail.images' own registration (order 0), so this handler wins.
    features.register_embed_type(SellableImageEmbedHandler)
