"""Admin template tags: what the app adds to Wagtail's own image pages.

``{% smi_image_edit_panels image %}`` renders the panels registered with the
``smi_image_edit_panel`` hook (each a function of the request and the image that returns
HTML): the app's "Sales" panel is one (``wagtail_hooks``). ``{% smi_image_sale_summary
image %}`` is the line in the edit page's stats that says whether the image is for sale
and leads to that panel.
"""

from __future__ import annotations

from django import template
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from wagtail import hooks

from ..rendering import for_sale_q

register = template.Library()

PANEL_HOOK = "smi_image_edit_panel"


@register.simple_tag(takes_context=True)
def smi_image_edit_panels(context, image):
    request = context.get("request")
    return format_html_join(
        "", "{}", ((panel(request, image),) for panel in hooks.get_hooks(PANEL_HOOK))
    )


@register.simple_tag(takes_context=True)
def smi_image_sale_summary(context, image):
    if image is None or not hooks.get_hooks(PANEL_HOOK):
        return ""
    for_sale = type(image).objects.filter(for_sale_q(), pk=image.pk).exists()
    return format_html(
        '<dl class="smi-image-sale-summary"><dt>{}</dt><dd><a href="#smi-sales">{}</a></dd></dl>',
        _("Sale"),
        _("For sale") if for_sale else _("Not for sale"),
    )
