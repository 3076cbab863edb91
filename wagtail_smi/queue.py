"""Handing work to the django-q2 workers.

Tasks are named by their dotted path (``wagtail_smi.tasks.*``, the thin entry points), so
nothing here imports them. Arguments are plain strings so any broker can carry them.
Business retries live in the job, not in broker redelivery: a task that is lost is found
again by the sweeper, which the job table, not the queue, drives. Call these from
``transaction.on_commit`` so a rolled-back change never enqueues anything.
"""

from __future__ import annotations

from django_q.tasks import async_task

Q_GROUP = "wagtail_smi"


def enqueue_processing(job_id) -> None:
    """Move a paid or processing job forward in a worker."""
    async_task("wagtail_smi.tasks.process_job", str(job_id), group=Q_GROUP)


def enqueue_refund(job_id, reason: str) -> None:
    """Refund a failed job in a worker (``reason`` is a failure code)."""
    async_task("wagtail_smi.tasks.refund_failed_job", str(job_id), reason, group=Q_GROUP)
