"""Counting clicks on purchase buttons (analytics)."""

from __future__ import annotations

from ..catalog import SaleOffer
from ..models import ImageClick


def record_click(offer: SaleOffer) -> None:
    ImageClick.objects.create(
        image_ref=offer.image.pk, page_ref=offer.page.pk, site_ref=offer.site.pk
    )
