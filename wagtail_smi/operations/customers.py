"""Customers, known by their email address: erasure requests.

An erasure request removes what identifies the person from every order they placed, and
keeps what the shop must keep (amounts, currencies, dates, what was sold), so reports and
accounts do not change. The payment provider holds its own copy of the payment (Stripe's
customer and charge records): that one is erased in the provider's dashboard.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import TextField
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.translation import gettext as _

from ..models import DownloadEvent, EventCode, JobEvent, PurchaseJob
from ..workflow import record_event
from .common import Actor
from .errors import InvalidInput, NotFound

logger = logging.getLogger(__name__)

#: The admin operation's name (``operations.require_permission``).
ANONYMISE = "anonymise"
#: What replaces the address wherever it was written in an order's log.
REMOVED = "[removed]"


def orders_of(email: str):
    """Every order placed with this address (case-insensitive, as people type it)."""
    return PurchaseJob.objects.filter(email__iexact=email.strip())


def anonymise_customer(email: str, *, reason: str, actor: Actor = None) -> int:
    """Remove a customer's personal data from all their orders; returns how many.

    Cleared: the email address, the language, the hashed IP addresses of their downloads,
    the address wherever an order's log quotes it. Kept: amounts, currencies, dates, what
    was bought and the payment provider's ids (the shop's accounts need them). Each order
    gets ``anonymised_at`` and an event saying who did it and why (without the address).
    """
    email = (email or "").strip()
    if not email:
        raise InvalidInput(_("Give the customer's email address."), field="email")
    if not reason.strip():
        raise InvalidInput(_("Say why (for example: erasure request of 3 March)."), field="reason")
    now = timezone.now()
    with transaction.atomic():
        jobs = list(orders_of(email).select_for_update().values_list("pk", flat=True))
        if not jobs:
            raise NotFound(_("No order was placed with this address."))
        PurchaseJob.objects.filter(pk__in=jobs).update(
            email="", locale="", anonymised_at=now, updated_at=now
        )
        DownloadEvent.objects.filter(job_id__in=jobs).exclude(ip_hash="").update(ip_hash="")
        _scrub_event_data(jobs, email)
        for job_id in jobs:
            record_event(
                job_id,
                EventCode.ANONYMISED,
                {"reason": reason.strip(), "orders": len(jobs)},
                actor=actor,
            )
    logger.info("personal data removed from %s orders", len(jobs))
    return len(jobs)


def _scrub_event_data(job_ids, email: str) -> None:
    """The log is append-only, except here: an erasure request outranks it."""
    needle = email.lower()
    quoting = (
        JobEvent.objects.filter(job_id__in=job_ids)
        .annotate(text=Cast("data", TextField()))
        .filter(text__icontains=needle)
    )
    for event in quoting:
        JobEvent.objects.filter(pk=event.pk).update(data=_without(event.data, needle))


def _without(value, needle: str):
    if isinstance(value, dict):
        return {key: _without(item, needle) for key, item in value.items()}
    if isinstance(value, list):
        return [_without(item, needle) for item in value]
    if isinstance(value, str) and needle in value.lower():
        start = value.lower().index(needle)
        return _without(value[:start] + REMOVED + value[start + len(needle) :], needle)
    return value
