"""django-q2 entry points: each loads a job by id and calls one domain function.

Business retries live in the job (see ``processing``), not in broker redelivery: a task
that dies is picked up again by the sweeper, which the job table, not the queue, drives.
Task arguments are plain strings so any broker can carry them.
"""

from __future__ import annotations

from django_q.tasks import async_task

Q_GROUP = "wagtail_smi"


def enqueue_processing(job_id) -> None:
    """Queue the processing of a paid job (call from ``transaction.on_commit``)."""
    async_task("wagtail_smi.tasks.process_job", str(job_id), group=Q_GROUP)


def enqueue_refund(job_id, reason: str) -> None:
    async_task("wagtail_smi.tasks.refund_failed_job", str(job_id), reason, group=Q_GROUP)


def process_job(job_id: str) -> None:
    from . import processing

    processing.process_job(job_id)


def refund_failed_job(job_id: str, reason: str) -> None:
    from . import processing

    processing.refund_failed(job_id, reason)


def sweep() -> dict:
    from . import processing

    return processing.sweep()


def cleanup() -> dict:
    from . import processing

    return processing.cleanup()
