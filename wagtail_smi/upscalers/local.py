"""The ``local`` upscaler: Pillow's Lanczos filter in the worker, no network.

Good for the demo and small shops; it enlarges rather than invents detail. Memory is
bounded: an output over the site's largest allowed size is refused before allocating.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from PIL import Image

from .base import BaseUpscaler, FinalUpscalerError, pixel_limit

# Formats we write back unchanged; anything else becomes PNG (lossless).
_KEEP_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}


def _max_output_pixels(job) -> int:
    from ..models import SmiSiteSettings

    megapixels = 400
    if job.site_id:
        megapixels = SmiSiteSettings.for_site(job.site).max_output_megapixels
    return int(megapixels) * 1_000_000


class LocalUpscaler(BaseUpscaler):
    name = "local"
    synchronous = True

    def upscale(self, job, destination: Path) -> Path:
        image = job.image
        if image is None:
            raise FinalUpscalerError("the original image was deleted", code="original_missing")
        width, height = job.output_width, job.output_height
        if width * height > _max_output_pixels(job):
            raise FinalUpscalerError(
                f"output {width}×{height} is over the site's largest output",
                code="output_too_large",
            )
        # The original is smaller than the output, which the check above bounds: lift
        # Pillow's bomb guard that far, only while the header is read (see pixel_limit).
        with image.open_file() as f:
            with pixel_limit(width * height):
                original = Image.open(f)
            with original:
                fmt = original.format or "PNG"
                source = original.convert("RGBA" if original.mode in {"RGBA", "LA", "P"} else "RGB")
        suffix = _KEEP_FORMATS.get(fmt, ".png")
        if suffix == ".jpg" and source.mode == "RGBA":
            suffix = ".png"
        result = source.resize((width, height), Image.Resampling.LANCZOS)
        source.close()
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - the caller owns the file
            dir=destination, prefix="local-", suffix=suffix, delete=False
        )
        with handle:
            save_format = {".jpg": "JPEG", ".png": "PNG", ".webp": "WEBP"}[suffix]
            options = {"quality": 92} if save_format in {"JPEG", "WEBP"} else {}
            result.save(handle, format=save_format, **options)
        result.close()
        return Path(handle.name)
