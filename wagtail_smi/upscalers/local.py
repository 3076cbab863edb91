"""The ``local`` upscaler: Pillow's Lanczos filter in the worker, no network.

Good for the demo and small shops; it enlarges rather than invents detail.

Memory is bounded, and the bound is known before anyone pays. The output is resized in
horizontal strips (Pillow's ``box`` argument samples across strip edges, so the result is
the plain resize's), which leaves the output image itself as the one large allocation:
about ``BYTES_PER_OUTPUT_PIXEL`` bytes of worker memory per output pixel while it is
encoded (Pillow keeps RGB and RGBA alike at 4 bytes a pixel). ``OPTIONS["MAX_MEMORY_MB"]``
(default 1024; ``None`` for no limit) caps the output size accordingly; the quotes use that
cap (``max_output_megapixels``), so a size this backend cannot produce is shown unavailable
and never sold. The size is checked again here, before allocating, as a last guard.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

from PIL import Image

from .base import BaseUpscaler, FinalUpscalerError, UpscaleRequest, pixel_limit

# Formats we write back unchanged; anything else becomes PNG (lossless).
_KEEP_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}
_SAVE_FORMATS = {".jpg": "JPEG", ".png": "PNG", ".webp": "WEBP"}
# WebP cannot hold an image wider or taller than this, and its encoder needs far more memory
# (about 14 bytes per pixel, measured): an output WebP cannot hold, or could not encode
# within the memory budget, is written as PNG instead.
WEBP_MAX_SIDE = 16383
WEBP_BYTES_PER_OUTPUT_PIXEL = 15
# Worker memory per output pixel, measured with bench/upscale_memory.py (peak RSS growth
# of 4.0-4.1 bytes a pixel for JPEG and PNG outputs), with a margin.
BYTES_PER_OUTPUT_PIXEL = 4.5
DEFAULT_MAX_MEMORY_MB = 1024
# Output pixels resized at a time: a strip and the rows of the original it reads.
STRIP_PIXELS = 1_000_000
# Half-width of Pillow's Lanczos window, in source pixels when enlarging.
LANCZOS_SUPPORT = 3.0
MEGAPIXEL = 1_000_000


def resize_in_strips(
    source: Image.Image, size: tuple[int, int], *, strip_pixels: int = STRIP_PIXELS
) -> Image.Image:
    """``source.resize(size, LANCZOS)``, computed a strip of output rows at a time.

    Pillow resizes in two passes, horizontal then vertical, each rounded to 8 bits. Each
    strip does the same: the band of original rows its filter reads is widened (the
    horizontal pass, row by row as in the plain resize), then resized to the strip's rows
    (the vertical pass, ``box`` placing it exactly). So the strips meet without a seam and
    the result is the plain resize's, while only the output, one band and one strip are
    held: never the full-width intermediate image of the plain resize.
    """
    width, height = size
    rows = max(1, strip_pixels // max(width, 1))
    if rows >= height:
        return source.resize(size, Image.Resampling.LANCZOS)
    # Like Image.resize: work on premultiplied alpha, converted back strip by strip.
    work_mode = {"RGBA": "RGBa", "LA": "La"}.get(source.mode, source.mode)
    work = source.convert(work_mode) if work_mode != source.mode else source
    scale = work.height / height
    support = LANCZOS_SUPPORT * max(scale, 1.0)
    result = Image.new(source.mode, size)
    for top in range(0, height, rows):
        bottom = min(top + rows, height)
        first = max(0, math.floor(top * scale - support) - 1)
        last = min(work.height, math.ceil(bottom * scale + support) + 1)
        band = work.crop((0, first, work.width, last))
        if band.width != width:
            band = band.resize((width, band.height), Image.Resampling.LANCZOS)
        box = (0, top * scale - first, width, bottom * scale - first)
        strip = band.resize((width, bottom - top), Image.Resampling.LANCZOS, box=box)
        band.close()
        if strip.mode != source.mode:
            strip = strip.convert(source.mode)
        result.paste(strip, (0, top))
        strip.close()
    if work is not source:
        work.close()
    return result


def upscale_file(
    source_file,
    destination: Path,
    size: tuple[int, int],
    *,
    memory_budget_bytes: int | None = None,
    strip_pixels: int = STRIP_PIXELS,
) -> Path:
    """Write ``source_file`` upscaled to exactly ``size`` into a new file under ``destination``.

    The caller has checked ``size`` against the memory budget. Keeps JPEG, PNG and WebP
    (WebP only when it can hold the size and encode it within the budget); anything else
    becomes PNG.
    """
    width, height = size
    # The original is smaller than the output, which the caller bounds: lift Pillow's bomb
    # guard that far, only while the header is read (see pixel_limit).
    with pixel_limit(width * height):
        original = Image.open(source_file)
    with original:
        fmt = original.format or "PNG"
        source = original.convert(working_mode(original.mode))
    suffix = result_suffix(fmt, source.mode, size, memory_budget_bytes)
    try:
        result = resize_in_strips(source, size, strip_pixels=strip_pixels)
    finally:
        source.close()
    try:
        return save_result(result, destination, prefix="local-", suffix=suffix)
    finally:
        result.close()


def working_mode(mode: str) -> str:
    """The mode an original is enlarged in: RGBA when it may carry transparency, else RGB."""
    return "RGBA" if mode in {"RGBA", "LA", "P"} else "RGB"


def result_suffix(
    source_format: str, mode: str, size: tuple[int, int], memory_budget_bytes: int | None
) -> str:
    """The result's format, shared by the backends that upscale in the worker: the
    original's when it is JPEG, PNG or WebP, else PNG; PNG too for transparency in a JPEG,
    and for a WebP it cannot hold or could not encode within the memory budget."""
    width, height = size
    suffix = _KEEP_FORMATS.get(source_format, ".png")
    if suffix == ".jpg" and mode == "RGBA":
        suffix = ".png"
    if suffix == ".webp" and (
        max(width, height) > WEBP_MAX_SIDE
        or (
            memory_budget_bytes is not None
            and width * height * WEBP_BYTES_PER_OUTPUT_PIXEL > memory_budget_bytes
        )
    ):
        suffix = ".png"
    return suffix


def save_result(image: Image.Image, destination: Path, *, prefix: str, suffix: str) -> Path:
    """Write ``image`` to a new file under ``destination``, in the format ``suffix`` names."""
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - the caller owns the file
        dir=destination, prefix=prefix, suffix=suffix, delete=False
    )
    try:
        with handle:
            write_image(image, handle, suffix)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    return Path(handle.name)


def write_image(image: Image.Image, file, suffix: str) -> None:
    """Encode ``image`` into an open file, in the format ``suffix`` names."""
    save_format = _SAVE_FORMATS[suffix]
    options = {"quality": 92} if save_format in {"JPEG", "WEBP"} else {}
    image.save(file, format=save_format, **options)


class LocalUpscaler(BaseUpscaler):
    name = "local"
    synchronous = True

    @property
    def memory_budget_bytes(self) -> int | None:
        budget = self.options.get("MAX_MEMORY_MB", DEFAULT_MAX_MEMORY_MB)
        return None if budget is None else int(float(budget) * 1024 * 1024)

    @property
    def max_output_megapixels(self) -> int | None:
        budget = self.memory_budget_bytes
        return None if budget is None else int(budget / BYTES_PER_OUTPUT_PIXEL // MEGAPIXEL)

    def upscale(self, request: UpscaleRequest, destination: Path) -> Path:
        if request.open_source is None:
            raise FinalUpscalerError("the original image was deleted", code="original_missing")
        width, height = request.output_width, request.output_height
        limits = [request.max_output_megapixels, self.max_output_megapixels]
        largest = min((limit for limit in limits if limit is not None), default=None)
        if largest is not None and width * height > largest * MEGAPIXEL:
            raise FinalUpscalerError(
                f"output {width}×{height} is over the largest output this site and upscaler "
                f"can produce ({largest} megapixels)",
                code="output_too_large",
            )
        with request.open_source() as f:
            return upscale_file(
                f, destination, (width, height), memory_budget_bytes=self.memory_budget_bytes
            )
