"""The upscaler interface (wagtail-localize style: a small base class, CLASS + OPTIONS).

An asynchronous backend (Upsampler) implements ``submit`` and ``status``; a synchronous
one (Pillow, in the worker) sets ``synchronous = True`` and implements ``upscale``.
Errors are split so the pipeline knows whether trying again can help.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

from PIL import Image

from ..pricing import COST_BY_MEGAPIXELS

# Statuses reported by ``status()`` (Upsampler's own names, SPEC §6).
IN_QUEUE = "IN_QUEUE"
IN_PROGRESS = "IN_PROGRESS"
SUCCESS = "SUCCESS"
FAILED = "FAILED"
PENDING_STATUSES = frozenset({IN_QUEUE, IN_PROGRESS})


class UpscalerError(Exception):
    """Base class; ``code`` is a short machine-readable reason kept in the job's log."""

    code = "upscaler_error"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        if code:
            self.code = code


class RetryableUpscalerError(UpscalerError):
    """Timeouts, connection errors, 5xx, 429: trying again later may succeed.

    ``may_have_arrived`` matters for submissions, which cost money: ``False`` only when the
    request surely never reached the upscaler (connection refused, name not resolved, an
    answer refusing it such as 429 or 503), so submitting again cannot pay twice. The
    default, ``True``, covers everything ambiguous (a read timeout, a connection dropped
    after sending, an answer without a job id): the upscaler may have the job already.
    """

    code = "upscaler_unavailable"

    def __init__(self, message: str, *, code: str | None = None, may_have_arrived: bool = True):
        super().__init__(message, code=code)
        self.may_have_arrived = may_have_arrived


class FinalUpscalerError(UpscalerError):
    """Invalid key, insufficient credits, unsupported input: trying again will not help."""

    code = "upscaler_refused"


@dataclass(frozen=True)
class SubmitResult:
    external_id: str
    status: str
    credits: Decimal | None = None


@dataclass(frozen=True)
class StatusResult:
    status: str
    image_url: str = ""
    credits: Decimal | None = None
    error: str = ""

    @property
    def pending(self) -> bool:
        return self.status in PENDING_STATUSES


@dataclass(frozen=True)
class UpscaleRequest:
    """What a backend is asked to do, in plain values: backends never see the job, the
    models or the site's URLs, so they stay independent of the rest of the package."""

    #: The order's id, for logs and for a backend's own bookkeeping.
    reference: str
    factor: int
    output_width: int
    output_height: int
    #: The original's own absolute storage URL ("" when its storage has none).
    public_source_url: str = ""
    #: A signed, short-lived URL of the original served by the site.
    signed_source_url: str = ""
    #: Where an asynchronous backend reports back (carries the job's secret).
    callback_url: str = ""
    #: Opens the original file for reading (``with request.open_source() as f:``), for
    #: backends that upscale in the worker; None when the original was deleted.
    open_source: Callable[[], AbstractContextManager[BinaryIO]] | None = None
    #: The site's largest output, in megapixels.
    max_output_megapixels: int | None = None
    #: Called as ``on_progress(done, total)`` by a backend that upscales in the worker, as
    #: its work advances (tiles done of all tiles); the pipeline writes it to the order.
    on_progress: Callable[[int, int], None] | None = None

    @property
    def output_pixels(self) -> int:
        return self.output_width * self.output_height


class BaseUpscaler:
    """Subclasses get their ``OPTIONS`` dict as ``self.options``."""

    name = ""
    synchronous = False
    #: How a copy's cost is counted for margins: ``"megapixels"`` (a self-hosted backend,
    #: at ``cost_per_megapixel``) or ``"credits"`` (a service billing credits).
    cost_basis = COST_BY_MEGAPIXELS

    def __init__(self, options: dict[str, Any] | None = None):
        self.options = dict(options or {})

    @property
    def cost_per_megapixel(self) -> Decimal:
        """The shop's own cost of one output megapixel (electricity, machine time), in the
        major unit of its currency: ``OPTIONS["COST_PER_MEGAPIXEL"]``, 0 by default. A
        site setting overrides it (``SmiSiteSettings.cost_per_megapixel``)."""
        return Decimal(str(self.options.get("COST_PER_MEGAPIXEL") or "0"))

    @property
    def max_output_megapixels(self) -> int | None:
        """The largest output this backend can produce (``None``: no limit of its own).
        Quotes use it, so a size it cannot make is never sold."""
        return None

    def max_output_megapixels_for(self, factor: int) -> int | None:
        """The largest output at this enlargement factor, for a backend whose limit depends
        on it (work grows with the input's size, so it does): by default the same for all."""
        return self.max_output_megapixels

    def submit(self, request: UpscaleRequest) -> SubmitResult:
        raise NotImplementedError

    def status(self, external_id: str) -> StatusResult:
        raise NotImplementedError

    def upscale(self, request: UpscaleRequest, destination: Path) -> Path:
        """Synchronous backends: write the upscaled image under ``destination`` (a folder)."""
        raise NotImplementedError


_PIXEL_LIMIT_LOCK = threading.Lock()


@contextmanager
def pixel_limit(pixels: int) -> Iterator[None]:
    """Raise Pillow's decompression-bomb limit to ``pixels`` for the enclosed block only.

    ``Image.MAX_IMAGE_PIXELS`` is a process-wide global that also guards Wagtail's own
    uploads (an admin redeliver runs in the web process), so it is restored on exit. Pillow
    checks it in ``Image.open`` (the header), so keep the block to that call: other threads
    see the raised limit only for that long. Our own callers are serialised by a lock so
    two overlapping blocks cannot restore each other's value; a limit of ``None`` (the
    guard turned off by the project) or one already high enough is left alone.
    """
    with _PIXEL_LIMIT_LOCK:
        previous = Image.MAX_IMAGE_PIXELS
        if previous is not None and pixels > previous:
            Image.MAX_IMAGE_PIXELS = pixels
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = previous
