"""Polling on time: each job gets a django-q2 schedule of its own for its next poll, the
first 30 seconds after submission, backing off to every 2 minutes; it is cleaned up when
it ran or the job moved on.

django-q2's own scheduler runs them (``django_q.scheduler.scheduler``); in the tests'
sync mode the task it creates runs at once, in-process. Time passing is simulated by
moving the due times into the past.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from django_q.models import Schedule
from django_q.scheduler import scheduler

from tests.upsampler_server import FakeUpsampler
from wagtail_smi import queue, tasks
from wagtail_smi.models import PurchaseJob
from wagtail_smi.operations import maintenance

BASE = "http://testserver"


@pytest.fixture
def upsampler():
    with FakeUpsampler(api_key="k") as server:
        settings = server.smi_settings(PUBLIC_BASE_URL=BASE, ALLOW_DUMMY_PAYMENTS=True)
        settings["UPSCALER"]["OPTIONS"]["TIMEOUT"] = 5
        with override_settings(WAGTAIL_SMI=settings, ADMINS=[("Ops", "ops@example.com")]):
            yield server


@pytest.fixture
def submitted(upsampler, make_job, make_image, django_capture_on_commit_callbacks):
    """A paid job a worker has just submitted to the (held) upscaler."""
    upsampler.pending_polls = None

    def factory(**fields):
        image = make_image(20, 10, title="Harbour")
        job = make_job(
            "paid",
            image=image,
            paid_at=timezone.now(),
            email="buyer@example.com",
            payment_provider="dummy",
            **fields,
        )
        with django_capture_on_commit_callbacks(execute=True):
            queue.enqueue_processing(job.pk)
        job.refresh_from_db()
        assert job.status == "processing" and job.upscaler_job_id
        return job

    return factory


def own_schedule(job) -> Schedule | None:
    return Schedule.objects.filter(name=queue.job_schedule_name(job.pk)).first()


def time_passes_until_due(job, overdue: timedelta = timedelta(seconds=1)) -> None:
    past = timezone.now() - overdue
    PurchaseJob.objects.filter(pk=job.pk).update(next_attempt_at=past)
    Schedule.objects.filter(name=queue.job_schedule_name(job.pk)).update(next_run=past)


def run_scheduler(captured) -> None:
    with captured(execute=True):
        scheduler()


def test_the_first_poll_is_scheduled_30_seconds_after_submission(submitted):
    job = submitted()

    schedule = own_schedule(job)
    assert schedule is not None
    assert (schedule.func, schedule.schedule_type, schedule.repeats) == (
        "wagtail_smi.tasks.process_job",
        Schedule.ONCE,
        -1,
    )
    assert schedule.args == repr(str(job.pk))
    assert schedule.next_run == job.next_attempt_at
    wait = (schedule.next_run - timezone.now()).total_seconds()
    assert 25 < wait <= 30


def test_the_scheduler_polls_a_due_job_then_plans_the_next_poll(
    submitted, upsampler, django_capture_on_commit_callbacks
):
    job = submitted()
    time_passes_until_due(job)

    run_scheduler(django_capture_on_commit_callbacks)

    assert len(upsampler.status_calls) == 1
    job.refresh_from_db()
    assert job.status == "processing" and job.upscaler_status == "IN_PROGRESS"
    schedule = own_schedule(job)
    assert schedule.next_run == job.next_attempt_at > timezone.now()
    assert Schedule.objects.filter(name=queue.job_schedule_name(job.pk)).count() == 1


def test_polls_back_off_to_every_two_minutes(
    submitted, upsampler, django_capture_on_commit_callbacks
):
    job = submitted()
    # Ten minutes of waiting already: the next poll is the longest interval away.
    PurchaseJob.objects.filter(pk=job.pk).update(
        processing_at=timezone.now() - timedelta(minutes=10)
    )
    time_passes_until_due(job)

    run_scheduler(django_capture_on_commit_callbacks)

    wait = (own_schedule(job).next_run - timezone.now()).total_seconds()
    assert 115 < wait <= 120


def test_the_sweeper_and_the_schedule_together_ask_the_upscaler_once(
    submitted, upsampler, django_capture_on_commit_callbacks
):
    job = submitted()
    # The scheduler fell behind (a busy worker): the sweeper takes the poll over.
    time_passes_until_due(job, overdue=timedelta(minutes=2))

    with django_capture_on_commit_callbacks(execute=True):
        maintenance.sweep()  # polls the overdue job
    run_scheduler(django_capture_on_commit_callbacks)  # finds it polled already

    assert len(upsampler.status_calls) == 1


def test_the_sweeper_leaves_a_poll_just_due_to_the_jobs_own_schedule(
    submitted, upsampler, django_capture_on_commit_callbacks
):
    job = submitted()
    time_passes_until_due(job)

    with django_capture_on_commit_callbacks(execute=True):
        counts = maintenance.sweep()
    assert counts["polled"] == 0 and upsampler.status_calls == []

    run_scheduler(django_capture_on_commit_callbacks)  # the job's own schedule polls it
    assert len(upsampler.status_calls) == 1


def test_a_poll_that_is_not_due_asks_nothing(submitted, upsampler):
    job = submitted()
    tasks.process_job(str(job.pk))  # a stray task, 30 seconds early
    assert upsampler.status_calls == []


def test_a_job_delivered_through_its_callback_loses_its_schedule(
    submitted, upsampler, client, django_capture_on_commit_callbacks
):
    job = submitted()
    assert own_schedule(job) is not None
    upsampler.result_size = (80, 40)
    upsampler.finish(job.upscaler_job_id)  # done; the callback is only recorded, not sent
    [(url, payload)] = upsampler.sent_callbacks

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url.removeprefix(BASE), payload, content_type="application/json")

    assert response.status_code == 200
    job.refresh_from_db()
    assert job.status == "completed"
    assert own_schedule(job) is None


def test_a_job_past_its_deadline_loses_its_schedule(
    submitted, upsampler, django_capture_on_commit_callbacks
):
    job = submitted()
    PurchaseJob.objects.filter(pk=job.pk).update(deadline_at=timezone.now() - timedelta(seconds=1))
    time_passes_until_due(job)

    run_scheduler(django_capture_on_commit_callbacks)

    job.refresh_from_db()
    assert job.status == "needs_attention"
    assert own_schedule(job) is None
    assert upsampler.status_calls == []  # the deadline comes first


def test_the_sweeper_drops_schedules_left_behind(make_job):
    later = timezone.now() + timedelta(minutes=1)
    done = make_job("completed", paid_at=timezone.now())
    waiting = make_job("processing", paid_at=timezone.now(), next_attempt_at=later)
    queue.schedule_processing(done.pk, later)
    queue.schedule_processing(waiting.pk, later)
    queue.schedule_processing(waiting.pk, later + timedelta(seconds=30))  # moved, not doubled

    assert maintenance.sweep()["schedules_dropped"] == 1

    assert own_schedule(done) is None
    assert own_schedule(waiting).next_run == later + timedelta(seconds=30)
