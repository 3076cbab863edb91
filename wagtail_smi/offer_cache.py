"""A versioned cache for the storefront's hot paths: what the price endpoint answers and
which offer a click counts for, served without database work once warm.

Every entry's key carries a version number kept in Django's cache. A change that can alter
an offer (a page published, unpublished, moved or deleted; site settings, licences or
collection prices saved; an image changed or deleted, its own prices or its site-wide sale
changed; a collection or a site changed; the ``WAGTAIL_SMI`` setting overridden) bumps the
version, so every process reads fresh entries on its next request: nothing has to be found
and deleted, and old entries simply expire. The version is bumped when the change is made
and again once it commits, so a request that read the database in between cannot leave a
stale entry under the new number.

The storefront's site settings, which pages read to render their buttons, are kept the
same way (``rendering.storefront_settings``): one notion of "the shop changed".

Correct across processes only when they share the cache: with Django's default
local-memory cache the version and the entries are per process, and a change made in one
process (the admin) reaches another (a second web worker) only when its entries expire
(``ENTRY_SECONDS``). Production uses a shared cache such as Redis (docs/performance.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import TypeVar

from django.core.cache import cache
from django.db import transaction

T = TypeVar("T")

VERSION_KEY = "wagtail_smi:offers:version"
# How long an entry lives; also how stale another process can be on a per-process cache.
ENTRY_SECONDS = 300
_MISSING = object()


def _first_version() -> int:
    # Above any number used before (microseconds since the epoch): a version key that was
    # evicted or lost with a restart cannot bring an earlier life's entries back.
    return time.time_ns() // 1000


def version() -> int:
    """The current version (one cache read)."""
    current = cache.get(VERSION_KEY)
    if current is None:
        cache.add(VERSION_KEY, _first_version(), timeout=None)
        current = cache.get(VERSION_KEY)
    return int(current) if current is not None else _first_version()


def _bump() -> None:
    try:
        cache.incr(VERSION_KEY)
    except ValueError:  # not there (yet, or evicted): a fresh, higher number
        cache.add(VERSION_KEY, _first_version(), timeout=None)


def invalidate_now() -> None:
    """Every cached offer is stale, for a change outside any transaction (the settings)."""
    _bump()


def invalidate(*args, **kwargs) -> None:
    """Every cached offer is stale: bump now, and again when the change commits.

    Also a signal receiver (``signals.connect``), hence the ignored arguments."""
    _bump()
    transaction.on_commit(_bump, robust=True)


def remember(
    parts: tuple[Hashable, ...], build: Callable[[], T], *, timeout: int = ENTRY_SECONDS
) -> T:
    """The entry for ``parts`` under the current version, built (and kept ``timeout``
    seconds) when missing. ``build`` may return None: that answer is cached too."""
    key = f"wagtail_smi:offers:{version()}:" + ":".join(str(part) for part in parts)
    found = cache.get(key, _MISSING)
    if found is not _MISSING:
        return found
    value = build()
    cache.set(key, value, timeout)
    return value
