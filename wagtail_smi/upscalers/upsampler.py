"""The ``upsampler`` upscaler: Upsampler's Precise Upscale API (SPEC §6) over ``requests``.

OPTIONS: ``API_KEY`` (required), ``API_BASE`` (with its path, default
``https://upsampler.com/api/v1``), ``TIMEOUT`` (seconds per request, default 20) and
``ORIGINAL_URLS``: ``"public"`` (the original's own storage URL, made absolute with
``PUBLIC_BASE_URL``) or ``"signed"`` (a short-lived signed URL of ours, for storage that
is not public). Public is the default and falls back to signed when the storage has no URL.

Each worker process (each thread, in a threaded web server) keeps one ``requests.Session``
(``api_session``), so the polls and submissions of one worker reuse a kept-alive connection
instead of a new TCP and TLS handshake per call. Only idempotent calls are retried by it
(a status poll: once more, at once, on a connection that could not be made or a
500/502/503/504); a submission is sent at most once per call whatever happens, since
Upsampler charges for every submission it receives: the job's own retry logic decides,
knowing whether the request may have arrived.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from decimal import Decimal, InvalidOperation

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError
from urllib3.util.retry import Retry

from .base import (
    FAILED,
    BaseUpscaler,
    FinalUpscalerError,
    RetryableUpscalerError,
    StatusResult,
    SubmitResult,
    UpscaleRequest,
)

logger = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://upsampler.com/api/v1"

# HTTP answers that no retry will fix, and the reason recorded for each.
_FINAL_STATUSES = {
    400: "unsupported_input",
    401: "invalid_api_key",
    402: "insufficient_credits",
    403: "invalid_api_key",
    404: "unknown_upscale",
    422: "unsupported_input",
}


# A gateway that answers these may have passed the request on before it gave up: the
# upscaler may have the job. Every other 5xx, and 429, is Upsampler refusing the request.
_GATEWAY_STATUSES = frozenset({502, 504})


def _never_sent(exc: requests.RequestException) -> bool:
    """Whether the request surely never reached Upsampler: no connection was made (refused,
    unreachable, connect timeout), the name did not resolve, or its certificate was refused.
    A read timeout or a connection dropped after sending is not such a case."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    seen, pending = set(), [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, (NewConnectionError, ssl.SSLCertVerificationError)):
            return True  # NameResolutionError is a NewConnectionError too
        pending.extend([getattr(current, "reason", None), current.__cause__, current.__context__])
        pending.extend(
            arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException)
        )
    return False


class IdempotentRetry(Retry):
    """urllib3's retries for the methods in ``allowed_methods`` only: any other call (the
    submission POST) is never sent twice, not even after a connection that failed, so it
    fails exactly as it would without a retry policy and the caller decides."""

    def increment(self, method=None, url=None, *args, **kwargs):
        if method and not self._is_method_retryable(method):
            return Retry(0, read=False).increment(method, url, *args, **kwargs)
        return super().increment(method, url, *args, **kwargs)


# Status polls: one more try, at once, after a failed connection or a server error. A
# read timeout is not retried here (it would hold the worker for another full timeout):
# the job polls again later. 429 neither: Upsampler asks us to slow down.
API_RETRY = IdempotentRetry(
    total=1,
    connect=1,
    read=False,
    status=1,
    other=0,
    allowed_methods=frozenset({"GET"}),
    status_forcelist=frozenset({500, 502, 503, 504}),
    backoff_factor=0,
    respect_retry_after_header=False,
    raise_on_status=False,
)

_sessions = threading.local()


def api_session() -> requests.Session:
    """This thread's session for Upsampler's API: connections kept alive between calls.

    Made lazily, and again in a forked child (django-q2 forks its workers), so no two
    processes ever share a socket."""
    pid = os.getpid()
    session = getattr(_sessions, "session", None)
    if session is None or getattr(_sessions, "pid", None) != pid:
        session = requests.Session()
        adapter = HTTPAdapter(max_retries=API_RETRY, pool_connections=4, pool_maxsize=1)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        _sessions.session, _sessions.pid = session, pid
    return session


def _credits(value) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def source_url(request: UpscaleRequest, mode: str = "public") -> str:
    """The URL Upsampler fetches the ORIGINAL from (not a rendition): the storage's own
    URL, or the site's signed one when asked for or when the storage has none."""
    if mode != "signed" and request.public_source_url:
        return request.public_source_url
    return request.signed_source_url


class UpsamplerUpscaler(BaseUpscaler):
    name = "upsampler"
    # Upsampler bills credits: a copy costs its credits × the site's cost per credit.
    cost_basis = "credits"

    @property
    def api_base(self) -> str:
        return (self.options.get("API_BASE") or DEFAULT_API_BASE).rstrip("/")

    @property
    def timeout(self) -> float:
        return float(self.options.get("TIMEOUT", 20))

    def _request(self, method: str, path: str, **kwargs) -> dict:
        key = self.options.get("API_KEY") or ""
        if not key:
            raise FinalUpscalerError("no Upsampler API key configured", code="invalid_api_key")
        try:
            response = api_session().request(
                method,
                f"{self.api_base}{path}",
                headers={"Authorization": f"Bearer {key}", "Accept": "application/json"},
                timeout=self.timeout,
                allow_redirects=False,
                **kwargs,
            )
        except requests.Timeout as exc:
            raise RetryableUpscalerError(
                f"Upsampler timed out: {exc.__class__.__name__}",
                may_have_arrived=not _never_sent(exc),
            ) from exc
        except requests.RequestException as exc:
            raise RetryableUpscalerError(
                f"Upsampler unreachable: {exc.__class__.__name__}",
                may_have_arrived=not _never_sent(exc),
            ) from exc
        code = response.status_code
        if code == 429 or code >= 500:
            raise RetryableUpscalerError(
                f"Upsampler answered HTTP {code}", may_have_arrived=code in _GATEWAY_STATUSES
            )
        if code in _FINAL_STATUSES or 400 <= code < 500:
            detail = ""
            try:
                body = response.json()
                if isinstance(body, dict):  # a list or a string has no "error" to show
                    detail = str(body.get("error") or "")[:200]
            except (ValueError, AttributeError):
                pass
            raise FinalUpscalerError(
                f"Upsampler answered HTTP {code} {detail}".strip(),
                code=_FINAL_STATUSES.get(code, "upscaler_refused"),
            )
        try:
            data = response.json()
        except ValueError as exc:
            raise RetryableUpscalerError(
                "Upsampler answered with something that is not JSON"
            ) from exc
        if not isinstance(data, dict):
            raise RetryableUpscalerError("Upsampler answered with an unexpected JSON value")
        return data

    def submit(self, request: UpscaleRequest) -> SubmitResult:
        payload = {
            "input": {
                "imageUrl": source_url(request, self.options.get("ORIGINAL_URLS", "public")),
                "inputImageType": "universal",
                "upscaleFactor": request.factor,
            },
            "webhook": request.callback_url,
        }
        data = self._request("POST", "/precise-upscale", json=payload)
        status = str(data.get("status") or "")
        if status == FAILED:
            raise FinalUpscalerError(
                f"Upsampler refused the image: {str(data.get('error') or '')[:200]}",
                code="unsupported_input",
            )
        external_id = str(data.get("id") or "")
        if not external_id:
            raise RetryableUpscalerError("Upsampler's answer had no job id")
        return SubmitResult(external_id, status, _credits(data.get("creditCost")))

    def status(self, external_id: str) -> StatusResult:
        data = self._request("GET", f"/status/{requests.utils.quote(external_id, safe='')}")
        return StatusResult(
            status=str(data.get("status") or ""),
            image_url=str(data.get("imageUrl") or ""),
            credits=_credits(data.get("creditCost")),
            error=str(data.get("error") or "")[:500],
        )
