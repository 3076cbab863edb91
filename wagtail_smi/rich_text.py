"""Images embedded in rich text get the purchase button when they are on sale.

Rich text renders without a template context, so the page being served is remembered for
the request (``remember_page``, a ``before_serve_page`` hook, and ``forget_page`` when the
request finishes); ``wagtail_hooks`` registers both and the embed handler.
"""

from __future__ import annotations

import contextvars

from django.template.loader import render_to_string
from django.utils.safestring import mark_safe
from wagtail.images.formats import get_image_format
from wagtail.images.rich_text import ImageEmbedHandler

from .models import ImageForSale
from .rendering import FALLBACK_SPEC, button_for, prefetch_renditions

# The page being served, so rich text (which renders without a context) knows it.
current_page: contextvars.ContextVar = contextvars.ContextVar("smi_current_page", default=None)
current_request: contextvars.ContextVar = contextvars.ContextVar(
    "smi_current_request", default=None
)


def remember_page(page, request, serve_args, serve_kwargs):
    current_page.set(page)
    current_request.set(request)


def forget_page(**kwargs):
    current_page.set(None)
    current_request.set(None)


class SellableImageEmbedHandler(ImageEmbedHandler):
    """Wagtail's rich-text image, plus the purchase button when the image is on sale."""

    @classmethod
    def expand_db_attributes_many(cls, attrs_list: list[dict]) -> list[str]:
        images = cls.get_many(attrs_list)
        tags = [
            get_image_format(attrs["format"]).image_to_html(image, attrs.get("alt", ""))
            if image
            else '<img alt="">'
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
        # The buttons' renditions, for every image on sale at once.
        prefetch_renditions(
            [image for image in images if image is not None and image.pk in on_sale],
            (FALLBACK_SPEC,),
        )
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
