"""Side effects every operation registers the same way: after the commit, never inside it.

A rolled-back change must not send an email or start a task, and an email server that is
down must not undo a change that happened: hence ``transaction.on_commit(..., robust=True)``.
"""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction

from .. import emails, queue
from ..models import PurchaseJob

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
