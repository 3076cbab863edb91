"""Per-client rate limits for the public endpoints, on Django's cache (fixed windows).

Scopes and their ``(requests, seconds)`` live in ``WAGTAIL_SMI["RATE_LIMITS"]``;
``RATE_LIMITS_ENABLED = False`` (``SMI_RATE_LIMITS=0`` in the demo) turns them off.
A client is ``utils.client_ip``: ``REMOTE_ADDR``, or behind reverse proxies what
``TRUSTED_PROXIES`` / ``CLIENT_IP_HEADER`` say, the same identity the download log uses.
"""

from __future__ import annotations

import functools
import time

from django.core.cache import caches

from .conf import smi_settings
from .http import rate_limited
from .utils import client_ip, hash_ip


def check_rate_limit(request, scope: str) -> int | None:
    """Count this request; return the seconds to wait when over the limit, else None."""
    if not smi_settings.RATE_LIMITS_ENABLED:
        return None
    limit, window = smi_settings.RATE_LIMITS[scope]
    now = int(time.time())
    window_start = now - now % window
    key = f"smi:rl:{scope}:{hash_ip(client_ip(request))}:{window_start}"
    cache = caches[smi_settings.RATE_LIMIT_CACHE]
    cache.add(key, 0, timeout=window + 1)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=window + 1)
        count = 1
    if count > limit:
        return max(window_start + window - now, 1)
    return None


def rate_limit(scope: str):
    """View decorator: answer 429 with ``Retry-After`` when the client is over the limit."""

    def decorator(view):
        @functools.wraps(view)
        def wrapped(request, *args, **kwargs):
            retry_after = check_rate_limit(request, scope)
            if retry_after is not None:
                return rate_limited(retry_after)
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
