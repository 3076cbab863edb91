"""The ``WAGTAIL_SMI`` setting: one namespaced dict, merged over documented defaults.

Read values through ``smi_settings`` (``from wagtail_smi.conf import smi_settings``);
it reloads when Django's ``setting_changed`` fires, so ``override_settings`` works in tests.
Secrets (API keys, webhook secrets) live here, never in the database.
"""

from __future__ import annotations

import copy
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

DEFAULTS: dict[str, Any] = {
    # Payments: "dummy" (local fake checkout page), "stripe", or a dotted path to a
    # PaymentProvider subclass.
    "PAYMENT_BACKEND": "dummy",
    # The dummy provider is refused unless DEBUG is on or this is True.
    "ALLOW_DUMMY_PAYMENTS": False,
    "STRIPE": {
        "SECRET_KEY": "",
        "WEBHOOK_SECRET": "",
        # Base URL of the Stripe API, without /v1 (None: Stripe's own).
        "API_BASE": None,
        # The API version the installed stripe library (16.x) is built for.
        "API_VERSION": "2026-10-28.endive",
        "MAX_NETWORK_RETRIES": 2,
        # Stripe accepts 30 minutes to 24 hours.
        "CHECKOUT_EXPIRES_MINUTES": 60,
        "AUTOMATIC_TAX": False,
        "ALLOW_PROMOTION_CODES": False,
        "INVOICE_CREATION": False,
        # Ask for express consent to immediate delivery (EU right of withdrawal).
        "REQUIRE_TERMS_CONSENT": False,
        "ABANDONED_CHECKOUT_RECOVERY": False,
        # Largest webhook body accepted, in bytes.
        "WEBHOOK_MAX_BYTES": 512 * 1024,
    },
    # Upscaler backend, wagtail-localize style: a dotted CLASS and its OPTIONS.
    "UPSCALER": {
        "CLASS": "wagtail_smi.upscalers.local.LocalUpscaler",
        "OPTIONS": {},
    },
    # Absolute URL the outside world reaches the site at (webhooks, image URLs, emails).
    "PUBLIC_BASE_URL": "http://127.0.0.1:8000",
    # Allow fetching results from loopback/private addresses and over plain http.
    "ALLOW_PRIVATE_URLS": False,
    # Storage alias (settings.STORAGES) for delivered files; never the public media storage.
    "PRIVATE_STORAGE": "smi_private",
    # Public endpoints' rate limits, per client and scope: (requests, seconds).
    "RATE_LIMITS_ENABLED": True,
    "RATE_LIMITS": {
        "prices": (60, 60),
        "checkout": (10, 60),
        "click": (120, 60),
        "status": (60, 60),
        "download": (30, 60),
        "purchase_page": (60, 60),
        # "Email me a fresh link" forms posted, per client (every attempt counts).
        "fresh_link": (10, 3600),
    },
    # Cache alias used by the rate limiter.
    "RATE_LIMIT_CACHE": "default",
    # Count clicks in Django's cache and write them in batches (``click_buffer``); False
    # writes each click at once.
    "BUFFER_CLICKS": True,
    # Who the client is (rate limits, download logs), when the site sits behind reverse
    # proxies. Forwarded headers are never trusted by default: REMOTE_ADDR is the client.
    # TRUSTED_PROXIES: how many proxies in front of the site append to X-Forwarded-For;
    # the client is the entry the outermost of them added (counted from the right), so
    # entries a client forges to the left are ignored. A chain too short or not an IP
    # address falls back to REMOTE_ADDR.
    "TRUSTED_PROXIES": 0,
    # CLIENT_IP_HEADER: instead, a header the proxy sets to the client's address, e.g.
    # "X-Real-IP" (nginx: proxy_set_header X-Real-IP $remote_addr). Only for a proxy that
    # overwrites it on every request; it takes precedence over TRUSTED_PROXIES.
    "CLIENT_IP_HEADER": None,
    # Processing: a paid job not delivered within this many minutes needs attention.
    "JOB_DEADLINE_MINUTES": 60,
    # Business retries (network errors): attempts and exponential backoff with jitter.
    "MAX_ATTEMPTS": 5,
    "RETRY_BASE_SECONDS": 30,
    "RETRY_MAX_SECONDS": 900,
    # Upscaler polling when no callback arrives.
    "POLL_START_SECONDS": 30,
    "POLL_MAX_INTERVAL_SECONDS": 120,
    # A submission whose answer was lost (the upscaler may have it, and be paid for it)
    # is never sent again on its own: its callback is awaited this long, then an admin decides.
    "SUBMISSION_GRACE_MINUTES": 15,
    # Fetching results.
    "RESULT_MAX_BYTES": 300 * 1024 * 1024,
    "FETCH_TIMEOUT_SECONDS": 60,
    # Downloads: None for unlimited.
    "DOWNLOAD_LIMIT": None,
    # How a file that may be downloaded reaches the customer (docs/deployment.md):
    # "django" streams it from private storage (any storage, ranges included);
    # "redirect" answers 302 to a short-lived presigned URL of the storage (S3-compatible
    # storage through django-storages, with query-string signing); "x-accel-redirect"
    # (nginx) and "x-sendfile" (Apache, lighttpd) hand it to the web server in front.
    # X-Sendfile needs a local folder (FileSystemStorage).
    "DOWNLOAD_SERVE": "django",
    "X_ACCEL_REDIRECT_PREFIX": "/smi-private/",
    # How long a presigned URL of the "redirect" mode works, in seconds: long enough to
    # start the download, short enough that a shared URL is useless soon after.
    "DOWNLOAD_REDIRECT_SECONDS": 60,
    # A customer whose link expired can have a fresh one emailed (to the purchase email)
    # this many days after the expiry; the file is kept that long, then deleted by the
    # cleanup. 0: files are deleted as soon as their link expires, and no fresh link.
    "FRESH_LINK_DAYS": 7,
    # At most this many fresh links per order within this many seconds, whoever asks.
    "FRESH_LINKS_PER_ORDER": (3, 24 * 3600),
    # Customer-facing pages (purchase, order, download, checkout) extend this template. A
    # site names its own base template here; it must define the blocks ``title``,
    # ``extra_css`` (in <head>), ``content`` and ``extra_js``, as Wagtail's project
    # template does.
    "BASE_TEMPLATE": "wagtail_smi/storefront/base.html",
    # Seconds between refreshes of an order page in progress when JavaScript is off.
    "NO_SCRIPT_REFRESH_SECONDS": 10,
    # Unpaid checkouts older than this become abandoned.
    "ABANDON_AFTER_HOURS": 24,
    # The same browser asking again for the same image, page, resolution and email within
    # this many minutes gets its open checkout back instead of a second order (0: never).
    "CHECKOUT_REUSE_MINUTES": 10,
    # A paid order still not delivered this many hours after payment is refunded
    # automatically, unless an admin has taken it in hand (None: never).
    "AUTO_REFUND_AFTER_HOURS": 24,
    # Email sender (None: DEFAULT_FROM_EMAIL) and admin alert recipients (None: ADMINS).
    "FROM_EMAIL": None,
    "ADMIN_EMAILS": None,
}


def _merge(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(defaults)
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class SmiSettings:
    """Attribute access to the merged ``WAGTAIL_SMI`` dict (``smi_settings.PUBLIC_BASE_URL``)."""

    def __init__(self) -> None:
        self._values: dict[str, Any] | None = None

    @property
    def values(self) -> dict[str, Any]:
        if self._values is None:
            user = getattr(settings, "WAGTAIL_SMI", {}) or {}
            unknown = set(user) - set(DEFAULTS)
            if unknown:
                raise ImproperlyConfigured(
                    f"Unknown WAGTAIL_SMI keys: {', '.join(sorted(unknown))}"
                )
            self._values = _merge(DEFAULTS, user)
        return self._values

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(f"WAGTAIL_SMI has no setting {name!r}") from None

    def reload(self) -> None:
        self._values = None


smi_settings = SmiSettings()


def _reload_on_change(*, setting: str, **kwargs: Any) -> None:
    if setting == "WAGTAIL_SMI":
        smi_settings.reload()


setting_changed.connect(_reload_on_change)
