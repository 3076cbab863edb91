"""Click analytics: one row per click on a purchase button."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class ImageClick(models.Model):
    """Ids, not foreign keys: clicks outlive the images and pages they were on."""

    image_ref = models.PositiveIntegerField(_("image id"))
    page_ref = models.PositiveIntegerField(_("page id"))
    site_ref = models.PositiveIntegerField(_("site id"), null=True, blank=True)
    created_at = models.DateTimeField(_("time"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("image click")
        verbose_name_plural = _("image clicks")
        indexes = [
            models.Index(fields=["image_ref", "created_at"], name="smi_click_image_created"),
            models.Index(fields=["page_ref", "created_at"], name="smi_click_page_created"),
        ]

    def __str__(self) -> str:
        return f"click on image {self.image_ref} (page {self.page_ref})"
