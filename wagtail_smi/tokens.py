"""Every secret the package hands out, in one place.

- **Order keys** (``?key=`` on the order page and ``job-status``) and **callback secrets**
  (in the upscaler's callback URL) are HMACs of the job id under ``SECRET_KEY``: nothing to
  store, nothing a database dump reveals. They are always made with the current key and
  accepted under ``SECRET_KEY_FALLBACKS`` too, so rotating the secret does not break links
  already emailed (Django's ``contrib.auth.tokens`` does the same).
- **Download tokens** are 64 URL-safe random characters; only their SHA-256 is stored.
- **Original URLs** for the upscaler are signed with ``django.core.signing`` (which honours
  the fallbacks itself) and expire.
"""

from __future__ import annotations

import hashlib
import re
import secrets

from django.conf import settings
from django.core import signing
from django.utils.crypto import constant_time_compare, salted_hmac

ACCESS_KEY_SALT = "wagtail_smi.access_key"
CALLBACK_SALT = "wagtail_smi.callback"
ORIGINAL_SALT = "wagtail_smi.original"
# How long a signed original URL stays valid: long enough for Upsampler's queue.
ORIGINAL_URL_MAX_AGE = 6 * 3600

TOKEN_LENGTH = 64
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{64}")


def _derived(salt: str, job_id, secret_key: str | None = None) -> str:
    return salted_hmac(salt, str(job_id), secret=secret_key, algorithm="sha256").hexdigest()[:40]


def _check_derived(salt: str, job_id, candidate: str | None) -> bool:
    if not candidate:
        return False
    # constant_time_compare works on bytes: a non-ASCII candidate is a mismatch, not a 500.
    return any(
        constant_time_compare(str(candidate), _derived(salt, job_id, secret_key))
        for secret_key in [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", ())]
    )


def access_key(job_id) -> str:
    """The ``key`` that unlocks an order's page and ``job-status``."""
    return _derived(ACCESS_KEY_SALT, job_id)


def check_access_key(job_id, key: str | None) -> bool:
    return _check_derived(ACCESS_KEY_SALT, job_id, key)


def callback_secret(job_id) -> str:
    """The secret in a job's upscaler callback URL."""
    return _derived(CALLBACK_SALT, job_id)


def check_callback_secret(job_id, secret: str | None) -> bool:
    return _check_derived(CALLBACK_SALT, job_id, secret)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def new_download_token() -> tuple[str, str]:
    """A fresh (token, sha256 hex) pair; ``token_urlsafe(48)`` is exactly 64 characters."""
    token = secrets.token_urlsafe(48)
    return token, hash_token(token)


def is_download_token(value) -> bool:
    return isinstance(value, str) and bool(TOKEN_RE.fullmatch(value))


def sign_original(job_id) -> str:
    return signing.dumps(str(job_id), salt=ORIGINAL_SALT, compress=False)


def unsign_original(signed: str) -> str | None:
    """The job id a signed original URL names, or None when forged or expired."""
    try:
        return signing.loads(signed, salt=ORIGINAL_SALT, max_age=ORIGINAL_URL_MAX_AGE)
    except signing.BadSignature:  # includes SignatureExpired
        return None
