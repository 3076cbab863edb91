"""django-q2 entry points: each loads a job by id and calls one domain function."""

from django_q.tasks import async_task


def enqueue_processing(job_id) -> None:
    """Queue the processing of a paid job (call from ``transaction.on_commit``)."""
    async_task("wagtail_smi.tasks.process_job", str(job_id))


def process_job(job_id: str) -> None:
    from . import processing

    if hasattr(processing, "process_job"):
        processing.process_job(job_id)
