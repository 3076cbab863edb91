"""What an upscaler is asked, and a result produced outside the pipeline.

Backends get an ``UpscaleRequest`` of plain values (sizes, URLs, a way to open the
original, a callback for their progress), never the order itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from django.db import DatabaseError
from django.utils.translation import gettext as _

from .. import links
from ..fetching import fetch_result, temp_dir, validate_result
from ..models import JobStatus, PurchaseJob, SmiSiteSettings
from ..upscalers import SUCCESS, BaseUpscaler, FinalUpscalerError, UpscaleRequest, get_upscaler
from ..utils import absolute_url

logger = logging.getLogger(__name__)

# The order page polls every few seconds: writing progress more often would only load
# the database.
PROGRESS_INTERVAL_SECONDS = 3.0


def progress_writer(
    job_id, *, interval: float | None = None, clock=time.monotonic
) -> Callable[[int, int], None]:
    """A backend's ``on_progress(done, total)`` for this order: the share done is written to
    the order (``progress``, 0–100) for its page's progress bar, at the start, at most every
    ``interval`` seconds, and at the end. Only while the order is processing (an admin's
    redelivery of a finished order leaves it alone), and never at the cost of the upscale:
    a database error here is logged, not raised."""
    interval = PROGRESS_INTERVAL_SECONDS if interval is None else interval
    last_written: float | None = None

    def report(done: int, total: int) -> None:
        nonlocal last_written
        now = clock()
        finished = total > 0 and done >= total
        if last_written is not None and now - last_written < interval and not finished:
            return
        last_written = now
        percent = min(max(done * 100 // total, 0), 100) if total > 0 else 0
        try:
            PurchaseJob.objects.filter(pk=job_id, status=JobStatus.PROCESSING).update(
                progress=percent
            )
        except DatabaseError:
            logger.warning("job %s: could not record progress %s%%", job_id, percent)

    return report


def upscale_request(job: PurchaseJob) -> UpscaleRequest:
    """The job, as plain values an upscaler backend needs (it never sees the job)."""
    image = job.image
    public_url = ""
    if image is not None:
        try:
            public_url = image.file.url
        except Exception:  # storage without public URLs: the signed URL will do
            public_url = ""
        if public_url and not public_url.startswith(("https://", "http://")):
            public_url = absolute_url(public_url)
    site_limit = SmiSiteSettings.for_site(job.site).max_output_megapixels if job.site_id else 400
    return UpscaleRequest(
        reference=str(job.pk),
        factor=job.factor,
        output_width=job.output_width,
        output_height=job.output_height,
        public_source_url=public_url,
        signed_source_url=links.original_url(job),
        callback_url=links.callback_url(job),
        open_source=image.open_file if image is not None else None,
        max_output_megapixels=int(site_limit),
        on_progress=progress_writer(job.pk),
    )


def produce_result(job: PurchaseJob, upscaler: BaseUpscaler | None = None) -> Path:
    """A validated result file for a job whose upscaler has finished, outside the pipeline
    (an admin's redelivery): upscaled again here by a synchronous backend, or fetched from
    the upscaler's finished job. Raises ``UpscalerError`` or ``ResultRejected``."""
    upscaler = upscaler or get_upscaler()
    if upscaler.synchronous:
        path = upscaler.upscale(upscale_request(job), temp_dir())
    else:
        if not job.upscaler_job_id:
            raise FinalUpscalerError(_("The upscaler never accepted this order; retry it instead."))
        status = upscaler.status(job.upscaler_job_id)
        if status.status != SUCCESS:
            raise FinalUpscalerError(
                _("The upscaler has no result for this order (status: %(status)s).")
                % {"status": status.status or "?"}
            )
        path = fetch_result(status.image_url)
    return validate_result(path, job.output_width, job.output_height)
