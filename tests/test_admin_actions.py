"""Order actions run the real domain functions, through the state machine, as the admin."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from tests.admin_support import *  # noqa: F403  (user and client fixtures)
from tests.stripe_fixtures import *  # noqa: F403  (the local Stripe server)
from wagtail_smi.models import JobEvent
from wagtail_smi.timeline import describe

pytestmark = pytest.mark.django_db


def post(client, action, job, data=None):
    response = client.post(reverse(f"smi_orders:action_{action}", args=[job.pk]), data or {})
    assert response.status_code == 302
    assert response.url == reverse("smi_orders:inspect", args=[job.pk])
    return [str(m) for m in get_messages(response.wsgi_request)]


def last_event(job) -> JobEvent:
    return job.events.order_by("-created_at", "-id").first()


def test_retry_moves_needs_attention_back_to_paid_as_the_admin(manager_client, sales_manager, make_job):
    job = make_job("needs_attention", paid_at=timezone.now(), last_error="stuck")
    messages = post(manager_client, "retry", job)
    job.refresh_from_db()
    assert job.status == "paid"
    assert job.last_error == ""
    event = last_event(job)
    assert (event.from_status, event.to_status, event.actor) == ("needs_attention", "paid", sales_manager)
    assert messages == ["Processing restarted."]


def test_refund_refunds_in_full_with_reason_and_actor(manager_client, sales_manager, make_job, django_capture_on_commit_callbacks):
    job = make_job("completed", paid_at=timezone.now(), amount_cents=576, email="buyer@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        messages = post(manager_client, "refund", job, {"reason": "Customer asked"})
    job.refresh_from_db()
    assert job.status == "refunded"
    assert job.refund_amount_cents == 576
    assert job.refund_reason == "Customer asked"
    assert job.access_revoked_at is not None
    event = last_event(job)
    assert (event.to_status, event.actor, event.data["reason"]) == ("refunded", sales_manager, "Customer asked")
    assert "Customer asked" in describe(event)
    assert messages == ["Refunded $5.76."]
    assert [m.to for m in mail.outbox] == [["buyer@example.com"]]


def test_refund_needs_a_reason(manager_client, make_job):
    job = make_job("completed", paid_at=timezone.now())
    messages = post(manager_client, "refund", job, {"reason": "  "})
    job.refresh_from_db()
    assert job.status == "completed"
    assert not job.events.exists()
    assert messages and "Reason" in messages[0]


def test_resend_issues_a_new_link_with_a_later_expiry(manager_client, sales_manager, make_job, django_capture_on_commit_callbacks):
    old_expiry = timezone.now() - timedelta(hours=1)
    job = make_job(
        "completed", paid_at=timezone.now(), email="buyer@example.com",
        result_path="wagtail_smi/x/result.png", token_hash="a" * 64, token_expires_at=old_expiry,
    )
    with django_capture_on_commit_callbacks(execute=True):
        messages = post(manager_client, "resend_email", job)
    job.refresh_from_db()
    assert job.token_hash != "a" * 64
    assert job.token_expires_at > timezone.now() + timedelta(hours=23)
    assert last_event(job).actor == sales_manager
    assert messages == ["The download email was sent again with a new link."]
    assert [m.to for m in mail.outbox] == [["buyer@example.com"]]


def test_redeliver_rebuilds_a_lost_file_with_the_local_upscaler(manager_client, sales_manager, make_job, make_image):
    image = make_image(60, 40)
    job = make_job(
        "completed", image=image, paid_at=timezone.now(), email="buyer@example.com",
        file_deleted_at=timezone.now(), result_path="",
    )
    messages = post(manager_client, "redeliver", job)
    job.refresh_from_db()
    assert messages == ["The delivery is being rebuilt."], messages
    assert job.result_path and job.file_deleted_at is None
    assert last_event(job).actor == sales_manager


def test_domain_refusal_is_shown_as_an_admin_error(manager_client, make_job):
    job = make_job("completed", paid_at=timezone.now(), result_path="")  # nothing to resend
    messages = post(manager_client, "resend_email", job)
    assert messages == ["The action failed: Only a completed order with a delivered file can be resent."]
    job.refresh_from_db()
    assert job.status == "completed"


def test_action_in_the_wrong_state_changes_nothing(manager_client, make_job):
    job = make_job("completed", paid_at=timezone.now())
    messages = post(manager_client, "retry", job)
    job.refresh_from_db()
    assert job.status == "completed"
    assert not job.events.exists()
    assert "not possible" in messages[0]


def test_resolve_delivered_by_hand_completes_the_order(manager_client, sales_manager, make_job):
    job = make_job("needs_attention", paid_at=timezone.now())
    messages = post(manager_client, "resolve", job, {"outcome": "delivered", "reason": "Sent by WeTransfer"})
    job.refresh_from_db()
    assert job.status == "completed"
    event = last_event(job)
    assert event.actor == sales_manager
    assert "delivered by hand" in describe(event) and "Sent by WeTransfer" in describe(event)
    assert messages == ["Marked as delivered by hand."]


def test_resolve_refunded_outside_records_amount_and_reason(manager_client, sales_manager, make_job):
    job = make_job("needs_attention", paid_at=timezone.now(), amount_cents=576)
    post(manager_client, "resolve", job, {"outcome": "refunded_outside", "reason": "Bank transfer", "amount": "2.50"})
    job.refresh_from_db()
    assert job.status == "refunded"
    assert (job.refund_amount_cents, job.refund_reason) == (250, "Bank transfer")
    event = last_event(job)
    assert event.actor == sales_manager and "$2.50" in describe(event)


@pytest.mark.parametrize("amount", ["9.99", "abc", "1.234", "-1"])
def test_resolve_refuses_impossible_amounts(manager_client, make_job, amount):
    job = make_job("needs_attention", paid_at=timezone.now(), amount_cents=576)
    messages = post(manager_client, "resolve", job, {"outcome": "refunded_outside", "reason": "x", "amount": amount})
    job.refresh_from_db()
    assert job.status == "needs_attention"
    assert messages and messages[0].startswith("Amount refunded")


def test_actions_require_csrf_token(client, sales_manager, make_job):
    from django.test import Client

    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(sales_manager)
    job = make_job("needs_attention", paid_at=timezone.now())
    response = csrf_client.post(reverse("smi_orders:action_retry", args=[job.pk]))
    assert response.status_code == 403
    job.refresh_from_db()
    assert job.status == "needs_attention"


def test_inspect_shows_the_event_log_with_the_acting_user(manager_client, sales_manager, make_job):
    job = make_job("needs_attention", paid_at=timezone.now())
    post(manager_client, "resolve", job, {"outcome": "delivered", "reason": "Handled"})
    html = manager_client.get(reverse("smi_orders:inspect", args=[job.pk])).content.decode()
    assert "needs_attention → completed" in html
    assert sales_manager.get_username() in html
    assert "Handled" in html


def test_a_refused_refund_is_reported_as_such(manager_client, paid_stripe_job, fake_stripe):
    job = paid_stripe_job("completed")
    fake_stripe.refund_mode = "refuse"

    messages = post(manager_client, "refund", job, {"reason": "Customer asked"})

    job.refresh_from_db()
    assert job.status == "completed"  # the customer keeps the file; the admin sees why
    assert job.last_error
    assert messages and messages[0].startswith("The refund could not be made")


# --- the resolve form's amount, through the real admin view as a logged-in superuser ------


@pytest.fixture
def superuser_csrf_client(superuser):
    """A browser-like client: logged in with a password, CSRF checks on."""
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    assert client.login(username=superuser.get_username(), password="pw-root")
    return client


def post_from_inspect_page(client, action, job, data):
    """Open the order in the admin, then submit the action's form with its CSRF token."""
    import re

    html = client.get(reverse("smi_orders:inspect", args=[job.pk])).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    response = client.post(
        reverse(f"smi_orders:action_{action}", args=[job.pk]),
        {**data, "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.mark.parametrize(
    "currency, amount_cents, amount, why",
    [
        ("usd", 576, "Infinity", "Enter a plain amount"),
        ("usd", 576, "-Infinity", "cannot be negative"),
        ("usd", 576, "NaN", "Enter a plain amount"),
        ("usd", 576, "sNaN", "Enter a plain amount"),
        ("usd", 576, "1e999", "Enter a plain amount"),
        ("usd", 576, "5.761", "at most 2 decimal places"),
        ("jpy", 5000, "50.5", "whole numbers"),
    ],
)
def test_resolve_refuses_amounts_that_are_not_plain_money_and_changes_nothing(
    superuser_csrf_client, make_job, currency, amount_cents, amount, why
):
    job = make_job("needs_attention", paid_at=timezone.now(), amount_cents=amount_cents, currency=currency)

    messages = post_from_inspect_page(
        superuser_csrf_client, "resolve", job,
        {"outcome": "refunded_outside", "reason": "Bank transfer", "amount": amount},
    )

    assert len(messages) == 1 and messages[0].startswith("Amount refunded:")
    assert why in messages[0]
    job.refresh_from_db()
    assert job.status == "needs_attention"
    assert (job.refund_amount_cents, job.refund_reason) == (0, "")
    assert not job.events.exists()


@pytest.mark.parametrize(
    "currency, amount_cents, amount, refunded",
    [("usd", 576, "2.50", 250), ("usd", 576, "2,5", 250), ("usd", 576, "5.760", 576), ("jpy", 5000, "50", 50)],
)
def test_resolve_takes_plain_amounts_in_the_orders_currency(
    superuser_csrf_client, make_job, currency, amount_cents, amount, refunded
):
    job = make_job("needs_attention", paid_at=timezone.now(), amount_cents=amount_cents, currency=currency)

    post_from_inspect_page(
        superuser_csrf_client, "resolve", job,
        {"outcome": "refunded_outside", "reason": "Bank transfer", "amount": amount},
    )

    job.refresh_from_db()
    assert (job.status, job.refund_amount_cents) == ("refunded", refunded)


def test_resolve_caps_the_amount_at_what_was_paid_after_a_discount(superuser_csrf_client, make_job):
    job = make_job("needs_attention", paid_at=timezone.now(), amount_cents=576, discount_cents=100)

    messages = post_from_inspect_page(
        superuser_csrf_client, "resolve", job,
        {"outcome": "refunded_outside", "reason": "x", "amount": "5.76"},
    )
    assert messages == ["Amount refunded: At most $4.76 was paid."]
    post_from_inspect_page(superuser_csrf_client, "resolve", job, {"outcome": "refunded_outside", "reason": "x"})

    job.refresh_from_db()
    assert (job.status, job.refund_amount_cents) == ("refunded", 476)
