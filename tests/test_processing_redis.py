"""The Redis broker carries a processing task to a django-q2 worker (needs Redis)."""

from __future__ import annotations

import multiprocessing
import queue
import uuid

import pytest
from django.core import mail
from django.test import override_settings
from django.utils import timezone
from django_q.brokers.redis_broker import Redis
from django_q.conf import Conf
from django_q.signing import SignedPackage
from django_q.worker import worker

from wagtail_smi import queue as smi_queue
from wagtail_smi.models import PurchaseJob


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_task_travels_through_redis_and_a_worker_completes_the_job(
    make_job, make_image, monkeypatch
):
    broker = Redis(list_key=f"wagtail_smi_test_{uuid.uuid4().hex}")
    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr("django_q.tasks.get_broker", lambda *args, **kwargs: broker)
    image = make_image(30, 20, title="Redis test")
    job = make_job(
        "paid", image=image, paid_at=timezone.now(), email="b@example.com", payment_provider="dummy"
    )
    try:
        with override_settings(
            WAGTAIL_SMI={
                "UPSCALER": {"CLASS": "wagtail_smi.upscalers.local.LocalUpscaler", "OPTIONS": {}}
            }
        ):
            smi_queue.enqueue_processing(job.pk)
            assert broker.queue_size() == 1
            assert PurchaseJob.objects.get(pk=job.pk).status == "paid"

            [(_ack_id, payload)] = broker.dequeue()
            task_queue, result_queue = queue.Queue(), queue.Queue()
            task_queue.put(SignedPackage.loads(payload))
            task_queue.put("STOP")
            worker(task_queue, result_queue, multiprocessing.Value("f", -1), timeout=60)
            result = result_queue.get_nowait()
    finally:
        broker.delete_queue()

    assert result["success"], result["result"]
    job.refresh_from_db()
    assert job.status == "completed"
    assert (job.output_width, job.output_height) == (120, 80)
    assert len(mail.outbox) == 1
