"""Side effects every operation registers the same way: after the commit, never inside it.

A rolled-back change must not send an email or start a task, and an email server that is
down must not undo a change that happened: hence ``transaction.on_commit(..., robust=True)``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from uuid import UUID

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from .. import emails, queue
from ..models import PurchaseJob

logger = logging.getLogger(__name__)

#: An order's id as callers hold it: the UUID, or its text from a URL or a task's arguments.
JobId = UUID | str
#: Who an admin operation acts for (recorded on the order's events); None: the system.
Actor = AbstractBaseUser | None


def after_commit(callback: Callable[[], object]) -> None:
    transaction.on_commit(callback, robust=True)


def alert_admins(job: PurchaseJob, message: str) -> None:
    """Email the shop's admins about this order once the current transaction commits."""
    after_commit(lambda: emails.send_admin_alert(job, message))


def process_later(job_id: JobId) -> None:
    after_commit(lambda: queue.enqueue_processing(job_id))


def refund_later(job_id: JobId, reason: str) -> None:
    after_commit(lambda: queue.enqueue_refund(str(job_id), reason))


def process_at(job_id: JobId, at: datetime) -> None:
    """Run the job again at ``at`` (its next poll or retry), not only when the sweeper
    comes round: a django-q2 schedule of its own, written once the change has committed."""
    after_commit(lambda: queue.schedule_processing(job_id, at))


def forget_schedule(job_id: JobId) -> None:
    """The job left the pipeline: its own schedule has nothing more to do."""
    after_commit(lambda: queue.forget_schedule(job_id))


def email_customer(job_id: JobId, send: Callable[..., bool], *args) -> None:
    """Send a customer email once the current transaction commits, with the order as it is
    then. A failure is recorded on the order (``emails``) and logged, never raised: the
    change it reports has happened all the same."""

    def run() -> None:
        job = PurchaseJob.objects.select_related("site").filter(pk=job_id).first()
        if job is None:
            return
        try:
            send(job, *args)
        except Exception:
            logger.exception("job %s: the %s email could not be sent", job_id, send.__name__)

    after_commit(run)


def tell_customer_of_delay(job: PurchaseJob, cause: str = emails.DELAY_DELIVERY) -> None:
    """A paid order went to an admin: the customer hears it, once per order, with what
    happens next (``emails.send_taking_longer``)."""
    if not job.is_paid:
        return
    stamped = PurchaseJob.objects.filter(pk=job.pk, delay_emailed_at__isnull=True).update(
        delay_emailed_at=timezone.now()
    )
    if stamped:
        email_customer(job.pk, emails.send_taking_longer, cause)
