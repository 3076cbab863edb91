"""Rendering sellable images: responsive renditions, the purchase button and the modal's
assets, shared by the StreamField block, the template tags and rich text.

A page of many sellable images costs no more than the same page of plain image blocks:
images and their renditions are loaded in bulk (Wagtail's rendition cache first, then one
query for the rest), rendition filters are parsed once per process, each image's
renditions and URLs are worked out once per render, the purchase URL is reversed once per
request, and the site's storefront settings are read once per request (and cached between
requests under the offer cache's version, so a change reaches every process sharing the
cache at once).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db.models import Q
from django.utils.formats import number_format
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from wagtail.images import get_image_model

from . import links, offer_cache
from .models import SaleListing, SmiSiteSettings
from .models.catalog import raster_format

# Rendition filters used for the responsive image; `SRCSET_WIDTHS[1]` is the fallback src.
SRCSET_WIDTHS = (400, 800, 1200)
RENDITION_SPECS = tuple(f"width-{w}" for w in SRCSET_WIDTHS)
FALLBACK_SPEC = RENDITION_SPECS[1]
# How long a process may serve cached settings when the cache is not shared (a saved
# settings row changes the offer cache's version, which every process sharing it sees).
SETTINGS_CACHE_SECONDS = 60


# --- renditions ----------------------------------------------------------------------------


@functools.cache
def rendition_filters(specs: tuple[str, ...] = RENDITION_SPECS) -> tuple:
    """Wagtail ``Filter`` objects for ``specs``, built once per process: given a spec string,
    Wagtail parses it again for every image and every request."""
    # Not at import time: the block (and so this module) loads while models load.
    from wagtail.images.models import Filter

    return tuple(Filter(spec) for spec in specs)


def load_images(image_ids) -> dict[int, Any]:
    """Images by id, each with its responsive renditions prefetched (at most two queries)."""
    ids = sorted({i for i in image_ids if i})
    if not ids:
        return {}
    images = get_image_model().objects.in_bulk(ids)
    prefetch_renditions(list(images.values()))
    return images


def prefetch_renditions(images, specs: tuple[str, ...] = RENDITION_SPECS) -> None:
    """Attach each image's existing renditions for ``specs``: from Wagtail's rendition cache
    (one read for all of them), else from one query for the images it lacks.

    ``renditions_for`` then finds them without further work; missing renditions are created
    on first render as usual.
    """
    if not images:
        return
    filters = rendition_filters(tuple(specs))
    Rendition = images[0].get_rendition_model()
    wanted = {image.pk: [(f.spec, f.get_cache_key(image)) for f in filters] for image in images}
    keys = {
        image.pk: [
            Rendition.construct_cache_key(image, key, spec) for spec, key in wanted[image.pk]
        ]
        for image in images
    }
    cached = Rendition.cache_backend.get_many([k for ks in keys.values() for k in ks])
    missing = []
    for image in images:
        found = [cached.get(k) for k in keys[image.pk]]
        if None in found:
            missing.append(image)
        else:
            _attach(image, found)
    if not missing:
        return
    by_pk = {image.pk: image for image in missing}
    rows = {
        (r.image_id, r.filter_spec, r.focal_point_key): r
        for r in Rendition.objects.filter(image_id__in=by_pk, filter_spec__in=specs)
    }
    # Cache them before attaching their image, so each cache entry stays one small row.
    Rendition.cache_backend.set_many(
        {
            Rendition.construct_cache_key(by_pk[image_id], focal_point_key, spec): r
            for (image_id, spec, focal_point_key), r in rows.items()
        }
    )
    for image in missing:
        found = [rows.get((image.pk, spec, key)) for spec, key in wanted[image.pk]]
        _attach(image, [r for r in found if r is not None])


def _attach(image, renditions) -> None:
    for rendition in renditions:
        rendition.image = image
    # Where Wagtail's own lookups (``get_rendition``) look first.
    image.prefetched_renditions = list(renditions)
    image._smi_renditions = {r.filter_spec: r for r in renditions}


def renditions_for(image, specs: tuple[str, ...] = RENDITION_SPECS) -> list:
    """The image's renditions for ``specs``, in order: the prefetched ones, else found or
    made by Wagtail; either way remembered on the image for the rest of the render."""
    known = getattr(image, "_smi_renditions", None)
    if known is None:
        known = image._smi_renditions = {}
    if any(spec not in known for spec in specs):
        known.update(image.get_renditions(*rendition_filters(tuple(specs))))
    return [known[spec] for spec in specs]


# --- storefront settings and the button ----------------------------------------------------


def storefront_settings(request=None, page=None):
    """The site's ``SmiSiteSettings``: once per request, and cached between requests under
    the offer cache's version (a saved settings row, page or image changes it)."""
    # Not at import time: the block (and so this module) loads while models load.
    from wagtail.models import Site

    if request is not None and hasattr(request, "_smi_site_settings"):
        return request._smi_site_settings
    site = Site.find_for_request(request) if request is not None else None
    if site is None and page is not None:
        site = page.get_site()
    if site is None:
        site = Site.objects.filter(is_default_site=True).first()
    settings_row = _cached_settings(site) if site is not None else None
    if request is not None:
        request._smi_site_settings = settings_row
    return settings_row


def _cached_settings(site):
    created = []

    def build():
        row = SmiSiteSettings.base_queryset().filter(site=site).first()
        if row is None:
            created.append(True)
            row = SmiSiteSettings.for_site(site)
        return row

    parts = ("site-settings", site.pk)
    row = offer_cache.remember(parts, build, timeout=SETTINGS_CACHE_SECONDS)
    if created:
        # The site's first read saved its defaults, which moved the version on: keep the
        # row under the new version too, or the next request reads it again.
        row = offer_cache.remember(parts, build, timeout=SETTINGS_CACHE_SECONDS)
    return row


@dataclass(frozen=True)
class Button:
    href: str
    text: str
    image_id: int
    page_id: int
    src: str
    width: int
    height: int
    title: str = ""

    @property
    def label(self) -> str:
        """The accessible name: a page of six buttons reads as six different images
        ("Buy high-res: Lake at dusk"), and still starts with the words on screen."""
        if not self.title:
            return self.text
        return gettext("%(action)s: %(title)s") % {"action": self.text, "title": self.title}


def button_for(request, image, page_id, *, src: str | None = None) -> Button | None:
    """The purchase button for an image on a page, or None when selling is switched off.
    ``src`` is the fallback rendition's URL when the caller has it already."""
    if image is None or not page_id:
        return None
    settings_row = storefront_settings(request)
    if settings_row is None or not settings_row.enabled:
        return None
    if settings_row.sale_refusal(image) is not None:  # not raster, or too small to sell
        return None
    if src is None:
        [fallback] = renditions_for(image, (FALLBACK_SPEC,))
        src = fallback.url
    return Button(
        href=links.purchase_path(image.pk, page_id, request),
        text=settings_row.get_button_text(),
        image_id=image.pk,
        page_id=int(page_id),
        src=src,
        width=image.width,
        height=image.height,
        title=image.title or "",
    )


def image_context(request, image, page_id, *, for_sale: bool = True) -> dict[str, Any]:
    """Template context for one sellable image: its renditions, their URLs (each built
    once) and its button."""
    context: dict[str, Any] = {"image": image, "button": None, "request": request}
    if image is None:
        return context
    ordered = renditions_for(image)
    urls = [rendition.url for rendition in ordered]
    fallback = ordered[RENDITION_SPECS.index(FALLBACK_SPEC)]
    src = urls[RENDITION_SPECS.index(FALLBACK_SPEC)]
    # A small image yields the same width twice: one candidate per width.
    by_width = {r.width: url for r, url in zip(ordered, urls, strict=True)}
    context["renditions"] = ordered
    context["fallback"] = fallback
    context["src"] = src
    context["srcset"] = ", ".join(f"{url} {w}w" for w, url in sorted(by_width.items()))
    if for_sale:
        context["button"] = button_for(request, image, page_id, src=src)
    return context


# --- what the buyer gets: file format, approximate size, print size --------------------------

PRINT_DPI = 300
CM_PER_INCH = Decimal("2.54")
# What one output megapixel of an upscaled photograph typically weighs, by format: JPEG and
# WebP as the backends write them (quality 92), PNG in 24-bit colour. Real files vary with
# the picture (a clear sky compresses far better than foliage), hence "about".
BYTES_PER_MEGAPIXEL = {"JPEG": 400_000, "WebP": 300_000, "PNG": 1_800_000}
FORMAT_NAMES = {".jpg": "JPEG", ".png": "PNG", ".webp": "WebP"}


@dataclass(frozen=True)
class Deliverable:
    """The file a resolution delivers, as the purchase dialog and page describe it."""

    format: str
    output_width: int
    output_height: int
    approx_bytes: int

    def print_size(self, unit: str = "in") -> tuple[Decimal, Decimal]:
        """Width and height of a print at ``PRINT_DPI``, to a tenth of an inch or cm."""
        scale = Decimal(1) if unit == "in" else CM_PER_INCH
        return tuple(  # type: ignore[return-value]
            (Decimal(pixels) / PRINT_DPI * scale).quantize(Decimal("0.1"), ROUND_HALF_UP)
            for pixels in (self.output_width, self.output_height)
        )

    @property
    def print_display(self) -> str:
        (w_in, h_in), (w_cm, h_cm) = self.print_size("in"), self.print_size("cm")
        return gettext(
            "Prints at %(w_in)s × %(h_in)s in (%(w_cm)s × %(h_cm)s cm) at %(dpi)s dpi"
        ) % {
            "w_in": number_format(w_in, 1),
            "h_in": number_format(h_in, 1),
            "w_cm": number_format(w_cm, 1),
            "h_cm": number_format(h_cm, 1),
            "dpi": PRINT_DPI,
        }

    @property
    def size_display(self) -> str:
        """ "about 6.4 MB": tenths below 10 MB, whole megabytes above, in decimal units
        (as cameras and operating systems count them)."""
        megabytes = Decimal(self.approx_bytes) / 1_000_000
        if megabytes < 1:
            kilobytes = max(1, int((megabytes * 1000).quantize(Decimal(1), ROUND_HALF_UP)))
            return gettext("about %(size)s KB") % {"size": number_format(kilobytes)}
        places = 1 if megabytes < 10 else 0
        rounded = megabytes.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP)
        return gettext("about %(size)s MB") % {
            "size": number_format(rounded, places, force_grouping=True)
        }

    @property
    def file_display(self) -> str:
        return gettext("%(format)s file, %(size)s") % {
            "format": self.format,
            "size": self.size_display,
        }

    def as_json(self) -> dict[str, Any]:
        (w_in, h_in), (w_cm, h_cm) = self.print_size("in"), self.print_size("cm")
        return {
            "format": self.format,
            "approx_bytes": self.approx_bytes,
            "print": {
                "dpi": PRINT_DPI,
                "width_in": float(w_in),
                "height_in": float(h_in),
                "width_cm": float(w_cm),
                "height_cm": float(h_cm),
            },
            "print_display": self.print_display,
            "file_display": self.file_display,
        }


def delivered_format(image, output_width: int, output_height: int) -> str:
    """The format the file is delivered in: the original's as the upscalers keep it
    (JPEG stays JPEG, PNG stays PNG, WebP stays WebP while WebP can hold the size), anything
    else becomes PNG (``upscalers.local.result_suffix``, which the worker backends use)."""
    # Not at import time: the upscalers read the settings, and this module loads with models.
    from .upscalers import get_upscaler
    from .upscalers.local import result_suffix

    source = raster_format(getattr(getattr(image, "file", None), "name", "")) or "PNG"
    budget = getattr(get_upscaler(), "memory_budget_bytes", None)
    suffix = result_suffix(source, "RGB", (output_width, output_height), budget)
    return FORMAT_NAMES[suffix]


def deliverable(image, output_width: int, output_height: int) -> Deliverable:
    """What a resolution delivers: format, approximate size, print size. The size is an
    estimate (output megapixels × ``BYTES_PER_MEGAPIXEL`` of the format): nothing is
    upscaled to answer."""
    fmt = delivered_format(image, output_width, output_height)
    pixels = output_width * output_height
    return Deliverable(
        format=fmt,
        output_width=output_width,
        output_height=output_height,
        approx_bytes=pixels * BYTES_PER_MEGAPIXEL[fmt] // 1_000_000,
    )


def claim_assets(request) -> bool:
    """True the first time in a request: the modal's CSS and JS go out once per page."""
    if request is None:
        return True
    if getattr(request, "_smi_assets_included", False):
        return False
    request._smi_assets_included = True
    return True


def for_sale_q() -> Q:
    """Images for sale, as a filter on the image model: on sale site-wide (sold on every
    live page that shows them, in any block, chooser field or rich text), or offered by a
    for-sale block on a live page (``SaleListing``). The library's badge, its filter, the
    chooser and the image's Sales panel all use this one definition."""
    via_block = SaleListing.objects.filter(via_block=True, page__live=True).values("image_id")
    return Q(smi_for_sale__isnull=False) | Q(pk__in=via_block)


def on_sale_ids(request) -> frozenset[int]:
    """Ids of the images for sale (``for_sale_q``), once per request (for badges)."""
    cached = getattr(request, "_smi_on_sale_ids", None) if request is not None else None
    if cached is None:
        cached = frozenset(
            get_image_model().objects.filter(for_sale_q()).values_list("pk", flat=True)
        )
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
