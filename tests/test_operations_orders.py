"""The admin's operations on one order, called directly: resend_link, revoke, retry,
resolve_by_hand, and the permission check every admin edge runs first."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core import mail
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from tests.operations_support import codes, event, log
from wagtail_smi import tokens
from wagtail_smi.models import PurchaseJob
from wagtail_smi.operations import (
    ADMIN_OPERATIONS,
    DeliveryError,
    InvalidInput,
    NotAllowed,
    require_permission,
    resend_link,
    resolve_by_hand,
    retry,
    revoke,
)
from wagtail_smi.operations.resolution import DELIVERED_BY_HAND, REFUNDED_OUTSIDE
from wagtail_smi.workflow import TransitionNotAllowed

pytestmark = pytest.mark.django_db


@pytest.fixture
def delivered(make_job):
    """A completed order whose link was emailed a while ago and used twice."""
    return make_job(
        "completed",
        paid_at=timezone.now() - timedelta(days=1),
        email="buyer@example.com",
        result_path="wagtail_smi/x/result.jpg",
        token_hash=tokens.hash_token("T" * 64),
        token_expires_at=timezone.now() + timedelta(hours=1),
        download_count=2,
    )


@pytest.fixture
def stuck(make_job):
    """An order that needs attention after the upscaler kept failing."""
    return make_job(
        "needs_attention",
        paid_at=timezone.now() - timedelta(hours=3),
        email="buyer@example.com",
        attempts=5,
        last_error="gave up after 5 attempts",
        upscaler="upsampler",
        upscaler_job_id="up_1",
        upscaler_status="IN_PROGRESS",
        upscaler_submitted_at=timezone.now(),
        deadline_at=timezone.now() - timedelta(hours=2),
        amount_cents=192,
        discount_cents=42,
    )


# --- resend_link ------------------------------------------------------------------------------


def test_resend_link_issues_a_fresh_link_and_emails_it(
    delivered, superuser, queued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        resent = resend_link(delivered.pk, actor=superuser)

    assert resent.token_hash != tokens.hash_token("T" * 64)  # the old link stops working
    assert resent.download_count == 0
    assert resent.token_expires_at > timezone.now() + timedelta(hours=23)
    assert (resent.status, event(delivered, "link_resent").actor) == ("completed", superuser)
    [message] = mail.outbox
    [token] = re.findall(r"/smi/download/([A-Za-z0-9_-]{64})", message.body)
    assert (message.to, tokens.hash_token(token)) == (["buyer@example.com"], resent.token_hash)
    assert queued == []


@pytest.mark.parametrize(
    "fields",
    [
        {"access_revoked_at": timezone.now()},
        {"file_deleted_at": timezone.now()},
        {"email": ""},
        {"result_path": ""},
    ],
)
def test_resend_link_is_refused_when_there_is_nothing_to_send(make_job, fields):
    values = {"email": "buyer@example.com", "result_path": "wagtail_smi/x/result.jpg", **fields}
    job = make_job("completed", paid_at=timezone.now(), token_hash="h", **values)

    with pytest.raises(DeliveryError):
        resend_link(job.pk)

    assert (PurchaseJob.objects.get(pk=job.pk).token_hash, codes(job), mail.outbox) == ("h", [], [])


# --- revoke -----------------------------------------------------------------------------------


def test_revoke_stops_the_download_once(delivered, superuser):
    revoked = revoke(delivered.pk, reason="chargeback", actor=superuser)
    again = revoke(delivered.pk, reason="clicked twice", actor=superuser)

    assert revoked.status == "completed" and revoked.access_revoked_at is not None
    assert again.access_revoked_at == revoked.access_revoked_at
    assert log(delivered) == [("access_revoked", "", {"reason": "chargeback"})]
    assert event(delivered, "access_revoked").actor == superuser
    assert mail.outbox == []


def test_revoke_is_refused_for_an_order_not_delivered(make_job):
    job = make_job("processing", paid_at=timezone.now())

    with pytest.raises(NotAllowed):
        revoke(job.pk)

    assert (PurchaseJob.objects.get(pk=job.pk).access_revoked_at, codes(job)) == (None, [])


# --- retry ------------------------------------------------------------------------------------


def test_retry_puts_the_order_back_in_the_pipeline_keeping_the_upscalers_live_job(
    stuck, sales_manager, queued, django_capture_on_commit_callbacks
):
    paid_at = stuck.paid_at

    with django_capture_on_commit_callbacks(execute=True):
        retried = retry(stuck.pk, actor=sales_manager)

    assert (retried.status, retried.attempts, retried.last_error) == ("paid", 0, "")
    assert retried.paid_at == paid_at  # revenue stays dated by the payment
    assert retried.deadline_at > timezone.now() + timedelta(minutes=50)
    assert (retried.upscaler_job_id, retried.upscaler_status) == (
        "up_1",
        "IN_PROGRESS",
    )  # polled, not paid twice
    assert log(stuck) == [("retried", "paid", {})]
    assert event(stuck, "retried").actor == sales_manager
    assert queued == [("process", str(stuck.pk))]


def test_retry_submits_again_when_the_upscaler_failed_the_job(make_job, queued):
    job = make_job(
        "needs_attention",
        paid_at=timezone.now(),
        upscaler_job_id="up_1",
        upscaler_status="FAILED",
        upscaler_submitted_at=timezone.now(),
    )

    retried = retry(job.pk)

    assert (retried.upscaler_job_id, retried.upscaler_status, retried.upscaler_submitted_at) == (
        "",
        "",
        None,
    )


def test_retry_is_refused_unless_the_order_needs_attention(delivered, queued):
    with pytest.raises(TransitionNotAllowed):
        retry(delivered.pk)

    assert PurchaseJob.objects.get(pk=delivered.pk).status == "completed"
    assert log(delivered) == [("retried", "paid", {})]  # the refusal is logged, nothing applied
    assert event(delivered, "retried").kind == "refused"
    assert queued == []


# --- resolve_by_hand --------------------------------------------------------------------------


def test_resolving_as_delivered_by_hand_completes_the_order(stuck, superuser, queued):
    resolved = resolve_by_hand(
        stuck.pk, outcome=DELIVERED_BY_HAND, details="sent by WeTransfer", actor=superuser
    )

    assert (resolved.status, resolved.refund_amount_cents) == ("completed", 0)
    assert log(stuck) == [("resolved_delivered", "completed", {"details": "sent by WeTransfer"})]
    assert event(stuck, "resolved_delivered").actor == superuser
    assert (mail.outbox, queued) == ([], [])


@pytest.mark.parametrize(("amount", "recorded"), [(None, 150), (100, 100)])
def test_resolving_as_refunded_outside_records_the_amount(stuck, superuser, amount, recorded):
    resolved = resolve_by_hand(
        stuck.pk,
        outcome=REFUNDED_OUTSIDE,
        details="bank transfer",
        amount_cents=amount,
        actor=superuser,
    )

    assert (resolved.status, resolved.refund_amount_cents, resolved.refund_reason) == (
        "refunded",
        recorded,
        "bank transfer",
    )
    assert log(stuck) == [
        (
            "resolved_refunded",
            "refunded",
            {
                "details": "bank transfer",
                "amount_cents": recorded,
                "currency": "usd",
            },
        )
    ]
    assert mail.outbox == []


def test_an_unknown_outcome_is_refused_rather_than_recorded_as_a_refund(stuck):
    with pytest.raises(InvalidInput):
        resolve_by_hand(stuck.pk, outcome="delivred", details="typo in a script")

    assert PurchaseJob.objects.get(pk=stuck.pk).status == "needs_attention"


def test_an_order_that_does_not_need_attention_cannot_be_resolved(delivered):
    with pytest.raises(TransitionNotAllowed):
        resolve_by_hand(delivered.pk, outcome=REFUNDED_OUTSIDE, details="x")

    assert PurchaseJob.objects.get(pk=delivered.pk).status == "completed"


# --- require_permission -----------------------------------------------------------------------


@pytest.mark.parametrize("operation", ADMIN_OPERATIONS)
def test_an_editor_may_run_no_operation(editor, operation):
    with pytest.raises(PermissionDenied):
        require_permission(editor, operation)
    with pytest.raises(PermissionDenied):
        require_permission(AnonymousUser(), operation)


@pytest.mark.parametrize("operation", ADMIN_OPERATIONS)
def test_sales_managers_and_superusers_may_run_every_operation(sales_manager, superuser, operation):
    assert require_permission(sales_manager, operation) is None
    assert require_permission(superuser, operation) is None


def test_an_operation_not_on_the_admins_list_is_refused_to_everyone(superuser):
    with pytest.raises(PermissionDenied):
        require_permission(superuser, "delete_everything")


def test_a_deactivated_sales_manager_may_not_act(sales_manager):
    sales_manager.is_active = False

    with pytest.raises(PermissionDenied):
        require_permission(sales_manager, "refund")
