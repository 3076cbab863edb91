"""Helpers for the tests that call the operations directly: what an order's log says, and
what was handed to the queue (the boundary with django-q2; the operations themselves run
for real)."""

from __future__ import annotations

import pytest

from wagtail_smi.models import JobEvent

# Every email is noted on its order too; ``log`` and ``codes`` tell the order's own story
# without them, ``emails_logged`` lists them.
EMAIL_NOTES = ("email_sent", "email_failed")


def log(job) -> list[tuple[str, str, dict]]:
    """The order's events, oldest first, its email notes left out: ``(code, to_status,
    data)`` (``to_status`` is "" for a note)."""
    events = JobEvent.objects.filter(job_id=job.pk).exclude(code__in=EMAIL_NOTES)
    return [(e.code, e.to_status, e.data) for e in events]


def emails_logged(job) -> list[tuple[str, str]]:
    """The emails noted on the order, oldest first: ``(code, email name)``."""
    events = JobEvent.objects.filter(job_id=job.pk, code__in=EMAIL_NOTES)
    return [(e.code, e.data.get("email", "")) for e in events]


def codes(job) -> list[str]:
    return [code for code, _to, _data in log(job)]


def event(job, code: str) -> JobEvent:
    """The order's one event with this code."""
    [found] = JobEvent.objects.filter(job_id=job.pk, code=code)
    return found


@pytest.fixture
def queued(monkeypatch):
    """Every task the operations hand to the queue: ``("process", job id)`` and
    ``("refund", job id, reason)``, in order; nothing runs."""
    from wagtail_smi import queue

    calls: list[tuple] = []
    monkeypatch.setattr(
        queue, "enqueue_processing", lambda job_id: calls.append(("process", str(job_id)))
    )
    monkeypatch.setattr(
        queue,
        "enqueue_refund",
        lambda job_id, reason: calls.append(("refund", str(job_id), reason)),
    )
    return calls
