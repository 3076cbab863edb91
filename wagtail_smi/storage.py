"""Private storage of delivered files.

Delivered files live in ``storages[WAGTAIL_SMI["PRIVATE_STORAGE"]]`` (any Django storage,
S3-compatible included), never under the public media URL. Names are built from the job,
never from anything a customer typed.
"""

from __future__ import annotations

import logging
from pathlib import Path

from django.core.files import File
from django.core.files.storage import storages
from django.utils.text import slugify

from .conf import smi_settings

logger = logging.getLogger(__name__)

CONTENT_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
}


def private_storage():
    return storages[smi_settings.PRIVATE_STORAGE]


def resolution_slug(job) -> str:
    """The resolution key as it may appear in a file name or a header (never quotes,
    slashes or line breaks, whatever an admin typed as the key)."""
    return slugify(job.resolution or "")[:40] or "image"


def store_result(job, path: Path) -> tuple[str, int, str]:
    """Copy a validated result into private storage; return (name, size, content type)."""
    suffix = path.suffix.lower()
    stem = slugify(job.image_title or f"image-{job.image_ref}")[:60] or "image"
    name = f"wagtail_smi/{job.id}/{stem}-{resolution_slug(job)}{suffix}"
    with path.open("rb") as f:
        saved = private_storage().save(name, File(f, name=Path(name).name))
    return saved, path.stat().st_size, CONTENT_TYPES.get(suffix, "application/octet-stream")


def delete_stored_file(name: str) -> None:
    if not name:
        return
    try:
        private_storage().delete(name)
    except Exception:  # a missing file is already what we want
        logger.warning("could not delete %s from private storage", name, exc_info=True)


def download_filename(job) -> str:
    """What the customer's browser saves the file as."""
    suffix = Path(job.result_path).suffix.lower() or ".bin"
    stem = slugify(job.image_title or "")[:80] or f"image-{job.image_ref}"
    return f"{stem}-{resolution_slug(job)}-{job.output_width}x{job.output_height}{suffix}"
