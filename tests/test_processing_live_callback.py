"""The fake Upsampler calls the site's webhook over real HTTP (a live server thread).

(A callback racing the submission is covered deterministically in test_processing_upsampler:
here the in-memory SQLite test database would turn that race into "table is locked".)"""

from __future__ import annotations

import pytest
from django.core import mail
from django.test import override_settings
from django.utils import timezone

from tests.upsampler_server import FakeUpsampler
from wagtail_smi import queue


@pytest.mark.django_db(transaction=True)
def test_real_callback_over_http_completes_the_job(live_server, make_job, make_image):
    """The fake Upsampler calls the site's webhook itself, as the real one does."""
    image = make_image(20, 10, title="Live")
    job = make_job(
        "paid",
        image=image,
        factor=4,
        paid_at=timezone.now(),
        email="b@example.com",
        payment_provider="dummy",
    )
    with FakeUpsampler() as server:
        server.result_size = (80, 40)
        server.callbacks = True
        settings = server.smi_settings(PUBLIC_BASE_URL=live_server.url, RATE_LIMITS_ENABLED=False)
        with override_settings(WAGTAIL_SMI=settings):
            server.pending_polls = None  # upscaling takes a while...
            queue.enqueue_processing(job.pk)
            job.refresh_from_db()
            assert job.status == "processing"
            # ...then Upsampler finishes and POSTs to the webhook over HTTP; the site
            # confirms with the status API, fetches, stores and emails within that request.
            server.finish()
    job.refresh_from_db()
    events = list(job.events.values_list("to_status", "code", "data"))
    assert job.status == "completed", (server.jobs, server.requests, events)
    assert len(server.submits) == 1
    assert len(server.sent_callbacks) == 1
    assert "callback_error" not in next(iter(server.jobs.values()))
    assert len(mail.outbox) == 1
