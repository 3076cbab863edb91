"""What is for sale: the per-page lookup table and the site-wide image flag.

``SaleListing`` is maintained on publish, unpublish and delete (see ``wagtail_smi.catalog``)
so that checking "is image X for sale on live page Y" is one indexed query.
"""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
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
