"""Image library integration: put images on sale site-wide, see and filter what is on sale.

Imported by ``wagtail_hooks`` (the admin's table of contents). What it registers:

- bulk actions "Put on sale" / "Take off sale" in the image listing (``ImageForSale`` rows);
- a "For sale" filter in the image listing and ``?smi_for_sale=1`` in the image chooser;
- a badge in the listing and chooser, grid and list views alike (templates
  ``wagtailimages/images/results_image.html``, ``wagtailimages/images/title_column_cell.html``,
  ``wagtailimages/chooser/results.html`` and ``wagtailimages/chooser/title_column_cell.html``
  use ``{% smi_sale_badge image %}``, see ``rendering.sale_badge``).

"For sale" has one meaning for the badge and the filter (``rendering.for_sale_q``): on
sale site-wide, or offered by a sellable image block on a live page.
"""

from __future__ import annotations

import django_filters
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from wagtail import hooks
from wagtail.images.views.bulk_actions.image_bulk_action import ImageBulkAction
from wagtail.images.views.images import ImagesFilterSet

from .. import offer_cache
from ..models import ImageForSale
from ..rendering import for_sale_q

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
            {
                "action_title": self.display_name,
                "question": self.question,
                "confirm_label": self.confirm_label,
            }
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
            [
                ImageForSale(image=image, created_by=user)
                for image in objects
                if image.pk not in already
            ],
            ignore_conflicts=True,
        )
        offer_cache.invalidate()  # bulk_create sends no signal
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
    """The badge's definition (``rendering.for_sale_q``): on sale site-wide, or offered
    by a sellable image block on a live page."""
    if value == "1":
        return queryset.filter(for_sale_q())
    if value == "0":
        return queryset.exclude(for_sale_q())
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
