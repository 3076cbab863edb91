"""What is for sale where: ``SaleListing`` kept in step with published pages.

At publish time the page's published content is walked once (StreamField blocks, image
chooser fields, images embedded in rich text) and its listings are replaced; unpublishing
removes them and deleting a page cascades. ``sale_offer()`` then answers "is image X for
sale on live page Y, and at which resolutions" with one indexed query.

Works with any page model: nothing here imports ``wagtail.models.Page`` at import time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from django.db import models, transaction
from django.db.models import Q
from wagtail import blocks
from wagtail.fields import RichTextField, StreamField
from wagtail.images import get_image_model
from wagtail.images.blocks import ImageBlock, ImageChooserBlock
from wagtail.rich_text.rewriters import FIND_EMBED_TAG, extract_attrs

from . import offer_cache, pricing
from .blocks import SellableImageBlock
from .models import ImageForSale, ImagePrice, SaleListing, SmiSiteSettings
from .models.catalog import SaleRefusal
from .upscalers import for_upscaler

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Found:
    """An image found in a page's content."""

    image_id: int
    via_block: bool = False
    resolutions: tuple[str, ...] = ()


@dataclass(frozen=True)
class OfferRef:
    """Which image on which page of which site an offer is: what a click records."""

    image_id: int
    page_id: int
    site_id: int | None

    def ref(self) -> OfferRef:
        return self


@dataclass(frozen=True)
class SaleOffer:
    """An image for sale on a live page: what checkout and the price endpoint need."""

    image: Any
    page: Any
    site: Any
    # Resolution keys the offer is restricted to; empty: every enabled resolution.
    resolutions: tuple[str, ...]
    site_settings: SmiSiteSettings | None = None

    def settings(self) -> SmiSiteSettings:
        return self.site_settings or site_settings(self.site)

    def ref(self) -> OfferRef:
        return OfferRef(self.image.pk, self.page.pk, getattr(self.site, "pk", None))

    def refusal(self) -> SaleRefusal | None:
        """Why the image cannot be sold at all (not a raster image, too small), or None."""
        return self.settings().sale_refusal(self.image)

    def rules(self) -> pricing.PricingRules:
        """The site's price list as the configured upscaler changes it (size limits, cost)."""
        return for_upscaler(self.settings().pricing_rules())

    def overrides(self) -> pricing.PriceOverrides:
        return price_overrides(self.image, self.settings())

    def licences(self) -> tuple[pricing.LicenceOption, ...]:
        """The licence tiers a buyer chooses from, the default marked."""
        return self.settings().licence_options()

    def default_licence_key(self) -> str:
        chosen = pricing.default_licence(self.licences())
        return chosen.key if chosen is not None else ""

    def quotes(self) -> tuple[dict[str, pricing.Quote], str]:
        """Every quote this offer allows, and the currency: the one source of the prices
        the dialog, the checkout, the emails and the admin show. Sizes come from the stored
        image, never from the client; the image's own prices and its collection's win over
        the site's strategy; each quote carries its price per licence and what the copy
        costs the shop. Sizes the upscaler cannot produce are unavailable, and so is
        everything for an image that cannot be sold (``refusal``), with the reason."""
        rules = self.rules()
        quotes = pricing.quote_all(
            self.image.width,
            self.image.height,
            rules,
            only=self.resolutions or None,
            overrides=self.overrides(),
        )
        refused = self.refusal()
        if refused is not None:
            quotes = {
                key: replace(quote, available=False, reason=refused.message)
                for key, quote in quotes.items()
            }
        return quotes, rules.currency


def image_offer(image, site, site_settings: SmiSiteSettings | None = None) -> SaleOffer:
    """An image priced for a site without a page (the admin's sales panel and previews):
    every enabled resolution, with the image's and its collection's prices. The settings
    preview passes the unsaved settings being edited as ``site_settings``."""
    return SaleOffer(image=image, page=None, site=site, resolutions=(), site_settings=site_settings)


# --- price overrides ---------------------------------------------------------------------


def image_prices(image) -> dict[str, int]:
    """The prices set for this image itself, per resolution key (minor units)."""
    return dict(
        ImagePrice.objects.filter(image_id=image.pk).values_list("resolution", "price_cents")
    )


def set_image_prices(image, prices: dict[str, int | None]) -> dict[str, int]:
    """Set (an amount in minor units) or clear (None) the image's own prices per resolution
    key; keys not given are left as they are. Returns the prices now set."""
    with transaction.atomic():
        for key, cents in prices.items():
            if cents is None:
                ImagePrice.objects.filter(image_id=image.pk, resolution=key).delete()
            else:
                ImagePrice.objects.update_or_create(
                    image_id=image.pk, resolution=key, defaults={"price_cents": int(cents)}
                )
    return image_prices(image)


def collection_prices(image, site_settings: SmiSiteSettings) -> dict[str, int]:
    """The prices the site sets for the image's collection, per resolution key: for each
    key, the nearest collection up the tree (the image's own first) that has one."""
    by_collection = site_settings.collection_price_map()
    collection_id = getattr(image, "collection_id", None)
    if not by_collection or not collection_id:
        return {}
    # Not at import time: ``wagtail.models`` is read only once the app registry is ready,
    # whatever base page model the site uses (see the module docstring).
    from wagtail.models import Collection

    path = Collection.objects.filter(pk=collection_id).values_list("path", flat=True).first()
    if not path:
        return {}
    step = Collection.steplen
    ancestors = dict(
        Collection.objects.filter(
            path__in=[path[:end] for end in range(step, len(path) + 1, step)]
        ).values_list("path", "pk")
    )
    found: dict[str, int] = {}
    for ancestor_path in sorted(ancestors, key=len):  # farthest first: nearer ones win
        found.update(by_collection.get(ancestors[ancestor_path], {}))
    return found


def price_overrides(image, site_settings: SmiSiteSettings) -> pricing.PriceOverrides:
    return pricing.PriceOverrides(
        image=image_prices(image), collection=collection_prices(image, site_settings)
    )


# --- walking content -------------------------------------------------------------------


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, dict):  # ImageBlock's {"image": id, ...}
        return _as_int(value.get("image"))
    pk = getattr(value, "pk", None)
    return pk if isinstance(pk, int) else None


def images_in_rich_text(html: str | None) -> Iterator[Found]:
    for match in FIND_EMBED_TAG.finditer(html or ""):
        attrs = extract_attrs(match.group(1))
        if attrs.get("embedtype") == "image":
            image_id = _as_int(attrs.get("id"))
            if image_id:
                yield Found(image_id)


def images_in_block(block: blocks.Block, raw: Any) -> Iterator[Found]:
    """Walk a block's raw (JSON-ish) value: no database access, no rendering."""
    if raw is None:
        return
    if isinstance(block, SellableImageBlock):
        yield from _sellable_image(raw)
    elif isinstance(block, (ImageBlock, ImageChooserBlock)):
        image_id = _as_int(raw)
        if image_id:
            yield Found(image_id)
    elif isinstance(block, blocks.RichTextBlock):
        yield from images_in_rich_text(raw if isinstance(raw, str) else getattr(raw, "source", ""))
    else:
        for child, child_raw in _children(block, raw):
            yield from images_in_block(child, child_raw)


def _sellable_image(raw: Any) -> Iterator[Found]:
    if not isinstance(raw, dict):
        return
    image_id = _as_int(raw.get("image"))
    if image_id and raw.get("for_sale", True):
        keys = tuple(str(k) for k in (raw.get("resolutions") or ()))
        yield Found(image_id, via_block=True, resolutions=keys)


def _children(block: blocks.Block, raw: Any) -> Iterator[tuple[blocks.Block, Any]]:
    """A container block's children, each with its own raw value (other blocks have none)."""
    if isinstance(block, blocks.StreamBlock):
        for item in raw or ():
            if isinstance(item, dict) and item.get("type") in block.child_blocks:
                yield block.child_blocks[item["type"]], item.get("value")
    elif isinstance(block, blocks.ListBlock):
        for item in raw or ():
            if isinstance(item, dict) and item.get("type") == "item" and "value" in item:
                item = item["value"]
            yield block.child_block, item
    elif isinstance(block, blocks.StructBlock) and isinstance(raw, dict):
        for name, child in block.child_blocks.items():
            yield child, raw.get(name)


def images_in_page(page) -> Iterator[Found]:
    """Every image the page's (published) content shows."""
    image_model = get_image_model()
    for field in page._meta.get_fields():
        if isinstance(field, StreamField):
            value = getattr(page, field.attname, None)
            if value is None:
                continue
            raw = list(value.raw_data) if hasattr(value, "raw_data") else value
            yield from images_in_block(field.stream_block, raw)
        elif isinstance(field, RichTextField):
            yield from images_in_rich_text(getattr(page, field.attname, ""))
        elif (
            isinstance(field, models.ForeignKey)
            and field.related_model is image_model
            and not field.auto_created
        ):
            image_id = getattr(page, field.attname, None)
            if image_id:
                yield Found(image_id)


def merge(found: Iterable[Found]) -> dict[int, Found]:
    """One row per image: a for-sale block wins; restrictions of several blocks unite."""
    merged: dict[int, Found] = {}
    for item in found:
        current = merged.get(item.image_id)
        if current is None or (item.via_block and not current.via_block):
            merged[item.image_id] = item
        elif item.via_block and current.via_block:
            if not item.resolutions or not current.resolutions:
                keys: tuple[str, ...] = ()  # one block offers everything
            else:
                keys = tuple(dict.fromkeys(current.resolutions + item.resolutions))
            merged[item.image_id] = Found(item.image_id, True, keys)
    return merged


# --- maintaining listings --------------------------------------------------------------


def update_listings(page) -> int:
    """Replace a live page's listings with what its published content shows."""
    page = page.specific if hasattr(page, "specific") else page
    if not page.live:
        return clear_listings(page)
    found = merge(images_in_page(page))
    existing = set(get_image_model().objects.filter(pk__in=found).values_list("pk", flat=True))
    rows = [
        SaleListing(
            page_id=page.pk,
            image_id=item.image_id,
            via_block=item.via_block,
            resolutions=list(item.resolutions),
        )
        for item in found.values()
        if item.image_id in existing
    ]
    with transaction.atomic():
        SaleListing.objects.filter(page_id=page.pk).delete()
        SaleListing.objects.bulk_create(rows)
    return len(rows)


def clear_listings(page) -> int:
    SaleListing.objects.filter(page_id=page.pk).delete()
    return 0


def rebuild_all_listings() -> int:
    """Walk every live page again (after an upgrade, or content made before the signals)."""
    # Not at import time: ``wagtail.models`` is read only once the app registry is ready,
    # whatever base page model the site uses (see the module docstring).
    from wagtail.models import Page

    count = 0
    SaleListing.objects.exclude(page__live=True).delete()
    for page in Page.objects.live().specific().iterator(chunk_size=200):
        count += update_listings(page)
    return count


def on_published(sender, instance, **kwargs):
    """Signal receiver (``signals.connect``)."""
    update_listings(instance)


def on_unpublished(sender, instance, **kwargs):
    """Signal receiver (``signals.connect``). Deleting a page (or an image) cascades to its
    ``SaleListing`` rows."""
    clear_listings(instance)


# --- answering ---------------------------------------------------------------------------


def sale_offer(image_id: int, page_id: int) -> SaleOffer | None:
    """The offer for this image on this page, or None when it is not for sale there.

    "For sale" means: the page is live and its published content offers the image, either
    through a for-sale block or because the image is on sale site-wide (``ImageForSale``).
    One query for the listing (with image and page), one for the site and its settings.
    """
    listing = (
        SaleListing.objects.select_related("image", "page")
        .filter(image_id=image_id, page_id=page_id, page__live=True)
        .filter(Q(via_block=True) | Q(image__smi_for_sale__isnull=False))
        .first()
    )
    if listing is None:
        return None
    found = site_for_page(listing.page)
    if found is None:
        return None
    site, settings_row = found
    resolutions = tuple(listing.resolutions or ()) if listing.via_block else ()
    return SaleOffer(
        image=listing.image,
        page=listing.page,
        site=site,
        resolutions=resolutions,
        site_settings=settings_row,
    )


def selling_offer_ref(image_id: int, page_id: int) -> OfferRef | None:
    """Which offer a click on this image and page counts for, when the image is for sale
    there and the site is selling; from the versioned cache (``offer_cache``) when warm."""

    def look_up() -> OfferRef | None:
        offer = sale_offer(image_id, page_id)
        if offer is None or not offer.settings().enabled:
            return None
        return offer.ref()

    return offer_cache.remember(("ref", image_id, page_id), look_up)


def site_for_page(page) -> tuple[Any, SmiSiteSettings] | None:
    """The ``Site`` a page belongs to (deepest site root above it) and its settings row.

    Site root paths come from Wagtail's cache; the settings row and its site are one query.
    """
    # Not at import time: ``wagtail.models`` is read only once the app registry is ready,
    # whatever base page model the site uses (see the module docstring).
    from wagtail.models import Site

    best = None
    for root in Site.get_site_root_paths():
        if page.url_path.startswith(root.root_path):
            if best is None or len(root.root_path) > len(best.root_path):
                best = root
    if best is None:
        return None
    settings_row = (
        SmiSiteSettings.objects.select_related("site").filter(site_id=best.site_id).first()
    )
    if settings_row is not None:
        return settings_row.site, settings_row
    site = Site.objects.filter(pk=best.site_id).first()
    if site is None:
        return None
    return site, SmiSiteSettings.for_site(site)  # created once, with the defaults


def site_settings(site) -> SmiSiteSettings:
    return SmiSiteSettings.for_site(site)


def is_on_sale_site_wide(image) -> bool:
    return ImageForSale.objects.filter(image=image).exists()
