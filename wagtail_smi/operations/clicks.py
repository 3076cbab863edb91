"""Counting clicks on purchase buttons (analytics), honestly.

A click is a person opening the purchase dialog (the modal's ``track-click`` POST), or,
without JavaScript, the first view of an image's purchase page by one client within
``VIEW_WINDOW``: reloads, back-button visits and prefetches of the same page are one
click. Requests from known crawlers never count; they are recognised by the user-agent
patterns the ``crawlerdetect`` package maintains, not by a list of our own.

A counted click is buffered in Django's cache (``click_buffer``): no database work on the
request. ``flush_clicks`` writes the buffer to the table; the sweeper calls it, and so do
the reports before they read.
"""

from __future__ import annotations

from datetime import timedelta

from crawlerdetect import CrawlerDetect
from django.core.cache import caches

from .. import click_buffer
from ..catalog import OfferRef, SaleOffer
from ..conf import smi_settings
from ..models import ImageClick

#: A no-JavaScript purchase page seen again by the same client within this is not a click.
VIEW_WINDOW = timedelta(minutes=30)


def is_crawler(user_agent: str) -> bool:
    """Whether the user agent is a known bot, crawler or link checker."""
    return bool(user_agent) and CrawlerDetect().is_crawler(user_agent)


def record_click(offer: SaleOffer | OfferRef, *, user_agent: str = "") -> bool:
    """Count a click on the offer's button; returns whether it was counted."""
    if is_crawler(user_agent):
        return False
    ref = offer.ref()
    if not (
        smi_settings.BUFFER_CLICKS and click_buffer.add(ref.image_id, ref.page_id, ref.site_id)
    ):
        ImageClick.objects.create(
            image_ref=ref.image_id, page_ref=ref.page_id, site_ref=ref.site_id
        )
    return True


def flush_clicks() -> int:
    """Write the buffered clicks to the table; returns how many were written."""
    return click_buffer.flush()


def record_page_view(offer: SaleOffer, *, client: str, user_agent: str = "") -> bool:
    """Count a no-JavaScript purchase page view as a click, once per client (a hashed
    address) and image within ``VIEW_WINDOW``; returns whether it was counted."""
    if is_crawler(user_agent):
        return False
    cache = caches[smi_settings.RATE_LIMIT_CACHE]
    key = f"smi:view:{client}:{offer.image.pk}"
    if not cache.add(key, 1, timeout=int(VIEW_WINDOW.total_seconds())):
        return False
    return record_click(offer)
