"""The job state machine (SPEC §2): allowed moves, refusals, the log, and races."""

import threading

import pytest
from django.db import close_old_connections

from wagtail_smi.models import EventCode, JobEvent, JobStatus, PurchaseJob
from wagtail_smi.workflow import (
    ALLOWED_TRANSITIONS,
    STATE_TIMESTAMPS,
    TransitionNotAllowed,
    record_event,
    transition,
    update_job,
)

S = JobStatus
ALLOWED = [(src, dst) for src, dsts in ALLOWED_TRANSITIONS.items() for dst in sorted(dsts)]


def test_the_table_covers_every_state():
    assert set(ALLOWED_TRANSITIONS) == set(S.values)


def test_the_table_contains_the_spec_moves():
    spec = {
        (S.AWAITING_PAYMENT, S.PAID),
        (S.PAID, S.PROCESSING),
        (S.PROCESSING, S.COMPLETED),
        (S.AWAITING_PAYMENT, S.ABANDONED),
        (S.PAID, S.FAILED),
        (S.PROCESSING, S.FAILED),
        (S.FAILED, S.REFUNDED),
        (S.FAILED, S.NEEDS_ATTENTION),
        (S.PAID, S.NEEDS_ATTENTION),
        (S.PROCESSING, S.NEEDS_ATTENTION),
        (S.COMPLETED, S.REFUNDED),
        (S.NEEDS_ATTENTION, S.PAID),
        (S.NEEDS_ATTENTION, S.REFUNDED),
    }
    assert spec <= set(ALLOWED)


@pytest.mark.django_db
@pytest.mark.parametrize(("src", "dst"), ALLOWED)
def test_every_allowed_transition_is_applied_stamped_and_logged(make_job, src, dst):
    job = make_job(src)
    moved = transition(job, dst, code=EventCode.RETRIED, data={"because": "test"})
    job.refresh_from_db()
    assert job.status == dst == moved.status
    if dst in STATE_TIMESTAMPS:
        assert getattr(job, STATE_TIMESTAMPS[dst]) is not None
    event = job.events.get()
    assert (event.kind, event.from_status, event.to_status, event.code, event.data) == (
        "transition",
        src,
        dst,
        "retried",
        {"because": "test"},
    )


REFUSED = [
    (S.AWAITING_PAYMENT, S.COMPLETED),
    (S.AWAITING_PAYMENT, S.REFUNDED),
    (S.PAID, S.PAID),
    (S.PAID, S.COMPLETED),
    (S.COMPLETED, S.PROCESSING),
    (S.REFUNDED, S.PAID),
    (S.REFUNDED, S.COMPLETED),
    (S.ABANDONED, S.COMPLETED),
    (S.FAILED, S.COMPLETED),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("src", "dst"), REFUSED)
def test_refused_transitions_change_nothing_and_are_logged(make_job, src, dst, caplog):
    job = make_job(src)
    with pytest.raises(TransitionNotAllowed):
        transition(job, dst, refund_reason="should not be saved", code="legacy")
    job.refresh_from_db()
    assert job.status == src
    assert job.refund_reason == ""
    event = job.events.get()
    assert (event.kind, event.from_status, event.to_status) == ("refused", src, dst)
    assert "not allowed" in caplog.text


@pytest.mark.django_db
def test_only_from_narrows_the_sources(make_job):
    job = make_job(S.NEEDS_ATTENTION)
    with pytest.raises(TransitionNotAllowed):
        transition(
            job, S.PAID, only_from=[S.AWAITING_PAYMENT, S.ABANDONED], code="payment_received"
        )
    assert PurchaseJob.objects.get(pk=job.pk).status == S.NEEDS_ATTENTION


@pytest.mark.django_db
def test_fields_are_saved_with_the_transition(make_job):
    job = make_job(S.AWAITING_PAYMENT)
    transition(
        job, S.PAID, payment_intent_id="pi_123", email="buyer@example.com", code="payment_received"
    )
    job.refresh_from_db()
    assert (job.payment_intent_id, job.email) == ("pi_123", "buyer@example.com")


@pytest.mark.django_db
def test_a_retried_order_keeps_its_payment_time(make_job):
    from datetime import timedelta

    from django.utils import timezone

    paid = timezone.now() - timedelta(days=3)
    job = make_job(S.NEEDS_ATTENTION, paid_at=paid)
    transition(job, S.PAID, code="payment_received")
    job.refresh_from_db()
    assert job.paid_at == paid
    assert job.needs_attention_at is None or job.needs_attention_at <= timezone.now()


@pytest.mark.django_db
def test_update_job_refuses_status_changes(make_job):
    job = make_job()
    with pytest.raises(ValueError):
        update_job(job, status=S.PAID)
    update_job(job, attempts=3)
    job.refresh_from_db()
    assert job.attempts == 3 and job.status == S.AWAITING_PAYMENT


@pytest.mark.django_db
def test_events_are_append_only(make_job):
    event = record_event(make_job(), EventCode.LINK_RESENT, {"n": 1})
    event.data = {"n": 2}
    with pytest.raises(ValueError):
        event.save()


@pytest.mark.django_db
def test_access_key_and_callback_secret_are_stable_and_distinct(make_job):
    job = make_job()
    assert job.check_access_key(job.access_key)
    assert not job.check_access_key("")
    assert not job.check_access_key(job.callback_secret)
    assert job.check_callback_secret(job.callback_secret)
    assert job.access_key == PurchaseJob.objects.get(pk=job.pk).access_key


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_threads_racing_to_move_a_job_exactly_one_wins(make_job):
    job = make_job(S.AWAITING_PAYMENT)
    barrier = threading.Barrier(2)
    outcomes = []

    def race(target):
        try:
            barrier.wait()
            transition(job.pk, target, only_from=[S.AWAITING_PAYMENT], code="legacy")
            outcomes.append(("won", target))
        except TransitionNotAllowed:
            outcomes.append(("lost", target))
        finally:
            close_old_connections()

    threads = [threading.Thread(target=race, args=(t,)) for t in (S.PAID, S.ABANDONED)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [t for outcome, t in outcomes if outcome == "won"]
    assert len(winners) == 1
    job.refresh_from_db()
    assert job.status == winners[0]
    assert JobEvent.objects.filter(job=job, kind="transition").count() == 1
