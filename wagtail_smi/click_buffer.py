"""Clicks counted in Django's cache and written to ``ImageClick`` in batches.

A click is one atomic ``incr`` of a counter per (minute, site, image, page): no database
work on the request. ``flush()`` turns the counters into rows, one per click, stamped with
the minute they were made in; the sweeper calls it, and the reports call it before they
read, so their figures stay exact.

The counters live in the cache, not in a process, so a worker restart loses nothing; a
flush that fails (the database is down) leaves them where they were. The cache's keys
cannot be listed portably, so a counter is registered once, when it is created, in a
numbered slot (``SEQ``); the flusher reads the new slots into its list of pending
counters, which only it writes (one flusher at a time, under ``LOCK``), and forgets a
counter once its minute is well past and it is drained.

Shared by all processes only when the cache is: with Django's default local-memory cache
each process buffers its own clicks, and only the sweeper's own process's buffer reaches
the table (production uses a shared cache such as Redis, docs/performance.md). A cache
that evicts entries (local memory beyond ``MAX_ENTRIES``) can drop counted clicks.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from .models import ImageClick

logger = logging.getLogger(__name__)

PREFIX = "wagtail_smi:clicks"
SEQ = f"{PREFIX}:seq"
STATE = f"{PREFIX}:state"
LOCK = f"{PREFIX}:flushing"
# A drained counter is forgotten once its minute is this far behind: later clicks cannot
# land in it any more.
RETIRE_AFTER = timedelta(minutes=5)
# A slot handed out but never filled (its process died between the two steps) is skipped
# after this long.
GAP_SECONDS = 60
LOCK_SECONDS = 300
BATCH_SIZE = 1000


def _counter_key(minute: datetime, site_id: int | None, image_id: int, page_id: int) -> str:
    return f"{PREFIX}:n:{minute:%Y%m%d%H%M}:{site_id or 0}:{image_id}:{page_id}"


def _parse_counter_key(key: str) -> tuple[datetime, int | None, int, int]:
    stamp, site, image, page = key[len(PREFIX) + 3 :].split(":")
    minute = datetime.strptime(stamp, "%Y%m%d%H%M").replace(tzinfo=UTC)
    return minute, (int(site) or None), int(image), int(page)


def _slot_key(slot: int) -> str:
    return f"{PREFIX}:slot:{slot}"


def _register(key: str) -> None:
    cache.add(SEQ, 0, timeout=None)
    slot = cache.incr(SEQ)
    cache.set(_slot_key(slot), key, timeout=None)


def add(image_id: int, page_id: int, site_id: int | None, now: datetime | None = None) -> bool:
    """Count one click (cache work only); False when the cache cannot keep counters (a
    ``DummyCache``), and the caller writes the click itself."""
    minute = (now or timezone.now()).astimezone(UTC).replace(second=0, microsecond=0)
    key = _counter_key(minute, site_id, image_id, page_id)
    try:
        if cache.add(key, 0, timeout=None):
            _register(key)
        try:
            cache.incr(key)
        except ValueError:  # retired or evicted between the two calls: start it again
            if cache.add(key, 1, timeout=None):
                _register(key)
            else:
                cache.incr(key)
    except ValueError:
        return False
    return True


def _read_new_slots(state: dict, now: float) -> list[str]:
    """Move the counters registered since the last flush into ``state["pending"]``;
    returns the slots read, to delete once the state is saved."""
    last = cache.get(SEQ) or 0
    if last < state["read"]:  # the sequence was lost (cache restarted): start again
        state["read"], state["gap"] = 0, None
    wanted = list(range(state["read"] + 1, last + 1))
    if not wanted:
        return []
    found = cache.get_many([_slot_key(slot) for slot in wanted])
    for slot in wanted:
        key = found.get(_slot_key(slot))
        if key is None:
            gap_slot, since = state["gap"] or (slot, now)
            if gap_slot != slot:
                gap_slot, since = slot, now
            if now - since < GAP_SECONDS:
                state["gap"] = (gap_slot, since)
                break  # being registered right now: read it next time
            logger.warning("click buffer: slot %s was never filled; skipped", slot)
        elif key not in state["pending"]:
            state["pending"].append(key)
        state["read"], state["gap"] = slot, None
    return [_slot_key(slot) for slot in wanted if slot <= state["read"]]


def _write(drained: dict[str, int]) -> None:
    """One row per click, stamped with its minute (``created_at`` is set on insert, so
    the minute is written afterwards, one update per minute)."""
    by_minute: dict[datetime, list[ImageClick]] = {}
    for key, count in drained.items():
        minute, site_id, image_id, page_id = _parse_counter_key(key)
        by_minute.setdefault(minute, []).extend(
            ImageClick(image_ref=image_id, page_ref=page_id, site_ref=site_id) for _ in range(count)
        )
    for minute, rows in by_minute.items():
        created = ImageClick.objects.bulk_create(rows, batch_size=BATCH_SIZE)
        pks = [row.pk for row in created if row.pk is not None]
        for start in range(0, len(pks), BATCH_SIZE):
            ImageClick.objects.filter(pk__in=pks[start : start + BATCH_SIZE]).update(
                created_at=minute
            )


def _write_and_drain(drained: dict[str, int]) -> None:
    """Rows and counters change together: counters are drained inside the transaction,
    and put back if it does not commit."""
    taken: dict[str, int] = {}
    try:
        with transaction.atomic():
            _write(drained)
            for key, count in drained.items():
                cache.decr(key, count)
                taken[key] = count
    except Exception:
        for key, count in taken.items():  # the rows were not kept: neither are these
            cache.incr(key, count)
        raise


def flush() -> int:
    """Write the buffered clicks to ``ImageClick``; returns how many. Another flush
    running at the same time makes this one return 0 at once."""
    if not cache.add(LOCK, 1, timeout=LOCK_SECONDS):
        return 0
    try:
        state = cache.get(STATE) or {"read": 0, "pending": [], "gap": None}
        now = timezone.now()
        read = _read_new_slots(state, now.timestamp())
        cache.set(STATE, state, timeout=None)
        cache.delete_many(read)
        counts = cache.get_many(state["pending"])
        drained = {key: int(counts[key]) for key in state["pending"] if counts.get(key)}
        if drained:
            _write_and_drain(drained)
        # Forget counters whose minute is well past and that hold nothing more.
        retire_before = now - RETIRE_AFTER
        left = cache.get_many(state["pending"])
        kept, retired = [], []
        for key in state["pending"]:
            old = _parse_counter_key(key)[0] < retire_before
            if key not in left or (old and not left[key]):
                retired.append(key)
            else:
                kept.append(key)
        cache.delete_many(retired)
        state["pending"] = kept
        cache.set(STATE, state, timeout=None)
        return sum(drained.values())
    finally:
        cache.delete(LOCK)
