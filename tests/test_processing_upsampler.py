"""The pipeline against a local Upsampler-compatible server, through the real requests client.

django-q2 runs in sync mode in the tests: an enqueued task runs at once, in-process.
"""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core import mail
from django.test import override_settings
from django.utils import timezone
from PIL import Image

from tests.upsampler_server import FakeUpsampler
from wagtail_smi import fetching, queue
from wagtail_smi.fetching import ResultRejected, check_result_url
from wagtail_smi.models import JobEvent, PurchaseJob
from wagtail_smi.operations import maintenance, resolution
from wagtail_smi.storage import private_storage
from wagtail_smi.timeline import describe
from wagtail_smi.upscalers.upsampler import UpsamplerUpscaler


class StatusBugUpscaler(UpsamplerUpscaler):
    """Upsampler's client with a bug in reading status answers (what a 4xx answer whose
    JSON body was a list used to cause)."""

    def status(self, external_id):
        super().status(external_id)
        raise AttributeError("'list' object has no attribute 'get'")


BASE = "http://testserver"


@pytest.fixture
def upsampler():
    with FakeUpsampler(api_key="k") as server:
        settings = server.smi_settings(
            ALLOW_DUMMY_PAYMENTS=True, PUBLIC_BASE_URL=BASE, RATE_LIMITS_ENABLED=False
        )
        settings["UPSCALER"]["OPTIONS"]["TIMEOUT"] = 5
        with override_settings(WAGTAIL_SMI=settings, ADMINS=[("Ops", "ops@example.com")]):
            yield server


@pytest.fixture
def paid_job(make_job, make_image):
    def factory(width=20, height=10, **fields):
        image = make_image(width, height, title="Harbour at dawn")
        values = {
            "paid_at": timezone.now(),
            "email": "buyer@example.com",
            "payment_provider": "dummy",
        }
        values.update(fields)
        return make_job("paid", image=image, **values)

    return factory


def run_task(job, captured):
    with captured(execute=True):
        queue.enqueue_processing(job.pk)
    job.refresh_from_db()
    return job


def poll_now(job, captured):
    """Time passes until the job's next poll is due, then the sweeper runs."""
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
        path = url.removeprefix(BASE)
        with captured(execute=True):
            responses.append(client.post(path, payload, content_type="application/json"))
    return responses


def download_link(message) -> str:
    for line in message.body.splitlines():
        if "/smi/download/" in line:
            return line.split()[-1].removeprefix(BASE)
    raise AssertionError("no download link in the email")


def transitions(job, to_status):
    return JobEvent.objects.filter(
        job=job, kind=JobEvent.Kind.TRANSITION, to_status=to_status
    ).count()


def test_submission_follows_the_upsampler_contract(
    upsampler, paid_job, django_capture_on_commit_callbacks
):
    upsampler.pending_polls = None
    job = run_task(paid_job(factor=4), django_capture_on_commit_callbacks)

    assert job.status == "processing"
    assert len(upsampler.submits) == 1
    _method, path, headers, body = upsampler.submits[0]
    assert headers["Authorization"] == "Bearer k"
    assert body["input"]["inputImageType"] == "universal"
    assert body["input"]["upscaleFactor"] == 4 and isinstance(body["input"]["upscaleFactor"], int)
    assert body["input"]["imageUrl"].startswith(BASE + "/media/original_images/")
    assert body["webhook"] == f"{BASE}/smi-webhook/upsampler/{job.pk}/{job.callback_secret}/"
    assert job.upscaler_job_id in upsampler.jobs
    assert job.upscaler == "upsampler"
    assert job.deadline_at == job.paid_at + timedelta(minutes=60)
    # Polling starts POLL_START_SECONDS after submission.
    wait = (job.next_attempt_at - timezone.now()).total_seconds()
    assert 25 < wait <= 30


def test_happy_path_with_callback_delivers_a_downloadable_file(
    upsampler, paid_job, client, django_capture_on_commit_callbacks
):
    job = paid_job(20, 10, factor=4)
    upsampler.result_size = (80, 40)
    upsampler.pending_polls = None  # still working when submitted
    job = run_task(job, django_capture_on_commit_callbacks)
    assert job.status == "processing"
    assert mail.outbox == []

    upsampler.finish()
    [response] = deliver_callbacks(client, upsampler, django_capture_on_commit_callbacks)

    assert response.status_code == 200
    job.refresh_from_db()
    assert job.status == "completed"
    assert job.upscaler_status == "SUCCESS"
    assert job.upscaler_credits == 4
    assert len(job.token_hash) == 64 and job.token_expires_at > timezone.now() + timedelta(hours=23)
    assert job.result_content_type == "image/png"
    assert private_storage().exists(job.result_path)
    [message] = mail.outbox
    assert message.to == ["buyer@example.com"]
    response = client.get(download_link(message))
    assert response.status_code == 200
    with Image.open(io.BytesIO(b"".join(response.streaming_content))) as delivered:
        assert delivered.size == (80, 40)


def test_polling_alone_completes_a_job_when_no_callback_arrives(
    upsampler, paid_job, client, django_capture_on_commit_callbacks
):
    job = paid_job(20, 10, factor=4)
    upsampler.result_size = (80, 40)
    upsampler.pending_polls = 1
    job = run_task(job, django_capture_on_commit_callbacks)
    assert job.status == "processing"

    # Not due yet: the sweeper leaves it alone.
    with django_capture_on_commit_callbacks(execute=True):
        maintenance.sweep()
    assert upsampler.status_calls == []

    # Time passes (the poll is due): first poll still in progress, backs off.
    PurchaseJob.objects.filter(pk=job.pk).update(
        next_attempt_at=timezone.now() - maintenance.OVERDUE_AFTER
    )
    with django_capture_on_commit_callbacks(execute=True):
        maintenance.sweep()
    job.refresh_from_db()
    assert len(upsampler.status_calls) == 1
    assert job.status == "processing" and job.upscaler_status == "IN_PROGRESS"
    wait = (job.next_attempt_at - timezone.now()).total_seconds()
    assert 25 < wait <= 120

    PurchaseJob.objects.filter(pk=job.pk).update(
        next_attempt_at=timezone.now() - maintenance.OVERDUE_AFTER
    )
    with django_capture_on_commit_callbacks(execute=True):
        maintenance.sweep()
    job.refresh_from_db()
    assert job.status == "completed"
    assert len(mail.outbox) == 1
    assert upsampler.sent_callbacks == []


def test_replayed_callback_and_rerun_task_submit_and_deliver_once(
    upsampler, paid_job, client, django_capture_on_commit_callbacks
):
    job = paid_job(20, 10, factor=4)
    upsampler.result_size = (80, 40)
    upsampler.pending_polls = None
    run_task(job, django_capture_on_commit_callbacks)
    run_task(job, django_capture_on_commit_callbacks)  # the same task delivered twice
    upsampler.finish()
    upsampler.sent_callbacks *= 3  # the callback replayed
    responses = deliver_callbacks(client, upsampler, django_capture_on_commit_callbacks)
    run_task(job, django_capture_on_commit_callbacks)

    assert [r.status_code for r in responses] == [200, 200, 200]
    job.refresh_from_db()
    assert job.status == "completed"
    assert len(upsampler.submits) == 1
    assert len(upsampler.calls("GET", "/files/")) == 1
    assert transitions(job, "completed") == 1
    assert len(mail.outbox) == 1
    stored = private_storage().listdir(f"wagtail_smi/{job.pk}")[1]
    assert stored == [job.result_path.rsplit("/", 1)[-1]]


def test_wrong_secret_callback_with_attacker_url_changes_nothing(
    upsampler, paid_job, client, django_capture_on_commit_callbacks
):
    upsampler.pending_polls = None
    job = run_task(paid_job(), django_capture_on_commit_callbacks)
    before = PurchaseJob.objects.values().get(pk=job.pk)
    events_before = JobEvent.objects.filter(job=job).count()
    with FakeUpsampler() as attacker:
        payload = {
            "id": job.upscaler_job_id,
            "status": "SUCCESS",
            "imageUrl": attacker.origin + "/files/x.png",
        }
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            response = client.post(
                f"/smi-webhook/upsampler/{job.pk}/{'0' * 40}/",
                payload,
                content_type="application/json",
            )
        assert attacker.requests == []

    assert response.status_code == 404
    assert callbacks == []
    assert PurchaseJob.objects.values().get(pk=job.pk) == before
    assert JobEvent.objects.filter(job=job).count() == events_before
    assert upsampler.status_calls == []


def test_callback_body_is_never_trusted_for_the_result_url(
    upsampler, paid_job, client, django_capture_on_commit_callbacks
):
    job = paid_job(20, 10, factor=4)
    upsampler.result_size = (80, 40)
    upsampler.pending_polls = None
    job = run_task(job, django_capture_on_commit_callbacks)
    with FakeUpsampler() as attacker:
        payload = {"id": "x", "status": "SUCCESS", "imageUrl": attacker.origin + "/files/evil.png"}
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                f"/smi-webhook/upsampler/{job.pk}/{job.callback_secret}/",
                payload,
                content_type="application/json",
            )
        assert attacker.requests == []
    assert response.status_code == 200
    job.refresh_from_db()
    # The status API says it is still in progress, so nothing was delivered.
    assert job.status == "processing"
    assert len(upsampler.status_calls) == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/result.png",
        "https://127.0.0.1/result.png",
        "https://localhost/result.png",
        "https://10.1.2.3/result.png",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/result.png",
        "ftp://example.com/result.png",
    ],
)
def test_http_and_non_public_result_urls_are_refused_unless_allowed(url, settings):
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "ALLOW_PRIVATE_URLS": False}
    with pytest.raises(ResultRejected):
        check_result_url(url)


def test_private_result_urls_are_accepted_when_allowed(settings):
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "ALLOW_PRIVATE_URLS": True}
    check_result_url("http://127.0.0.1:9/result.png")


def test_loopback_result_url_fails_the_job_and_refunds_when_not_allowed(
    upsampler, paid_job, settings, django_capture_on_commit_callbacks
):
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "ALLOW_PRIVATE_URLS": False}
    upsampler.result_url = upsampler.origin.replace("http://", "https://") + "/files/x.png"
    job = run_task(paid_job(20, 10), django_capture_on_commit_callbacks)
    job = poll_now(job, django_capture_on_commit_callbacks)

    assert job.status == "refunded"
    assert upsampler.calls("GET", "/files/") == []
    assert "non-public address" in describe(
        JobEvent.objects.filter(job=job, to_status="failed").get()
    )


def test_result_that_is_not_an_image_fails_refunds_and_explains(
    upsampler, paid_job, django_capture_on_commit_callbacks
):
    upsampler.result_kind = "not_image"
    job = run_task(paid_job(20, 10), django_capture_on_commit_callbacks)
    job = poll_now(job, django_capture_on_commit_callbacks)

    assert job.status == "refunded"
    assert job.refund_reason == "result_invalid"
    assert job.refund_amount_cents == job.amount_cents
    assert transitions(job, "failed") == 1
    [message] = mail.outbox
    assert message.to == ["buyer@example.com"]
    assert "did not pass our quality checks" in message.body
    assert "refunded" in message.body and "0.50" in message.body  # the amount, in any money format
    assert "8x" in message.body  # the other resolution, as an alternative
    assert not private_storage().exists(f"wagtail_smi/{job.pk}")


def test_result_of_the_wrong_size_is_refused(
    upsampler, paid_job, django_capture_on_commit_callbacks
):
    upsampler.result_size = (80, 40)
    upsampler.result_kind = "wrong_size"
    job = run_task(paid_job(20, 10, factor=4), django_capture_on_commit_callbacks)
    job = poll_now(job, django_capture_on_commit_callbacks)
    assert job.status == "refunded"
    assert "81×40" in describe(JobEvent.objects.filter(job=job, to_status="failed").get())


def test_final_upscaler_error_refunds_and_alerts_the_admins(
    upsampler, paid_job, django_capture_on_commit_callbacks
):
    upsampler.submit_error = (402, "Insufficient credits")
    job = run_task(paid_job(), django_capture_on_commit_callbacks)

    assert job.status == "refunded"
    assert job.attempts == 0
    recipients = sorted(m.to[0] for m in mail.outbox)
    assert recipients == ["buyer@example.com", "ops@example.com"]
    assert "insufficient_credits" in describe(job.events.get(to_status="failed"))


def test_upscaler_reporting_failure_refunds(
    upsampler, paid_job, django_capture_on_commit_callbacks
):
    upsampler.status_failed = True
    job = run_task(paid_job(), django_capture_on_commit_callbacks)
    job = poll_now(job, django_capture_on_commit_callbacks)
    assert job.status == "refunded"
    assert job.refund_reason == "upscale_failed"


def test_server_errors_are_retried_with_backoff_then_succeed(
    upsampler, paid_job, django_capture_on_commit_callbacks
):
    upsampler.fail_next = 2
    upsampler.pending_polls = None
    job = run_task(paid_job(), django_capture_on_commit_callbacks)
    assert job.status == "processing" and job.attempts == 1 and job.upscaler_job_id == ""
    assert "503" in job.last_error
    first_wait = (job.next_attempt_at - timezone.now()).total_seconds()
    assert 14 <= first_wait <= 30  # base 30 s with jitter

    for expected_attempts in (2, 0):
        PurchaseJob.objects.filter(pk=job.pk).update(
            next_attempt_at=timezone.now() - maintenance.OVERDUE_AFTER
        )
        with django_capture_on_commit_callbacks(execute=True):
            maintenance.sweep()
        job.refresh_from_db()
        assert job.attempts == expected_attempts
    assert job.upscaler_job_id in upsampler.jobs
    assert len(upsampler.submits) == 3


def test_submission_errors_exhausting_attempts_need_attention(
    upsampler, paid_job, settings, django_capture_on_commit_callbacks
):
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "MAX_ATTEMPTS": 2}
    upsampler.fail_next = 10
    job = run_task(paid_job(), django_capture_on_commit_callbacks)
    PurchaseJob.objects.filter(pk=job.pk).update(
        next_attempt_at=timezone.now() - maintenance.OVERDUE_AFTER
    )
    with django_capture_on_commit_callbacks(execute=True):
        maintenance.sweep()
    job.refresh_from_db()
    assert job.status == "needs_attention"
    assert "gave up after 2 attempts" in job.last_error
    [alert, told] = mail.outbox  # the admins, and the customer ("taking longer")
    assert alert.to == ["ops@example.com"] and job.short_id in alert.subject
    assert told.to == ["buyer@example.com"]


def test_slow_upscaler_past_the_deadline_needs_attention(
    upsampler, paid_job, django_capture_on_commit_callbacks
):
    upsampler.pending_polls = None
    job = run_task(paid_job(), django_capture_on_commit_callbacks)
    PurchaseJob.objects.filter(pk=job.pk).update(
        deadline_at=timezone.now() - timedelta(seconds=1),
        next_attempt_at=timezone.now() - maintenance.OVERDUE_AFTER,
    )
    with django_capture_on_commit_callbacks(execute=True):
        maintenance.sweep()
    job.refresh_from_db()
    assert job.status == "needs_attention"
    assert "deadline passed" in job.last_error
    assert [m.to for m in mail.outbox] == [["ops@example.com"], ["buyer@example.com"]]


def test_admin_retry_polls_the_existing_upscale_instead_of_paying_twice(
    upsampler, paid_job, admin_user, django_capture_on_commit_callbacks
):
    upsampler.pending_polls = None
    upsampler.result_size = (80, 40)
    job = run_task(paid_job(20, 10, factor=4), django_capture_on_commit_callbacks)
    paid_at = job.paid_at
    PurchaseJob.objects.filter(pk=job.pk).update(deadline_at=timezone.now() - timedelta(seconds=1))
    run_task(job, django_capture_on_commit_callbacks)
    job.refresh_from_db()
    assert job.status == "needs_attention"

    upsampler.pending_polls = 0
    with django_capture_on_commit_callbacks(execute=True):
        resolution.retry(job.pk, actor=admin_user)
    job.refresh_from_db()
    assert job.status == "completed"
    assert len(upsampler.submits) == 1
    assert job.paid_at == paid_at
    assert job.events.get(to_status="paid", from_status="needs_attention").actor == admin_user


def test_worker_killed_after_claiming_is_resumed_once_by_the_sweeper(
    upsampler, paid_job, django_capture_on_commit_callbacks
):
    from wagtail_smi.workflow import transition

    upsampler.pending_polls = None
    job = paid_job()
    # A worker claimed the job and died before submitting.
    transition(
        job,
        "processing",
        next_attempt_at=timezone.now() + timedelta(minutes=6),
        deadline_at=timezone.now() + timedelta(hours=1),
        code="processing_started",
    )
    run_task(job, django_capture_on_commit_callbacks)  # redelivered task: the lease is held
    assert upsampler.submits == []

    PurchaseJob.objects.filter(pk=job.pk).update(
        next_attempt_at=timezone.now() - maintenance.OVERDUE_AFTER
    )
    with django_capture_on_commit_callbacks(execute=True):
        maintenance.sweep()
        maintenance.sweep()
    job.refresh_from_db()
    assert len(upsampler.submits) == 1
    assert job.upscaler_job_id


def test_sweeper_restarts_a_paid_job_whose_task_was_lost(
    upsampler, paid_job, django_capture_on_commit_callbacks
):
    upsampler.pending_polls = None
    job = paid_job(paid_at=timezone.now() - timedelta(minutes=2))
    with django_capture_on_commit_callbacks(execute=True):
        counts = maintenance.sweep()
    job.refresh_from_db()
    assert counts["started"] == 1
    assert job.status == "processing" and len(upsampler.submits) == 1


def test_result_that_cannot_be_fetched_after_retries_fails_and_refunds(
    upsampler, paid_job, settings, django_capture_on_commit_callbacks
):
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "MAX_ATTEMPTS": 2}
    upsampler.result_fail_next = 10
    job = run_task(paid_job(20, 10), django_capture_on_commit_callbacks)
    job = poll_now(job, django_capture_on_commit_callbacks)
    assert job.status == "processing" and job.attempts == 1 and "503" in job.last_error

    job = poll_now(job, django_capture_on_commit_callbacks)
    assert job.status == "refunded"
    assert job.refund_reason == "result_unavailable"
    assert len(upsampler.calls("GET", "/files/")) == 2
    assert "could not retrieve the upscaled image" in mail.outbox[0].body


def test_result_over_the_size_cap_is_refused(
    upsampler, paid_job, settings, django_capture_on_commit_callbacks
):
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "RESULT_MAX_BYTES": 50}
    upsampler.result_size = (80, 40)
    before = set(fetching.temp_dir().iterdir())
    job = run_task(paid_job(20, 10, factor=4), django_capture_on_commit_callbacks)
    job = poll_now(job, django_capture_on_commit_callbacks)
    assert job.status == "refunded"
    assert "over the 50-byte limit" in describe(job.events.get(to_status="failed"))
    assert not [
        p for p in set(fetching.temp_dir().iterdir()) - before if p.name.startswith("result-")
    ]


def test_callback_arriving_before_the_upscaler_id_is_saved_is_not_lost(
    upsampler, paid_job, client, django_capture_on_commit_callbacks
):
    from wagtail_smi.workflow import transition

    upsampler.result_size = (80, 40)
    job = paid_job(20, 10, factor=4)
    # A worker has claimed the job and is still waiting for Upsampler's answer...
    transition(
        job,
        "processing",
        next_attempt_at=timezone.now() - maintenance.OVERDUE_AFTER,
        code="processing_started",
    )
    # ...when the callback comes in.
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/smi-webhook/upsampler/{job.pk}/{job.callback_secret}/",
            {"id": "whatever", "status": "SUCCESS"},
            content_type="application/json",
        )
    assert response.status_code == 200
    assert upsampler.status_calls == []

    with django_capture_on_commit_callbacks(execute=True):
        maintenance.sweep()  # the (resumed) submission saves the id and polls at once
    job.refresh_from_db()
    assert job.status == "completed"
    assert len(upsampler.submits) == 1 and len(upsampler.status_calls) == 1


def use_status_bug_upscaler(upsampler, settings):
    settings.WAGTAIL_SMI = {
        **settings.WAGTAIL_SMI,
        "UPSCALER": {
            **settings.WAGTAIL_SMI["UPSCALER"],
            "CLASS": "tests.test_processing_upsampler.StatusBugUpscaler",
        },
        "MAX_ATTEMPTS": 2,
    }


def test_unexpected_status_error_is_retried_then_needs_attention(
    upsampler, paid_job, settings, django_capture_on_commit_callbacks
):
    upsampler.pending_polls = None
    job = run_task(paid_job(), django_capture_on_commit_callbacks)
    use_status_bug_upscaler(upsampler, settings)

    job = poll_now(job, django_capture_on_commit_callbacks)
    assert job.status == "processing" and job.attempts == 1
    assert "AttributeError" in job.last_error
    assert job.next_attempt_at > timezone.now()  # the sweeper does not take it again at once
    assert mail.outbox == []

    job = poll_now(job, django_capture_on_commit_callbacks)
    assert job.status == "needs_attention"
    assert "gave up after 2 attempts" in job.last_error
    assert [m.to for m in mail.outbox] == [["ops@example.com"], ["buyer@example.com"]]


def test_unexpected_status_error_past_the_deadline_needs_attention(
    upsampler, paid_job, settings, django_capture_on_commit_callbacks
):
    upsampler.pending_polls = None
    job = run_task(paid_job(), django_capture_on_commit_callbacks)
    use_status_bug_upscaler(upsampler, settings)
    PurchaseJob.objects.filter(pk=job.pk).update(deadline_at=timezone.now() - timedelta(seconds=1))

    job = poll_now(job, django_capture_on_commit_callbacks)
    assert job.status == "needs_attention"
    assert "deadline passed" in job.last_error
    [alert, told] = mail.outbox  # the admins, and the customer ("taking longer")
    assert alert.to == ["ops@example.com"] and job.short_id in alert.subject
    assert told.to == ["buyer@example.com"]


def test_result_ready_past_the_deadline_goes_to_an_admin(
    upsampler, paid_job, django_capture_on_commit_callbacks
):
    upsampler.pending_polls = None
    job = run_task(paid_job(), django_capture_on_commit_callbacks)
    upsampler.pending_polls = 0
    PurchaseJob.objects.filter(pk=job.pk).update(deadline_at=timezone.now() - timedelta(seconds=1))
    job = poll_now(job, django_capture_on_commit_callbacks)
    assert job.status == "needs_attention"
    assert len(mail.outbox) == 2  # the admins, and the customer ("taking longer")


def test_status_error_answer_that_is_a_json_list_is_a_final_error(
    upsampler, paid_job, django_capture_on_commit_callbacks
):
    upsampler.pending_polls = None
    job = run_task(paid_job(), django_capture_on_commit_callbacks)
    upsampler.status_answer = (404, ["unknown job"])
    job = poll_now(job, django_capture_on_commit_callbacks)
    assert job.status == "refunded"
    assert "unknown_upscale" in describe(job.events.get(to_status="failed"))


def test_storage_failure_while_delivering_is_retried_then_needs_attention(
    upsampler, paid_job, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "MAX_ATTEMPTS": 2}
    upsampler.result_size = (80, 40)
    not_a_folder = tmp_path / "private"
    not_a_folder.write_bytes(b"")  # the private storage's location is a file: OSError on save
    settings.STORAGES = {
        **settings.STORAGES,
        "smi_private": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(not_a_folder)},
        },
    }
    job = run_task(paid_job(20, 10, factor=4), django_capture_on_commit_callbacks)

    job = poll_now(job, django_capture_on_commit_callbacks)
    assert job.status == "processing" and job.attempts == 1
    assert "Error" in job.last_error and "delivering" in job.last_error
    assert job.next_attempt_at > timezone.now()

    job = poll_now(job, django_capture_on_commit_callbacks)
    assert job.status == "needs_attention"
    assert [m.to for m in mail.outbox] == [["ops@example.com"], ["buyer@example.com"]]


def test_result_url_with_an_impossible_port_is_refused(
    upsampler, paid_job, django_capture_on_commit_callbacks
):
    upsampler.result_url = "http://127.0.0.1:99999/result.png"
    job = run_task(paid_job(), django_capture_on_commit_callbacks)
    job = poll_now(job, django_capture_on_commit_callbacks)
    assert job.status == "refunded"
    assert "malformed" in describe(job.events.get(to_status="failed"))


def test_result_host_that_is_not_a_valid_name_is_refused(settings):
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "ALLOW_PRIVATE_URLS": False}
    with pytest.raises(ResultRejected):
        check_result_url("https://" + "a" * 64 + ".example/result.png")


def test_validating_a_large_result_leaves_pillows_bomb_guard_as_it_was(
    upsampler, paid_job, monkeypatch, tmp_path
):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    job = paid_job(20, 10, factor=4)  # 80×40 = 3200 pixels
    path = tmp_path / "result.part"
    Image.new("RGB", (80, 40)).save(path, format="PNG")

    final = fetching.validate_result(path, job.output_width, job.output_height)

    assert final.suffix == ".png"
    assert Image.MAX_IMAGE_PIXELS == 1000
