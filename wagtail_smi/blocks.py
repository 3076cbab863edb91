"""StreamField blocks for editors.

``SellableImageBlock`` renders a responsive rendition (never the original file), its
caption, and the purchase button of SPEC §1.1 (see ``rendering``); its images are loaded
in bulk for the whole stream.

The child blocks' names, types and arguments are frozen by the demo's migrations.
"""

from __future__ import annotations

import copy

from django.utils.translation import gettext_lazy as _
from wagtail import blocks
from wagtail.images.blocks import ImageChooserBlock

from .pricing import DEFAULT_RESOLUTIONS
from .rendering import image_context, load_images


def resolution_choices():
    return [(option.key, f"{option.key} · {option.label}") for option in DEFAULT_RESOLUTIONS]


class SellableImageBlock(blocks.StructBlock):
    """An image shown as a responsive rendition, with a button to buy an upscaled copy."""

    image = ImageChooserBlock(label=_("Image"))
    caption = blocks.CharBlock(label=_("Caption"), required=False, max_length=255)
    resolutions = blocks.MultipleChoiceBlock(
        label=_("Offer only these resolutions"),
        choices=resolution_choices,
        required=False,
        help_text=_("Leave empty to offer every resolution enabled in the site settings."),
    )
    for_sale = blocks.BooleanBlock(
        label=_("For sale"),
        required=False,
        default=True,
        help_text=_("Untick to show the image without a purchase button."),
    )

    class Meta:
        icon = "image"
        label = _("Sellable image")
        template = "wagtail_smi/blocks/sellable_image.html"

    def bulk_to_python(self, values):
        """Load every image of the stream in one query, with its renditions prefetched."""
        values = list(values)
        image_ids = [
            value.get("image")
            for value in values
            if isinstance(value, dict) and isinstance(value.get("image"), int)
        ]
        images = load_images(image_ids)
        seen: set[int] = set()
        result = []
        for value in values:
            value = value if isinstance(value, dict) else {}
            items = []
            for name, child in self.child_blocks.items():
                if name == "image":
                    image = images.get(value.get("image"))
                    if image is not None and image.pk in seen:
                        image = copy.copy(image)
                    if image is not None:
                        seen.add(image.pk)
                    items.append((name, image))
                elif name in value:
                    items.append((name, child.to_python(value[name])))
                else:
                    items.append((name, child.get_default()))
            result.append(self._to_struct_value(items))
        return result

    def get_context(self, value, parent_context=None):
        context = super().get_context(value, parent_context=parent_context)
        parent = parent_context or {}
        page = parent.get("page")
        context.update(
            image_context(
                parent.get("request"),
                value.get("image"),
                getattr(page, "pk", None),
                for_sale=bool(value.get("for_sale")),
            )
        )
        context["caption"] = value.get("caption")
        return context
