"""What is for sale: the per-page lookup table and the site-wide image flag.

``SaleListing`` is maintained on publish, unpublish and delete (see ``wagtail_smi.catalog``)
so that checking "is image X for sale on live page Y" is one indexed query. ``sale_refusal``
says which images cannot be sold at all (not raster, too small), whatever the listings say.
"""

import os
from dataclasses import dataclass

from django.conf import settings
from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from PIL import Image
from wagtail.images import get_image_model_string

# The page model a site may have swapped in (Wagtail 8's WAGTAIL_PAGE_MODEL); read from the
# setting itself, since Wagtail names its swappable setting only once wagtail.models loads.
PAGE_MODEL = getattr(settings, "WAGTAIL_PAGE_MODEL", "wagtailcore.Page")


class SaleListing(models.Model):
    """An image that appears in a page's published content.

    ``via_block`` rows come from a ``SellableImageBlock`` with for-sale on: sellable there.
    Other rows (rich text, plain image blocks) are sellable only while the image carries
    the site-wide ``ImageForSale`` flag.
    """

    page = models.ForeignKey(PAGE_MODEL, on_delete=models.CASCADE, related_name="+")
    image = models.ForeignKey(get_image_model_string(), on_delete=models.CASCADE, related_name="+")
    via_block = models.BooleanField(default=False)
    # Resolution keys the block restricts the offer to; empty: all enabled resolutions.
    resolutions = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("sale listing")
        verbose_name_plural = _("sale listings")
        constraints = [
            models.UniqueConstraint(fields=["page", "image"], name="smi_listing_page_image")
        ]

    def __str__(self) -> str:
        return f"image {self.image_id} on page {self.page_id}"


class ImageForSale(models.Model):
    """An image put on sale site-wide from the image library (no block needed)."""

    image = models.OneToOneField(
        get_image_model_string(), on_delete=models.CASCADE, related_name="smi_for_sale"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = _("image for sale")
        verbose_name_plural = _("images for sale")

    def __str__(self) -> str:
        return f"image {self.image_id}"


class ImagePrice(models.Model):
    """A price an admin set for one image at one resolution (minor units of the selling
    site's currency). It wins over the image's collection and the site's strategy
    (``pricing.PriceOverrides``); the image's licence tiers still apply on top."""

    image = models.ForeignKey(
        get_image_model_string(), on_delete=models.CASCADE, related_name="smi_prices"
    )
    resolution = models.CharField(_("resolution"), max_length=16)
    price_cents = models.PositiveIntegerField(_("price (minor units)"))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("image price")
        verbose_name_plural = _("image prices")
        constraints = [
            models.UniqueConstraint(
                fields=["image", "resolution"], name="smi_image_price_resolution"
            )
        ]

    def __str__(self) -> str:
        return f"image {self.image_id} at {self.resolution}: {self.price_cents}"


# --- what can be sold ------------------------------------------------------------------------

# Formats Pillow can open that hold a drawing or a document rather than pixels.
NOT_RASTER_FORMATS = frozenset({"EPS", "PDF", "WMF", "EMF", "SVG"})
NOT_RASTER = "not_raster"
TOO_SMALL = "too_small"


@dataclass(frozen=True)
class SaleRefusal:
    """Why an image cannot be sold: a stable ``code`` and a message for the buyer."""

    code: str
    message: str


def raster_format(file_name: str) -> str | None:
    """The Pillow format a file's extension stands for when Pillow reads it as pixels
    (JPEG, PNG, WebP, GIF...); None for SVG, documents and anything Pillow cannot open.
    Decided from the name alone: no file is opened to render a button."""
    extension = os.path.splitext(file_name or "")[1].lower()
    found = Image.registered_extensions().get(extension)
    if found is None or found in NOT_RASTER_FORMATS or found not in Image.OPEN:
        return None
    return found


def sale_refusal(image, *, min_short_side: int) -> SaleRefusal | None:
    """Why ``image`` cannot be sold, or None when it can: only raster images, and only
    those whose short side has at least ``min_short_side`` pixels (an upscale of a thumbnail
    is a blurred poster, and fails the customer)."""
    is_svg = getattr(image, "is_svg", None)
    if (callable(is_svg) and is_svg()) or raster_format(image.file.name) is None:
        return SaleRefusal(
            NOT_RASTER,
            gettext(
                "Only photographs and other pixel images (JPEG, PNG, WebP…) can be sold: this "
                "image is a drawing or a format that cannot be upscaled."
            ),
        )
    short_side = min(image.width or 0, image.height or 0)
    if short_side < min_short_side:
        return SaleRefusal(
            TOO_SMALL,
            gettext(
                "This image is too small to upscale well: its short side is %(short)s px, "
                "and at least %(minimum)s px are needed."
            )
            % {"short": short_side, "minimum": min_short_side},
        )
    return None
