"""Delivering a result and everything that happens to a delivery afterwards.

``install_result`` is the one procedure that puts a file in front of a customer, for the
pipeline and for an admin's redelivery alike: store the file, issue a fresh token, record
it on the order under the row lock, then (after the commit) remove the file it replaced
and email the link. The rest: resend a link (an admin's, or a customer's fresh link after
expiry), revoke access, retry a download email that could not be sent, and delete files
whose time is up.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.translation import gettext as _

from .. import emails, metadata, storage, tokens
from ..conf import smi_settings
from ..fetching import ResultRejected, validate_result
from ..models import EventCode, JobEvent, JobStatus, PurchaseJob, SmiSiteSettings
from ..progress import fresh_link_possible
from ..upscalers import UpscalerError
from ..workflow import events_of, locked_job, record_event, transition, update_job
from .common import Actor, JobId, after_commit
from .errors import NotAllowed, OperationError
from .upscaling import produce_result

logger = logging.getLogger(__name__)

S = JobStatus
# How often, and for how long, the sweeper retries a download email that was not sent.
EMAIL_RETRY_EVERY = timedelta(minutes=15)
EMAIL_RETRY_FOR = timedelta(hours=24)
READY_EMAIL = "download_ready"


class DeliveryError(OperationError):
    """A delivery operation that cannot be done (the message says why)."""

    code = "delivery_failed"


def download_expiry_hours(job: PurchaseJob) -> int:
    if job.site_id:
        return SmiSiteSettings.for_site(job.site).download_expiry_hours
    return 24


def token_fields(job: PurchaseJob) -> tuple[str, dict]:
    """A new token and the order fields that go with it (expiry from now, limit, count)."""
    token, digest = tokens.new_download_token()
    return token, {
        "token_hash": digest,
        "token_expires_at": timezone.now() + timedelta(hours=download_expiry_hours(job)),
        "download_limit": smi_settings.DOWNLOAD_LIMIT,
        "download_count": 0,
    }


def install_result(
    job_id: JobId,
    path: Path,
    *,
    from_states: Iterable[str],
    code: str,
    actor: Actor = None,
    **extra_fields: Any,
) -> PurchaseJob | None:
    """Store a validated result and deliver it: the one way a file reaches a customer.

    ``from_states``: the states the order may be in (the pipeline: processing; an admin's
    redelivery: completed or needs attention). Re-checked under the row lock: when the
    order moved on meanwhile, the stored copy is removed again and None is returned, so a
    replayed callback or a re-run task never delivers or emails twice. An order not yet
    completed is moved to completed; a completed one gets the new file in place. The file
    it replaces is deleted, and the link emailed, once the change has committed.

    What is stored is a copy carrying the order's rights in its metadata (``metadata``);
    when they cannot be written, the result as it came, and the delivery's event says so
    (``rights_metadata: false``).
    """
    job = PurchaseJob.objects.select_related("site").get(pk=job_id)
    if job.status not in from_states:
        return None
    delivered_file = with_rights(job, path)
    try:
        name, size, content_type = storage.store_result(job, delivered_file)
    finally:
        if delivered_file != path:
            delivered_file.unlink(missing_ok=True)
    event_data = {"size_bytes": size}
    if delivered_file == path:
        event_data["rights_metadata"] = False
    with locked_job(job_id) as current:
        if current.status not in from_states:
            storage.delete_stored_file(name)
            return None
        token, fields = token_fields(current)
        fields.update(
            result_path=name,
            result_size_bytes=size,
            result_content_type=content_type,
            file_deleted_at=None,
            access_revoked_at=None,
            last_error="",
            **extra_fields,
        )
        old_path = current.result_path
        if current.status == S.COMPLETED:
            current = update_job(current, **fields)
            record_event(current, code, event_data, actor=actor)
        else:
            current = transition(
                current,
                S.COMPLETED,
                code=code,
                data=event_data,
                actor=actor,
                only_from=from_states,
                **fields,
            )
        if old_path and old_path != name:
            after_commit(lambda: storage.delete_stored_file(old_path))
        delivered = current
        after_commit(lambda: send_ready_email(delivered.pk, token))
    return current


def with_rights(job: PurchaseJob, path: Path) -> Path:
    """The validated result with the order's rights in its metadata (a new file beside it,
    checked again as a result of the ordered size), or ``path`` itself when they cannot
    be written: the customer paid for the image, and gets it either way; the log and the
    order's event tell the admins."""
    try:
        stamped = metadata.stamped_copy(path, metadata.rights_for(job))
    except Exception:
        logger.exception("job %s: the licence could not be written into the file", job.pk)
        return path
    try:
        return validate_result(stamped, job.output_width, job.output_height)
    except Exception:
        stamped.unlink(missing_ok=True)  # validate_result removes a copy it rejects
        logger.exception("job %s: the file with its licence is no longer valid", job.pk)
        return path


def redeliver(job_id: JobId, *, actor: Actor = None) -> PurchaseJob:
    """Admin: rebuild a lost delivery (file deleted or missing, or stuck after the result
    arrived) from the upscaler's result or, for a local upscaler, from the original; then
    a new link is emailed. Runs in the caller's process."""
    redeliverable = {S.COMPLETED, S.NEEDS_ATTENTION}
    job = PurchaseJob.objects.select_related("site", "image").get(pk=job_id)
    if job.status not in redeliverable:
        raise DeliveryError(
            _("Only completed orders or orders that need attention can be redelivered.")
        )
    try:
        path = produce_result(job)
    except (UpscalerError, ResultRejected) as exc:
        raise DeliveryError(str(exc)) from exc
    try:
        delivered = install_result(
            job.pk, path, from_states=redeliverable, code=EventCode.REDELIVERED, actor=actor
        )
    finally:
        path.unlink(missing_ok=True)
    if delivered is None:
        raise DeliveryError(_("The order changed meanwhile; nothing was redelivered."))
    return delivered


def resend_link(job_id: JobId, *, actor: Actor = None) -> PurchaseJob:
    """Issue a new token (expiry counted from now, downloads reset) and email it again.

    The old link stops working. Refused (``DeliveryError``) when there is nothing to send.
    """
    with locked_job(job_id) as job:
        if job.status != S.COMPLETED or not job.result_path:
            raise DeliveryError(_("Only a completed order with a delivered file can be resent."))
        if job.file_deleted_at or job.access_revoked_at:
            raise DeliveryError(_("The file is no longer available; redeliver it first."))
        if not job.email:
            raise DeliveryError(_("This order has no customer email address."))
        token, fields = token_fields(job)
        job = update_job(job, **fields)
        record_event(job, EventCode.LINK_RESENT, {}, actor=actor)
        after_commit(lambda: send_ready_email(job.pk, token))
    return job


def request_fresh_link(job_id: JobId, email: str) -> bool:
    """A customer whose link expired asks for a fresh one, typing the purchase email.

    Sent only when the address matches the order's (case-insensitive), the order may have
    one (``progress.fresh_link_possible``: delivered, not refunded or revoked, expired,
    file still kept) and fewer than ``FRESH_LINKS_PER_ORDER`` went out recently. The new
    token gets a new expiry; the download count is kept. Returns whether a link was sent:
    for tests and logs only, since the customer must get the same answer either way.
    """
    typed = (email or "").strip().casefold()
    with locked_job(job_id) as job:
        if not typed or not fresh_link_possible(job):
            return False
        if not constant_time_compare(typed, job.email.strip().casefold()):
            return False
        limit, seconds = smi_settings.FRESH_LINKS_PER_ORDER
        recent = events_of(job, EventCode.LINK_RESENT).filter(
            data__requested_by="customer",
            created_at__gt=timezone.now() - timedelta(seconds=seconds),
        )
        if recent.count() >= limit:
            logger.warning("job %s: fresh link not sent, %s already sent recently", job.pk, limit)
            return False
        token, fields = token_fields(job)
        del fields["download_count"]  # a fresh link is not a fresh allowance
        job = update_job(job, **fields)
        record_event(job, EventCode.LINK_RESENT, {"requested_by": "customer"})
        after_commit(lambda: send_ready_email(job.pk, token))
    return True


def revoke(job_id: JobId, *, reason: str = "", actor: Actor = None) -> PurchaseJob:
    """Admin: the delivered file can no longer be downloaded (the order stays completed;
    cleanup deletes the file). A redelivery gives access back."""
    with locked_job(job_id) as job:
        if job.status != S.COMPLETED:
            raise NotAllowed(_("Only a completed order's download can be revoked."))
        if job.access_revoked_at:
            return job
        job = update_job(job, access_revoked_at=timezone.now())
        record_event(job, EventCode.ACCESS_REVOKED, {"reason": reason}, actor=actor)
    return job


# The "download ready" email -----------------------------------------------------------------


def send_ready_email(job_id: JobId, token: str) -> bool:
    """Email the download link; on failure say so (log, admin alert; the order's event is
    written by ``emails``) and leave
    ``delivery_email_sent_at`` empty so the sweeper tries again (``retry_ready_email``).
    Runs after commit, where an exception would only be logged: hence no raising here."""
    job = PurchaseJob.objects.select_related("site").get(pk=job_id)
    try:
        sent = emails.send_download_ready(job, token)
        problem = "" if sent else "no message was sent"
    except Exception as exc:
        logger.exception("job %s: the download email could not be sent", job_id)
        sent, problem = False, f"{exc.__class__.__name__}: {exc}"
    if sent:
        PurchaseJob.objects.filter(pk=job_id).update(delivery_email_sent_at=timezone.now())
        return True
    logger.error("job %s: the download email was not sent (%s)", job_id, problem)
    try:  # the failure is on the order's log already (``emails`` records every email)
        emails.send_admin_alert(
            job,
            _(
                "The download email could not be sent to the customer (%(problem)s). It will be "
                "tried again for a day; you can also resend it from the order."
            )
            % {"problem": problem},
        )
    except Exception:  # the mail server may be down for everyone: the log still has it
        logger.exception("job %s: could not report the unsent download email", job_id)
    return False


def unsent_ready_emails(now: datetime) -> QuerySet[PurchaseJob]:
    """Completed orders whose "download ready" email never went out, completed in the last
    day, with no failed attempt in the last 15 minutes (and none pending right now)."""
    recent_failure = JobEvent.objects.filter(
        job=OuterRef("pk"),
        code=EventCode.EMAIL_FAILED,
        data__email=READY_EMAIL,
        created_at__gt=now - EMAIL_RETRY_EVERY,
    )
    return (
        PurchaseJob.objects.filter(
            status=S.COMPLETED,
            delivery_email_sent_at__isnull=True,
            completed_at__gt=now - EMAIL_RETRY_FOR,
            completed_at__lte=now - EMAIL_RETRY_EVERY,
            file_deleted_at__isnull=True,
            access_revoked_at__isnull=True,
        )
        .exclude(email="")
        .exclude(result_path="")
        .exclude(Exists(recent_failure))
    )


def retry_ready_email(job_id: JobId, now: datetime) -> bool:
    """Sweeper: send the download email again. Only the token's hash is stored, so a new
    token replaces the one nobody received; its expiry and download count are kept."""
    with locked_job(job_id):
        job = unsent_ready_emails(now).filter(pk=job_id).first()
        if job is None:
            return False
        token, digest = tokens.new_download_token()
        job = update_job(job, token_hash=digest)
        record_event(job, EventCode.EMAIL_RETRIED, {"email": READY_EMAIL})
        after_commit(lambda: send_ready_email(job.pk, token))
    return True


# Expiry ---------------------------------------------------------------------------------------


def deletable_files(now: datetime) -> QuerySet[PurchaseJob]:
    """Orders whose delivered file can no longer be downloaded: refunded or revoked ones,
    and expired ones once the days a customer may ask for a fresh link are over."""
    kept_until = now - timedelta(days=smi_settings.FRESH_LINK_DAYS)
    return (
        PurchaseJob.objects.filter(file_deleted_at__isnull=True)
        .exclude(result_path="")
        .filter(
            Q(token_expires_at__lt=kept_until)
            | Q(status=S.REFUNDED)
            | Q(access_revoked_at__isnull=False)
        )
    )


def expire_file(job_id: JobId, name: str, now: datetime) -> bool:
    """Delete one order's file if it is still the one cleanup saw and still not downloadable.

    An admin may have resent the link (new expiry) or redelivered (new file) since cleanup
    listed the order: the row is locked and the same conditions, plus the same file name,
    are checked again; the file itself is deleted only once that has committed.
    """
    with locked_job(job_id):
        if not deletable_files(now).filter(pk=job_id, result_path=name).exists():
            return False
        PurchaseJob.objects.filter(pk=job_id).update(file_deleted_at=now, updated_at=now)
        after_commit(lambda: storage.delete_stored_file(name))
    return True
