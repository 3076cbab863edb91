"""What an upscaler is asked, and a result produced outside the pipeline.

Backends get an ``UpscaleRequest`` of plain values (sizes, URLs, a way to open the
original), never the order itself.
"""

from __future__ import annotations

from pathlib import Path

from django.utils.translation import gettext as _

from .. import links
from ..fetching import fetch_result, temp_dir, validate_result
from ..models import PurchaseJob, SmiSiteSettings
from ..upscalers import SUCCESS, BaseUpscaler, FinalUpscalerError, UpscaleRequest, get_upscaler
from ..utils import absolute_url


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
