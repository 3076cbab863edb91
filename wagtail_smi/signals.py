"""Signals: the ones a site can listen to, and our receivers (connected from
``AppConfig.ready()``, never at import time).

Extension signals, sent once the change that caused them has committed, with the order as
``order`` (a ``PurchaseJob``) and ``sender=PurchaseJob``:

- ``order_paid``: the payment arrived (not when an admin retries an order);
- ``order_completed``: the file was delivered (by the pipeline, a redelivery or by hand);
- ``order_refunded``: the order was refunded in full (by the shop, the provider's
  dashboard, or recorded as refunded outside the system);
- ``order_needs_attention``: an admin has to look at the order.

They follow the order's event log: every status change is one ``JobEvent``, written in the
transaction that makes it, so every path that changes an order announces it, and a change
that is rolled back announces nothing. A receiver that raises is logged and does not stop
the others. See docs/processing.md for an example receiver.
"""

from __future__ import annotations

import logging

from django.apps import apps
from django.core.signals import request_finished, setting_changed
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models.signals import post_delete, post_migrate, post_save
from django.dispatch import Signal
from wagtail.images import get_image_model
from wagtail.signals import page_published, page_unpublished, post_page_move

from . import catalog, offer_cache, queue, rich_text
from .models import ImageForSale, ImagePrice, JobEvent, JobStatus, PurchaseJob, SmiSiteSettings
from .models.states import UNPAID

logger = logging.getLogger(__name__)

order_paid = Signal()
order_completed = Signal()
order_refunded = Signal()
order_needs_attention = Signal()


def signal_for(from_status: str, to_status: str) -> Signal | None:
    """The extension signal a status change announces, if any."""
    if to_status == JobStatus.PAID:
        return order_paid if from_status in UNPAID else None
    return {
        JobStatus.COMPLETED: order_completed,
        JobStatus.REFUNDED: order_refunded,
        JobStatus.NEEDS_ATTENTION: order_needs_attention,
    }.get(to_status)


def _send(signal: Signal, order: PurchaseJob) -> None:
    for receiver, outcome in signal.send_robust(sender=PurchaseJob, order=order):
        if isinstance(outcome, Exception):
            logger.error(
                "order %s: receiver %r failed",
                order.pk,
                receiver,
                exc_info=(type(outcome), outcome, outcome.__traceback__),
            )


def announce_transition(sender, instance: JobEvent, created: bool, raw: bool = False, **kwargs):
    """Receiver (``post_save`` of ``JobEvent``): a transition's extension signal, on commit."""
    if raw or not created or instance.kind != JobEvent.Kind.TRANSITION:
        return
    signal = signal_for(instance.from_status, instance.to_status)
    if signal is None or not signal.has_listeners(PurchaseJob):
        return
    order = instance.job  # the order as the transition saved it
    transaction.on_commit(lambda: _send(signal, order), using=kwargs.get("using"), robust=True)


def ensure_schedules_after_migrate(sender, using=DEFAULT_DB_ALIAS, verbosity=1, **kwargs):
    """Receiver (``post_migrate``): the sweeper and cleanup schedules exist after every
    ``migrate``, so a site that never ran ``smi_schedules`` still processes its orders."""
    if not queue.schedules_table_exists(using):
        return
    stdout = kwargs.get("stdout")
    for name, outcome in queue.ensure_schedules(using):
        if outcome == "up to date":
            continue
        logger.info("schedule %s: %s", name, outcome)
        if verbosity >= 1 and stdout is not None:
            stdout.write(f"  wagtail-smi schedule {outcome}: {name}")


def forget_offers_on_setting(sender, setting, **kwargs):
    """Receiver (``setting_changed``): the upscaler and its limits shape the offers. Not a
    database change, so no commit to wait for (and maybe no database to ask)."""
    if setting == "WAGTAIL_SMI":
        offer_cache.invalidate_now()


def connect_offer_cache() -> None:
    """Whatever can change an offer or its prices makes the cached offers stale."""
    # Not at import time: ``wagtail.models`` is read only once the app registry is ready.
    from wagtail.models import Collection, Page, Site

    for signal, name in ((page_published, "published"), (page_unpublished, "unpublished")):
        signal.connect(offer_cache.invalidate, dispatch_uid=f"wagtail_smi.offers.page_{name}")
    post_page_move.connect(offer_cache.invalidate, dispatch_uid="wagtail_smi.offers.page_moved")
    # Every page model, not every model: a receiver for all senders would end Django's
    # fast deletes everywhere.
    pages = tuple(model for model in apps.get_models() if issubclass(model, Page))
    models = (SmiSiteSettings, get_image_model(), ImagePrice, ImageForSale, Collection, Site)
    for model in pages:
        post_delete.connect(
            offer_cache.invalidate,
            sender=model,
            dispatch_uid=f"wagtail_smi.offers.{model._meta.label_lower}_deleted",
        )
    for model in models:
        for signal, uid in ((post_save, "saved"), (post_delete, "deleted")):
            signal.connect(
                offer_cache.invalidate,
                sender=model,
                dispatch_uid=f"wagtail_smi.offers.{model._meta.label_lower}_{uid}",
            )
    setting_changed.connect(forget_offers_on_setting, dispatch_uid="wagtail_smi.offers.setting")


def connect() -> None:
    # Cached offers and prices follow every change that shapes them (``offer_cache``).
    connect_offer_cache()
    # What is for sale follows publishing (``SaleListing``).
    page_published.connect(catalog.on_published, dispatch_uid="wagtail_smi.catalog.published")
    page_unpublished.connect(catalog.on_unpublished, dispatch_uid="wagtail_smi.catalog.unpublished")
    # Cached storefront settings follow the offer cache's version, which a saved or deleted
    # settings row moves on (``connect_offer_cache``).
    # Rich text knows the page it is served on only for the length of the request.
    request_finished.connect(rich_text.forget_page, dispatch_uid="wagtail_smi.forget_page")
    # Status changes are announced to the site's receivers.
    post_save.connect(
        announce_transition, sender=JobEvent, dispatch_uid="wagtail_smi.announce_transition"
    )
    # The schedules cannot be forgotten: every migrate creates or repairs them.
    post_migrate.connect(
        ensure_schedules_after_migrate,
        sender=apps.get_app_config("wagtail_smi"),
        dispatch_uid="wagtail_smi.ensure_schedules",
    )
