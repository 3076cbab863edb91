"""The upscalers' own limits and costs: the local upscaler's memory bound is known at quote
time (a size it cannot produce is never sold), and a submission to Upsampler whose answer
was lost is never paid for twice.

Upsampler is the local fake (tests/upsampler_server.py), driven by the real client.
"""

from __future__ import annotations

import io
import json
import socket
from datetime import timedelta

import pytest
from django.core import mail
from django.test import override_settings
from django.utils import timezone
from PIL import Image, ImageChops

from tests.storefront_support import PROVIDER, publish_gallery, sellable
from tests.upsampler_server import FakeUpsampler
from wagtail_smi import queue
from wagtail_smi.models import JobEvent, PurchaseJob
from wagtail_smi.operations import maintenance, resolution
from wagtail_smi.operations.upscaling import upscale_request
from wagtail_smi.storage import private_storage
from wagtail_smi.timeline import describe
from wagtail_smi.upscalers.local import resize_in_strips, upscale_file
from wagtail_smi.upscalers.upsampler import UpsamplerUpscaler
from wagtail_smi.workflow import transition, update_job

BASE = "http://testserver"


def local_settings(**options):
    return {
        "UPSCALER": {"CLASS": "wagtail_smi.upscalers.local.LocalUpscaler", "OPTIONS": options},
        "ALLOW_DUMMY_PAYMENTS": True,
        "PUBLIC_BASE_URL": BASE,
        "PAYMENT_BACKEND": PROVIDER,
        "RATE_LIMITS_ENABLED": False,
    }


def post_json(client, url, data):
    return client.post(url, json.dumps(data), content_type="application/json")


# Item 15: the local upscaler's memory -------------------------------------------------------


def test_sizes_the_local_upscaler_cannot_hold_in_memory_are_unavailable_when_quoted(
    client, make_image, root_page
):
    """A 40 MB budget holds about 9 megapixels: 4x of 500×500 (4 MP) is sold, 8x (16 MP)
    is shown unavailable with the reason and cannot be bought."""
    image = make_image(500, 500, title="Dunes")
    page = publish_gallery(root_page, [sellable(image)])
    with override_settings(WAGTAIL_SMI=local_settings(MAX_MEMORY_MB=40)):
        prices = post_json(
            client, "/smi/v1/calculate-all-prices", {"image_id": image.pk, "page_id": page.pk}
        )
        checkout = post_json(
            client,
            "/smi/v1/create-checkout",
            {"image_id": image.pk, "page_id": page.pk, "resolution": "8x"},
        )
        allowed = post_json(
            client,
            "/smi/v1/create-checkout",
            {"image_id": image.pk, "page_id": page.pk, "resolution": "4x"},
        )

    pricing = prices.json()["pricing"]
    assert pricing["4x"]["available"] is True
    assert pricing["8x"]["available"] is False
    assert "16.0 megapixels" in pricing["8x"]["reason"]
    assert pricing["8x"]["price_cents"] > 0  # the price it would have
    assert checkout.status_code == 400
    assert checkout.json()["error"] == "resolution_unavailable"
    assert allowed.status_code == 200
    assert list(PurchaseJob.objects.values_list("resolution", flat=True)) == ["4x"]


def test_refund_email_offers_only_resolutions_the_upscaler_can_produce(
    make_job, make_image, django_capture_on_commit_callbacks
):
    """The alternatives in the refund email come from the same quotes as the dialog."""
    job = make_job(
        "paid",
        image=make_image(500, 500),
        factor=4,
        resolution="4x",
        email="b@example.com",
        paid_at=timezone.now(),
        payment_provider="dummy",
    )
    job.image.delete()  # the upscale fails: the original is gone
    with override_settings(WAGTAIL_SMI=local_settings(MAX_MEMORY_MB=40)):
        with django_capture_on_commit_callbacks(execute=True):
            queue.enqueue_processing(job.pk)
    job.refresh_from_db()
    assert job.status == "refunded"
    [email] = mail.outbox
    assert "8x" not in email.body


def test_the_local_upscaler_refuses_at_run_time_what_its_budget_cannot_hold(
    make_job, make_image, django_capture_on_commit_callbacks
):
    """An order quoted before the budget was lowered is refused before allocating."""
    job = make_job(
        "paid",
        image=make_image(500, 500),
        factor=8,
        email="b@example.com",
        paid_at=timezone.now(),
        payment_provider="dummy",
    )
    with override_settings(WAGTAIL_SMI=local_settings(MAX_MEMORY_MB=40)):
        with django_capture_on_commit_callbacks(execute=True):
            queue.enqueue_processing(job.pk)
    job.refresh_from_db()
    assert job.status == "refunded"
    assert "output_too_large" in describe(job.events.get(to_status="failed"))


def test_upsampler_quotes_are_not_limited_by_the_local_memory_budget(client, make_image, root_page):
    image = make_image(500, 500)
    page = publish_gallery(root_page, [sellable(image)])
    settings = {
        **local_settings(MAX_MEMORY_MB=40),
        "UPSCALER": {"CLASS": "upsampler", "OPTIONS": {"API_KEY": "k", "MAX_MEMORY_MB": 40}},
    }
    with override_settings(WAGTAIL_SMI=settings):
        prices = post_json(
            client, "/smi/v1/calculate-all-prices", {"image_id": image.pk, "page_id": page.pk}
        )
    assert prices.json()["pricing"]["8x"]["available"] is True


def textured(size=(37, 23), mode="RGB") -> Image.Image:
    noise = Image.effect_noise(size, 60)
    gradient = Image.linear_gradient("L").resize(size)
    bands = [noise, gradient, noise.transpose(Image.Transpose.FLIP_LEFT_RIGHT), gradient.rotate(90)]
    return Image.merge(mode, bands[: len(mode)])


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
@pytest.mark.parametrize("factor", [4, 8])
@pytest.mark.parametrize("strip_pixels", [1, 500, 4000])
def test_strip_wise_resize_equals_the_plain_resize(mode, factor, strip_pixels):
    source = textured(mode=mode)
    size = (source.width * factor, source.height * factor)
    plain = source.resize(size, Image.Resampling.LANCZOS)
    strips = resize_in_strips(source, size, strip_pixels=strip_pixels)
    assert strips.size == plain.size and strips.mode == plain.mode
    low, high = zip(*ImageChops.difference(plain, strips).getextrema())
    assert max(high) <= 1


def test_upscaled_file_has_the_ordered_size_and_format(tmp_path):
    original = io.BytesIO()
    textured().save(original, format="PNG")
    original.seek(0)
    path = upscale_file(original, tmp_path, (37 * 4, 23 * 4), strip_pixels=300)
    with Image.open(path) as result:
        assert result.size == (148, 92) and result.format == "PNG"


def test_webp_outputs_too_large_to_encode_within_the_budget_are_written_as_png(tmp_path):
    original = io.BytesIO()
    textured().save(original, format="WEBP")
    original.seek(0)
    small = upscale_file(original, tmp_path, (148, 92), memory_budget_bytes=10 * 1024 * 1024)
    original.seek(0)
    large = upscale_file(original, tmp_path, (148, 92), memory_budget_bytes=100_000)
    assert (small.suffix, large.suffix) == (".webp", ".png")


# Item 16: a submission whose answer was lost is never paid for twice ------------------------


@pytest.fixture
def upsampler():
    with FakeUpsampler(api_key="k") as server:
        settings = server.smi_settings(
            ALLOW_DUMMY_PAYMENTS=True, PUBLIC_BASE_URL=BASE, RATE_LIMITS_ENABLED=False
        )
        settings["UPSCALER"]["OPTIONS"]["TIMEOUT"] = 0.5
        server.result_size = (80, 40)
        with override_settings(WAGTAIL_SMI=settings, ADMINS=[("Ops", "ops@example.com")]):
            yield server


@pytest.fixture
def paid_job(make_job, make_image):
    def factory(**fields):
        values = {
            "paid_at": timezone.now(),
            "email": "buyer@example.com",
            "payment_provider": "dummy",
            "factor": 4,
        }
        values.update(fields)
        return make_job("paid", image=make_image(20, 10, title="Harbour"), **values)

    return factory


def run_task(job, captured):
    with captured(execute=True):
        queue.enqueue_processing(job.pk)
    job.refresh_from_db()
    return job


def sweep_when_due(job, captured):
    """Time passes until the job's next step is due, then the sweeper runs."""
    PurchaseJob.objects.filter(pk=job.pk).update(
        next_attempt_at=timezone.now() - maintenance.OVERDUE_AFTER
    )
    with captured(execute=True):
        maintenance.sweep()
    job.refresh_from_db()
    return job


def deliver_callbacks(client, server, captured):
    responses = []
    for url, payload in server.sent_callbacks:
        with captured(execute=True):
            responses.append(
                client.post(url.removeprefix(BASE), payload, content_type="application/json")
            )
    server.sent_callbacks.clear()
    return responses


def assert_delivered_once(job, upsampler):
    job.refresh_from_db()
    assert job.status == "completed"
    assert len(upsampler.submits) == 1
    assert job.upscaler_job_id == next(iter(upsampler.jobs))
    assert (
        JobEvent.objects.filter(
            job=job, kind=JobEvent.Kind.TRANSITION, to_status="completed"
        ).count()
        == 1
    )
    assert len(private_storage().listdir(f"wagtail_smi/{job.pk}")[1]) == 1
    assert [m.to for m in mail.outbox] == [["buyer@example.com"]]


def test_submission_whose_answer_is_lost_is_not_submitted_again_and_its_callback_completes_it(
    upsampler, paid_job, client, django_capture_on_commit_callbacks
):
    """Upsampler accepts the job but answers after the client gave up (a read timeout)."""
    upsampler.submit_delay = 2
    upsampler.pending_polls = None
    job = run_task(paid_job(), django_capture_on_commit_callbacks)
    assert job.status == "processing" and job.upscaler_job_id == ""
    assert len(upsampler.submits) == 1 and len(upsampler.jobs) == 1

    upsampler.submit_delay = 0
    for _ in range(3):
        job = sweep_when_due(job, django_capture_on_commit_callbacks)
    assert len(upsampler.submits) == 1
    assert job.status == "processing"

    upsampler.finish()  # Upsampler finishes the job it has and calls back, naming it
    [response] = deliver_callbacks(client, upsampler, django_capture_on_commit_callbacks)
    assert response.status_code == 200
    assert_delivered_once(job, upsampler)


def test_worker_killed_after_stamping_waits_for_the_callback_and_completes_once(
    upsampler, paid_job, client, django_capture_on_commit_callbacks
):
    """The request reached Upsampler, then the worker died before saving the id."""
    job = paid_job()
    job = transition(
        job,
        "processing",
        deadline_at=timezone.now() + timedelta(hours=1),
        code="processing_started",
    )
    job = update_job(
        job,
        upscaler_submitted_at=timezone.now(),
        next_attempt_at=timezone.now() - maintenance.OVERDUE_AFTER,
    )
    UpsamplerUpscaler({"API_KEY": "k", "API_BASE": upsampler.api_base}).submit(
        upscale_request(job)
    )  # its answer is lost

    job = sweep_when_due(job, django_capture_on_commit_callbacks)
    job = sweep_when_due(job, django_capture_on_commit_callbacks)
    assert len(upsampler.submits) == 1
    assert job.status == "processing" and job.upscaler_job_id == ""
    assert job.next_attempt_at > timezone.now()  # nothing to do until the grace period ends

    upsampler.finish()
    deliver_callbacks(client, upsampler, django_capture_on_commit_callbacks)
    deliver_callbacks(
        client, upsampler, django_capture_on_commit_callbacks
    )  # nothing left to replay
    assert_delivered_once(job, upsampler)


def test_without_a_callback_a_lost_submission_goes_to_an_admin_not_to_upsampler_again(
    upsampler, paid_job, django_capture_on_commit_callbacks
):
    upsampler.submit_delay = 2
    job = run_task(paid_job(), django_capture_on_commit_callbacks)
    upsampler.submit_delay = 0
    update_job(job, upscaler_submitted_at=timezone.now() - timedelta(minutes=16))

    job = sweep_when_due(job, django_capture_on_commit_callbacks)

    assert job.status == "needs_attention"
    assert len(upsampler.submits) == 1
    assert "may have the job" in job.last_error and "dashboard" in job.last_error
    [alert, _taking_longer] = mail.outbox  # the admins, then the customer
    assert alert.to == ["ops@example.com"] and "dashboard" in alert.body


def test_an_admin_retry_of_a_lost_submission_submits_again(
    upsampler, paid_job, admin_user, django_capture_on_commit_callbacks
):
    upsampler.submit_delay = 2
    job = run_task(paid_job(), django_capture_on_commit_callbacks)
    upsampler.submit_delay = 0
    update_job(job, upscaler_submitted_at=timezone.now() - timedelta(minutes=16))
    job = sweep_when_due(job, django_capture_on_commit_callbacks)
    assert job.status == "needs_attention"

    with django_capture_on_commit_callbacks(execute=True):
        resolution.retry(job.pk, actor=admin_user)  # the admin found nothing at Upsampler
    job.refresh_from_db()
    assert len(upsampler.submits) == 2
    assert job.status == "processing" and job.upscaler_job_id in upsampler.jobs


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_refused_connection_is_submitted_again_with_backoff(
    upsampler, paid_job, settings, django_capture_on_commit_callbacks
):
    """The request never reached Upsampler: trying again cannot pay twice."""
    working = settings.WAGTAIL_SMI
    upscaler = {**working["UPSCALER"], "OPTIONS": {**working["UPSCALER"]["OPTIONS"]}}
    upscaler["OPTIONS"]["API_BASE"] = f"http://127.0.0.1:{closed_port()}/api/v1"
    settings.WAGTAIL_SMI = {**working, "UPSCALER": upscaler}
    job = run_task(paid_job(), django_capture_on_commit_callbacks)
    assert job.status == "processing" and job.attempts == 1 and job.upscaler_submitted_at is None
    assert "unreachable" in job.last_error

    settings.WAGTAIL_SMI = working
    job = sweep_when_due(job, django_capture_on_commit_callbacks)
    assert len(upsampler.submits) == 1 and job.upscaler_job_id


@pytest.mark.parametrize("named", ["unknown", "another order's"])
def test_a_callback_naming_a_job_upsampler_does_not_confirm_is_not_adopted(
    named, upsampler, paid_job, client, django_capture_on_commit_callbacks
):
    upsampler.submit_delay = 2
    job = run_task(paid_job(), django_capture_on_commit_callbacks)
    upsampler.submit_delay = 0
    candidate = "f" * 32
    if named == "another order's":
        other = paid_job()
        PurchaseJob.objects.filter(pk=other.pk).update(
            status="completed", upscaler_job_id=candidate
        )
        upsampler.jobs[candidate] = {"polls": 0, "webhook": "", "input": None}

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/smi-webhook/upsampler/{job.pk}/{job.callback_secret}/",
            {"id": candidate, "status": "SUCCESS"},
            content_type="application/json",
        )
    assert response.status_code == 200
    job.refresh_from_db()
    assert job.upscaler_job_id == "" and job.status == "processing"
    assert job.events.filter(code="callback_ignored", data__external_id=candidate).exists()
    assert len(upsampler.submits) == 1


def test_a_callback_that_beats_the_answer_still_lets_the_worker_poll_at_once(
    upsampler, paid_job, client, django_capture_on_commit_callbacks
):
    """A callback for a job that no worker has submitted yet changes nothing but the mark
    the submitting worker reads (the early-callback behaviour)."""
    job = paid_job()
    transition(
        job,
        "processing",
        next_attempt_at=timezone.now() - maintenance.OVERDUE_AFTER,
        code="processing_started",
    )
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            f"/smi-webhook/upsampler/{job.pk}/{job.callback_secret}/",
            {"id": "whatever", "status": "SUCCESS"},
            content_type="application/json",
        )
    assert upsampler.status_calls == []
    job = sweep_when_due(job, django_capture_on_commit_callbacks)
    assert_delivered_once(job, upsampler)
