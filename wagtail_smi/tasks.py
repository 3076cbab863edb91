"""django-q2 entry points: each calls one operation with the plain values it was given.

Enqueue with ``wagtail_smi.queue``; the sweeper finds any task that was lost.
"""

from __future__ import annotations

from .operations import maintenance, processing, refunds


def process_job(job_id: str) -> None:
    processing.process_job(job_id)


def refund_failed_job(job_id: str, reason: str) -> None:
    refunds.refund_failed_job(job_id, reason)


def auto_refund(job_id: str) -> None:
    maintenance.auto_refund(job_id)


def sweep() -> dict:
    return maintenance.sweep()


def cleanup() -> dict:
    return maintenance.cleanup()
