"""Private storage of delivered files.

Delivered files live in ``storages[WAGTAIL_SMI["PRIVATE_STORAGE"]]`` (any Django storage,
S3-compatible included), never under the public media URL. Names are built from the job,
never from anything a customer typed, and every stored result gets a name of its own:
object storages overwrite a name that exists (django-storages' S3 default), and a second
copy stored under the first one's name would replace, then delete, the delivered file.

Nothing here assumes a local file: files are written, read, measured and deleted through
the storage API; only ``X-Sendfile`` needs a local path (``local_path``), and the
``redirect`` download mode a storage that signs URLs (``signed_download_url``).
"""

from __future__ import annotations

import logging
import secrets
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
    unique = secrets.token_hex(4)
    name = f"wagtail_smi/{job.id}/{stem}-{resolution_slug(job)}-{unique}{suffix}"
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


def local_path(name: str) -> str | None:
    """The file's path on this machine, or None when the private storage keeps its files
    elsewhere (an object storage has no path for a web server to send)."""
    try:
        return private_storage().path(name)
    except NotImplementedError:
        return None


def is_local() -> bool:
    return local_path("wagtail_smi") is not None


def signing_problem() -> str:
    """Why the private storage cannot give presigned download URLs ("" when it can).

    Only django-storages' S3 storage (AWS S3 and the S3-compatible services) is known to
    sign a URL that also sets the answer's ``Content-Disposition``; with query-string
    signing off, or behind a custom domain, its URLs are public or ignore those headers.
    """
    files = private_storage()
    try:
        # Here, not at the top: django-storages (the s3 extra) and boto3 are optional.
        from storages.backends.s3 import S3Storage
    except ImportError:  # django-storages is not installed: no storage of its kind either
        S3Storage = None  # noqa: N806
    if S3Storage is None or not isinstance(files, S3Storage):
        return f"{files.__class__.__name__} does not sign download URLs"
    if not files.querystring_auth:
        return "its querystring_auth is off, so its URLs are not signed"
    if files.custom_domain:
        return "it has a custom_domain, whose URLs cannot set the download's headers"
    return ""


def signed_download_url(name: str, *, filename: str, content_type: str, seconds: int) -> str:
    """A presigned GET URL of a delivered file that works for ``seconds``; the storage
    answers it as an attachment named ``filename``, never cached. Raises ``ValueError``
    when the storage cannot sign (``signing_problem``)."""
    problem = signing_problem()
    if problem:
        raise ValueError(problem)
    return private_storage().url(
        name,
        parameters={
            "ResponseContentDisposition": f'attachment; filename="{filename}"',
            "ResponseContentType": content_type,
            "ResponseCacheControl": "no-store, private",
        },
        expire=max(int(seconds), 1),
    )
