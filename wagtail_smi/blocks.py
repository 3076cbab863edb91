"""StreamField blocks for editors, and the rendering they share with the template tags.

``SellableImageBlock`` renders a responsive rendition (never the original file), its
caption, and the purchase button of SPEC §1.1. Rendering a page of many of them costs no
more queries than the same page of plain image blocks: images and their renditions are
loaded in bulk (Wagtail's rendition cache first, then one query for the rest), and the
site's storefront settings are read once per request (and cached between requests).

The child blocks' names, types and arguments are frozen by the demo's migrations.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.db.models.signals import post_delete, post_save
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from wagtail import blocks
from wagtail.images.blocks import ImageChooserBlock

# Rendition filters used for the responsive image; `SRCSET_WIDTHS[1]` is the fallback src.
SRCSET_WIDTHS = (400, 800, 1200)
RENDITION_SPECS = tuple(f"width-{w}" for w in SRCSET_WIDTHS)
# Saving the settings clears this process's copy; other processes see a change within this.
SETTINGS_CACHE_SECONDS = 60


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

    def bulk_to_python(self, values):
        """Load every image of the stream in one query, with its renditions prefetched."""
        values = list(values)
        image_ids = [
            value.get("image") for value in values
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


# --- bulk loading ------------------------------------------------------------------------


def load_images(image_ids) -> dict[int, Any]:
    """Images by id, each with its responsive renditions prefetched (at most two queries)."""
    from wagtail.images import get_image_model

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
    from wagtail.models import Site

    from .models import SmiSiteSettings

    if request is not None and hasattr(request, "_smi_site_settings"):
        return request._smi_site_settings
    site = Site.find_for_request(request) if request is not None else None
    if site is None and page is not None:
        from .catalog import site_for_page

        found = site_for_page(page)
        site = found[0] if found else None
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


def _forget_settings(sender, instance, **kwargs):
    cache.delete(_settings_cache_key(instance.site_id))


post_save.connect(_forget_settings, sender="wagtail_smi.SmiSiteSettings",
                  dispatch_uid="wagtail_smi.blocks.settings_saved")
post_delete.connect(_forget_settings, sender="wagtail_smi.SmiSiteSettings",
                    dispatch_uid="wagtail_smi.blocks.settings_deleted")


@dataclass(frozen=True)
class Button:
    href: str
    text: str
    image_id: int
    page_id: int
    src: str
    width: int
    height: int


def purchase_href(image_id: int, page_id: int) -> str:
    return f"{reverse('wagtail_smi:purchase_page', args=[image_id])}?page={page_id}"


def button_for(request, image, page_id, *, rendition=None) -> Button | None:
    """The purchase button for an image on a page, or None when selling is switched off."""
    if image is None or not page_id:
        return None
    settings_row = storefront_settings(request)
    if settings_row is None or not settings_row.enabled:
        return None
    if rendition is None:
        rendition = image.get_rendition(RENDITION_SPECS[1])
    return Button(
        href=purchase_href(image.pk, page_id),
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
