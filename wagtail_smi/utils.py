"""Small helpers shared by the HTTP edges: absolute URLs and client identity."""

from __future__ import annotations

import ipaddress
from urllib.parse import urljoin

from django.core.exceptions import ImproperlyConfigured
from django.utils.crypto import salted_hmac

from .conf import smi_settings

MAX_ID = 2**31 - 1  # the largest id every supported database stores in an integer column


def parse_id(value) -> int | None:
    """A positive database id from text ("42"), or None: only ASCII digits, in range.

    ``str.isdigit()`` alone accepts "²" and other digits ``int()`` refuses.
    """
    text = str(value).strip() if value is not None else ""
    if not (text.isascii() and text.isdigit()):
        return None
    number = int(text)
    return number if 0 < number <= MAX_ID else None


def absolute_url(path: str) -> str:
    """``path`` on the site's public base URL (what Stripe, Upsampler and emails see)."""
    base = smi_settings.PUBLIC_BASE_URL.rstrip("/") + "/"
    return urljoin(base, path.lstrip("/"))


def client_ip(request) -> str:
    """The client's address: what rate limits and download logs key on.

    ``REMOTE_ADDR`` unless ``WAGTAIL_SMI`` says which proxies to trust (``CLIENT_IP_HEADER``
    or ``TRUSTED_PROXIES``). Only entries our own proxies wrote are read, counted from the
    right: a client can put anything to the left of them, so the leftmost entry never wins.
    Anything missing or malformed falls back to ``REMOTE_ADDR`` (one shared bucket for all
    such requests) rather than to a value the client chose.
    """
    remote = request.META.get("REMOTE_ADDR", "") or "unknown"
    header, proxies = smi_settings.CLIENT_IP_HEADER, smi_settings.TRUSTED_PROXIES
    if isinstance(proxies, bool) or not isinstance(proxies, int) or proxies < 0:
        raise ImproperlyConfigured(
            "WAGTAIL_SMI['TRUSTED_PROXIES'] must be a whole number, 0 or more."
        )
    if header:
        # The proxy sets (or appends to) this header: its own entry is the last one.
        chain, depth = _header_entries(request, header), 1
    elif proxies:
        chain, depth = _header_entries(request, "X-Forwarded-For"), proxies
    else:
        return remote
    if len(chain) < depth:
        return remote
    return _normalised_ip(chain[-depth]) or remote


def _header_entries(request, header: str) -> list[str]:
    key = "HTTP_" + header.strip().upper().replace("-", "_")
    return [entry.strip() for entry in request.META.get(key, "").split(",")]


def _normalised_ip(text: str) -> str | None:
    """An IP address in canonical form (ports and IPv6 brackets removed), or None."""
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.partition(":")[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def hash_ip(ip: str) -> str:
    """A salted, non-reversible stand-in for an IP address (for logs and rate limits)."""
    return salted_hmac("wagtail_smi.ip", ip, algorithm="sha256").hexdigest()[:32]
