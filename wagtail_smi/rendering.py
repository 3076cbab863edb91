"""Rendering sellable images: responsive renditions, the purchase button and the modal's
assets, shared by the StreamField block, the template tags and rich text.

A page of many sellable images costs no more queries than the same page of plain image
blocks: images and their renditions are loaded in bulk (Wagtail's rendition cache first,
then one query for the rest), and the site's storefront settings are read once per
request (and cached between requests).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from wagtail.images import get_image_model

from . import links
from .models import ImageForSale, SmiSiteSettings

# Rendition filters used for the responsive image; `SRCSET_WIDTHS[1]` is the fallback src.
SRCSET_WIDTHS = (400, 800, 1200)
RENDITION_SPECS = tuple(f"width-{w}" for w in SRCSET_WIDTHS)
# Saving the settings clears this process's copy; other processes see a change within this.
SETTINGS_CACHE_SECONDS = 60


# --- bulk loading ------------------------------------------------------------------------


def load_images(image_ids) -> dict[int, Any]:
    """Images by id, each with its responsive renditions prefetched (at most two queries)."""
    ids = sorted({i for i in image_ids if i})
    if not ids:
        return {}
    images = get_image_model().objects.in_bulk(ids)
    prefetch_renditions(list(images.values()))
    return images


def prefetch_renditions(images, specs=RENDITION_SPECS) -> None:
    """Attach existing renditions to each image: from the rendition cache, else one query.

    Missing renditions are created on first render as usual.
    """
    # Not at import time: the block (and so this module) loads while models load.
    from wagtail.images.models import Filter

    if not images:
        return
    Rendition = images[0].get_rendition_model()
    filters = [Filter(spec) for spec in specs]
    keys = {
        image.pk: [
            Rendition.construct_cache_key(image, f.get_cache_key(image), f.spec) for f in filters
        ]
        for image in images
    }
    cached = Rendition.cache_backend.get_many([k for ks in keys.values() for k in ks])
    missing = []
    for image in images:
        found = [cached[k] for k in keys[image.pk] if k in cached]
        if len(found) == len(filters):
            for rendition in found:
                rendition.image = image
            image.prefetched_renditions = found
        else:
            image.prefetched_renditions = []
            missing.append(image)
    if not missing:
        return
    by_pk = {image.pk: image for image in missing}
    found = list(Rendition.objects.filter(image_id__in=by_pk, filter_spec__in=specs))
    # Cache them before attaching their image, so each cache entry stays one small row.
    Rendition.cache_backend.set_many(
        {
            Rendition.construct_cache_key(by_pk[r.image_id], r.focal_point_key, r.filter_spec): r
            for r in found
        }
    )
    for rendition in found:
        image = by_pk[rendition.image_id]
        rendition.image = image
        image.prefetched_renditions.append(rendition)


# --- storefront settings and the button ----------------------------------------------------


def _settings_cache_key(site_id: int) -> str:
    return f"wagtail_smi:site-settings:{site_id}"


def storefront_settings(request=None, page=None):
    """The site's ``SmiSiteSettings``: once per request, and cached between requests."""
    # Not at import time: the block (and so this module) loads while models load.
    from wagtail.models import Site

    if request is not None and hasattr(request, "_smi_site_settings"):
        return request._smi_site_settings
    site = Site.find_for_request(request) if request is not None else None
    if site is None and page is not None:
        site = page.get_site()
    if site is None:
        site = Site.objects.filter(is_default_site=True).first()
    settings_row = None
    if site is not None:
        key = _settings_cache_key(site.pk)
        settings_row = cache.get(key)
        if settings_row is None:
            settings_row = SmiSiteSettings.for_site(site)
            cache.set(key, settings_row, SETTINGS_CACHE_SECONDS)
    if request is not None:
        request._smi_site_settings = settings_row
    return settings_row


def forget_settings(sender, instance, **kwargs):
    """Signal receiver (``signals.connect``): a saved or deleted settings row is re-read."""
    cache.delete(_settings_cache_key(instance.site_id))


@dataclass(frozen=True)
class Button:
    href: str
    text: str
    image_id: int
    page_id: int
    src: str
    width: int
    height: int


def button_for(request, image, page_id, *, rendition=None) -> Button | None:
    """The purchase button for an image on a page, or None when selling is switched off."""
    if image is None or not page_id:
        return None
    settings_row = storefront_settings(request)
    if settings_row is None or not settings_row.enabled:
        return None
    if settings_row.sale_refusal(image) is not None:  # not raster, or too small to sell
        return None
    if rendition is None:
        rendition = image.get_rendition(RENDITION_SPECS[1])
    return Button(
        href=links.purchase_path(image.pk, page_id),
        text=settings_row.get_button_text(),
        image_id=image.pk,
        page_id=int(page_id),
        src=rendition.url,
        width=image.width,
        height=image.height,
    )


def image_context(request, image, page_id, *, for_sale: bool = True) -> dict[str, Any]:
    """Template context for one sellable image: its renditions and its button."""
    context: dict[str, Any] = {"image": image, "button": None, "request": request}
    if image is None:
        return context
    renditions = image.get_renditions(*RENDITION_SPECS)
    ordered = [renditions[spec] for spec in RENDITION_SPECS]
    context["renditions"] = ordered
    context["fallback"] = ordered[1]
    by_width = {r.width: r for r in ordered}  # a small image yields the same width twice
    context["srcset"] = ", ".join(f"{r.url} {w}w" for w, r in sorted(by_width.items()))
    if for_sale:
        context["button"] = button_for(request, image, page_id, rendition=ordered[1])
    return context


def claim_assets(request) -> bool:
    """True the first time in a request: the modal's CSS and JS go out once per page."""
    if request is None:
        return True
    if getattr(request, "_smi_assets_included", False):
        return False
    request._smi_assets_included = True
    return True


def on_sale_ids(request) -> frozenset[int]:
    """Ids of the images on sale site-wide, once per request (for listing badges)."""
    cached = getattr(request, "_smi_on_sale_ids", None) if request is not None else None
    if cached is None:
        cached = frozenset(ImageForSale.objects.values_list("image_id", flat=True))
        if request is not None:
            request._smi_on_sale_ids = cached
    return cached


def sale_badge(request, image) -> str:
    """The "For sale" badge of the admin's image listing and chooser."""
    if image is None or image.pk not in on_sale_ids(request):
        return ""
    return format_html(
        '<span class="w-status w-status--primary smi-sale-badge">{}</span>', _("For sale")
    )
