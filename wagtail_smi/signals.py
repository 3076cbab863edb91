"""Signal receivers, connected from ``AppConfig.ready()`` (never at import time)."""

from __future__ import annotations

from django.core.signals import request_finished
from django.db.models.signals import post_delete, post_save
from wagtail.signals import page_published, page_unpublished

from . import catalog, rendering, rich_text


def connect() -> None:
    # What is for sale follows publishing (``SaleListing``).
    page_published.connect(catalog.on_published, dispatch_uid="wagtail_smi.catalog.published")
    page_unpublished.connect(catalog.on_unpublished, dispatch_uid="wagtail_smi.catalog.unpublished")
    # Cached storefront settings are re-read when they change.
    for signal, uid in ((post_save, "saved"), (post_delete, "deleted")):
        signal.connect(
            rendering.forget_settings,
            sender="wagtail_smi.SmiSiteSettings",
            dispatch_uid=f"wagtail_smi.settings_{uid}",
        )
    # Rich text knows the page it is served on only for the length of the request.
    request_finished.connect(rich_text.forget_page, dispatch_uid="wagtail_smi.forget_page")
