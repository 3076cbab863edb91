"""Two workers racing for the same job on PostgreSQL: row locks let only one act."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from tests.upsampler_server import FakeUpsampler
from wagtail_smi.models import JobEvent
from wagtail_smi.operations import processing


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_running_the_same_task_submit_once(make_job, make_image):
    image = make_image(20, 10)
    job = make_job(
        "paid", image=image, paid_at=timezone.now(), email="b@example.com", payment_provider="dummy"
    )
    with FakeUpsampler() as server:
        server.pending_polls = None
        settings = server.smi_settings()
        start = threading.Barrier(4)
        errors = []

        def work():
            try:
                start.wait()
                processing.process_job(job.pk)
            except Exception as exc:  # reported below
                errors.append(exc)
            finally:
                connection.close()

        with override_settings(WAGTAIL_SMI=settings):
            threads = [threading.Thread(target=work) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

    assert errors == []
    job.refresh_from_db()
    assert job.status == "processing"
    assert len(server.submits) == 1
    assert JobEvent.objects.filter(job=job, kind="transition", to_status="processing").count() == 1
