"""StreamField blocks for editors."""

from django.utils.translation import gettext_lazy as _
from wagtail import blocks
from wagtail.images.blocks import ImageChooserBlock


def resolution_choices():
    from .pricing import DEFAULT_RESOLUTIONS

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
        label=_("For sale"), required=False, default=True,
        help_text=_("Untick to show the image without a purchase button."),
    )

    class Meta:
        icon = "image"
        label = _("Sellable image")
        template = "wagtail_smi/blocks/sellable_image.html"
