"""Small helpers shared by the HTTP edges: absolute URLs and client identity."""

from __future__ import annotations

from urllib.parse import urljoin

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
    """The client's address as Django sees it.

    Behind a proxy, put a middleware that sets ``REMOTE_ADDR`` from your proxy's trusted
    header; trusting ``X-Forwarded-For`` here would let clients pick their own identity.
    """
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def hash_ip(ip: str) -> str:
    """A salted, non-reversible stand-in for an IP address (for logs and rate limits)."""
    return salted_hmac("wagtail_smi.ip", ip, algorithm="sha256").hexdigest()[:32]
