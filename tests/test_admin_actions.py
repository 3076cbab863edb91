"""Order actions: a confirmation page (GET) says what will happen, its form (POST) runs the
real operation through the state machine, as the admin."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.html_support import one, select, text
from wagtail_smi.models import EventCode, JobEvent
from wagtail_smi.timeline import describe

pytestmark = pytest.mark.django_db


def action_url(action: str, job) -> str:
    return reverse(f"smi_orders:action_{action}", args=[job.pk])


def inspect_url(job) -> str:
    return reverse("smi_orders:inspect", args=[job.pk])


def open_confirmation(client, action, job):
    """The action's confirmation page: it posts back to itself, and changes nothing."""
    events_before = job.events.count()
    response = client.get(action_url(action, job))
    assert response.status_code == 200
    form = one(response, "form.smi-confirm__form")
    assert (form["action"], form["method"]) == (action_url(action, job), "post")
    assert one(form, "a.button-secondary")["href"] == inspect_url(job)  # "No, go back"
    assert job.events.count() == events_before
    return response


def prefilled(page) -> dict:
    """What the page's form sends unchanged (the refund's amount and token, say)."""
    form = one(page, "form.smi-confirm__form")
    return {
        field["name"]: field["value"]
        for field in form.select("input[name][value]")
        if field["name"] != "csrfmiddlewaretoken" and field.get("type") not in ("checkbox", "radio")
    }


def confirm(client, action, job, data=None) -> list[str]:
    """Open the confirmation page, then submit it: the messages shown back on the order."""
    page = open_confirmation(client, action, job)
    response = client.post(action_url(action, job), {**prefilled(page), **(data or {})})
    assert response.status_code == 302
    assert response.url == inspect_url(job)
    return [str(m) for m in get_messages(response.wsgi_request)]


def refused(client, action, job, data):
    """A form that does not validate: the page again, with the errors, nothing done."""
    response = client.post(action_url(action, job), data)
    assert response.status_code == 200
    one(response, "form.smi-confirm__form")
    return response


def field_error(response, name: str) -> str:
    """The error shown beside the field ``name`` on the page."""
    [wrapper] = [w for w in select(response, ".w-field__wrapper") if w.select(f'[name="{name}"]')]
    return text(wrapper, ".w-field__errors")


def consequences(response) -> str:
    return text(response, ".smi-confirm__consequences")


def last_event(job) -> JobEvent:
    """The order's latest event, its email notes left out."""
    events = job.events.exclude(code__in=("email_sent", "email_failed"))
    return events.order_by("-created_at", "-id").first()


def test_retry_moves_needs_attention_back_to_paid_as_the_admin(
    manager_client, sales_manager, make_job
):
    job = make_job("needs_attention", paid_at=timezone.now(), last_error="stuck")
    page = open_confirmation(manager_client, "retry", job)
    assert "processed again" in consequences(page)

    messages = confirm(manager_client, "retry", job)

    job.refresh_from_db()
    assert job.status == "paid"
    assert job.last_error == ""
    event = last_event(job)
    assert (event.from_status, event.to_status, event.actor) == (
        "needs_attention",
        "paid",
        sales_manager,
    )
    assert messages == ["Processing restarted."]


def test_refund_refunds_in_full_with_reason_and_actor(
    manager_client, sales_manager, make_job, django_capture_on_commit_callbacks
):
    job = make_job("completed", paid_at=timezone.now(), amount_cents=576, email="buyer@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        messages = confirm(manager_client, "refund", job, {"reason": "Customer asked"})
    job.refresh_from_db()
    assert job.status == "refunded"
    assert job.refund_amount_cents == 576
    assert job.refund_reason == "Customer asked"
    assert job.access_revoked_at is not None
    event = last_event(job)
    assert (event.to_status, event.actor, event.data["reason"]) == (
        "refunded",
        sales_manager,
        "Customer asked",
    )
    assert "Customer asked" in describe(event)
    assert messages == ["Refunded $5.76."]
    assert [m.to for m in mail.outbox] == [["buyer@example.com"]]


def test_refund_confirmation_shows_the_amount_and_asks_for_a_reason(manager_client, make_job):
    job = make_job("completed", paid_at=timezone.now(), amount_cents=576, discount_cents=100)

    page = open_confirmation(manager_client, "refund", job)

    # What goes back is what was paid (after the promotion code), in the order's currency.
    assert text(page, "[data-smi-refund-amount]") == "$4.76"
    assert one(page, "input[name=amount]")["value"] == "4.76"
    assert "Refunding everything left ($4.76)" in consequences(page)
    assert "download link stops working" in consequences(page)
    assert text(page, "form.smi-confirm__form button[type=submit]") == "Yes, refund"
    reason = one(page, "form.smi-confirm__form input[name=reason]")
    assert reason.has_attr("required")


def test_refund_of_an_order_in_the_pipeline_says_processing_stops_first(manager_client, make_job):
    job = make_job("processing", paid_at=timezone.now(), amount_cents=576)
    page = open_confirmation(manager_client, "refund", job)
    assert "processing stops first" in consequences(page)
    assert "Refunding less: processing carries on" in consequences(page)
    assert "download link" not in consequences(page)


def test_refund_needs_a_reason(manager_client, make_job):
    job = make_job("completed", paid_at=timezone.now())
    response = refused(manager_client, "refund", job, {"reason": "  "})
    assert "This field is required." in field_error(response, "reason")
    job.refresh_from_db()
    assert job.status == "completed"
    assert not job.events.exists()


def test_resend_issues_a_new_link_with_a_later_expiry(
    manager_client, sales_manager, make_job, django_capture_on_commit_callbacks
):
    old_expiry = timezone.now() - timedelta(hours=1)
    job = make_job(
        "completed",
        paid_at=timezone.now(),
        email="buyer@example.com",
        result_path="wagtail_smi/x/result.png",
        token_hash="a" * 64,
        token_expires_at=old_expiry,
    )
    page = open_confirmation(manager_client, "resend_email", job)
    assert "emailed to buyer@example.com" in consequences(page)
    assert "current link stops working" in consequences(page)

    with django_capture_on_commit_callbacks(execute=True):
        messages = confirm(manager_client, "resend_email", job)

    job.refresh_from_db()
    assert job.token_hash != "a" * 64
    assert job.token_expires_at > timezone.now() + timedelta(hours=23)
    assert last_event(job).actor == sales_manager
    assert messages == ["The download email was sent again with a new link."]
    assert [m.to for m in mail.outbox] == [["buyer@example.com"]]


def test_redeliver_rebuilds_a_lost_file_with_the_local_upscaler(
    manager_client, sales_manager, make_job, make_image
):
    image = make_image(60, 40)
    job = make_job(
        "completed",
        image=image,
        paid_at=timezone.now(),
        email="buyer@example.com",
        file_deleted_at=timezone.now(),
        result_path="",
    )
    messages = confirm(manager_client, "redeliver", job)
    job.refresh_from_db()
    assert messages == ["The delivery is being rebuilt."], messages
    assert job.result_path and job.file_deleted_at is None
    assert last_event(job).actor == sales_manager


def test_revoke_stops_the_download_and_keeps_the_order_completed(
    manager_client, sales_manager, make_job
):
    job = make_job("completed", paid_at=timezone.now(), result_path="wagtail_smi/x/result.png")
    page = open_confirmation(manager_client, "revoke", job)
    assert "link stops working now" in consequences(page)

    messages = confirm(manager_client, "revoke", job, {"reason": "Chargeback opened"})

    job.refresh_from_db()
    assert job.status == "completed"
    assert job.access_revoked_at is not None
    event = last_event(job)
    assert (event.code, event.actor, event.data["reason"]) == (
        EventCode.ACCESS_REVOKED,
        sales_manager,
        "Chargeback opened",
    )
    assert messages == ["The download was revoked."]


def test_revoke_needs_a_reason(manager_client, make_job):
    job = make_job("completed", paid_at=timezone.now(), result_path="wagtail_smi/x/result.png")
    response = refused(manager_client, "revoke", job, {"reason": ""})
    assert "This field is required." in field_error(response, "reason")
    job.refresh_from_db()
    assert job.access_revoked_at is None
    assert not job.events.exists()


def test_domain_refusal_is_shown_as_an_admin_error(manager_client, make_job):
    job = make_job("completed", paid_at=timezone.now(), result_path="")  # nothing to resend
    messages = confirm(manager_client, "resend_email", job)
    assert messages == [
        "The action failed: Only a completed order with a delivered file can be resent."
    ]
    job.refresh_from_db()
    assert job.status == "completed"


@pytest.mark.parametrize("method", ["get", "post"])
def test_action_in_the_wrong_state_changes_nothing(manager_client, make_job, method):
    job = make_job("completed", paid_at=timezone.now())
    response = getattr(manager_client, method)(action_url("retry", job))
    assert (response.status_code, response.url) == (302, inspect_url(job))
    messages = [str(m) for m in get_messages(response.wsgi_request)]
    job.refresh_from_db()
    assert job.status == "completed"
    assert not job.events.exists()
    assert "not possible" in messages[0]


STATES_AND_ACTIONS = {
    "awaiting_payment": [],
    "abandoned": [],
    "paid": ["take_in_hand", "refund"],
    "processing": ["take_in_hand", "refund"],
    "completed": ["resend_email", "redeliver", "revoke", "refund"],
    "failed": ["refund"],
    "refunded": [],
    "needs_attention": ["take_in_hand", "retry", "redeliver", "refund", "resolve"],
}


@pytest.mark.parametrize("status, actions", STATES_AND_ACTIONS.items())
def test_the_order_page_offers_the_actions_its_state_allows(
    manager_client, make_job, status, actions
):
    job = make_job(status, paid_at=timezone.now())
    page = manager_client.get(inspect_url(job))
    offered = select(page, "[data-smi-action]")
    assert [item["data-smi-action"] for item in offered] == actions
    for item, action in zip(offered, actions, strict=True):
        assert one(item, "a")["href"] == action_url(action, job)
    if not actions:
        assert not select(page, ".smi-order__actions")


def test_resolve_delivered_by_hand_completes_the_order(manager_client, sales_manager, make_job):
    job = make_job("needs_attention", paid_at=timezone.now())
    page = open_confirmation(manager_client, "resolve", job)
    assert "Nothing is sent to the payment provider" in consequences(page)

    messages = confirm(
        manager_client, "resolve", job, {"outcome": "delivered", "reason": "Sent by WeTransfer"}
    )

    job.refresh_from_db()
    assert job.status == "completed"
    event = last_event(job)
    assert event.actor == sales_manager
    assert "delivered by hand" in describe(event) and "Sent by WeTransfer" in describe(event)
    assert messages == ["Marked as delivered by hand."]


def test_resolve_refunded_outside_records_amount_and_reason(
    manager_client, sales_manager, make_job
):
    job = make_job("needs_attention", paid_at=timezone.now(), amount_cents=576)
    confirm(
        manager_client,
        "resolve",
        job,
        {"outcome": "refunded_outside", "reason": "Bank transfer", "amount": "2.50"},
    )
    job.refresh_from_db()
    assert job.status == "refunded"
    assert (job.refund_amount_cents, job.refund_reason) == (250, "Bank transfer")
    event = last_event(job)
    assert event.actor == sales_manager and "$2.50" in describe(event)


@pytest.mark.parametrize("amount", ["9.99", "abc", "1.234", "-1"])
def test_resolve_refuses_impossible_amounts(manager_client, make_job, amount):
    job = make_job("needs_attention", paid_at=timezone.now(), amount_cents=576)
    response = refused(
        manager_client,
        "resolve",
        job,
        {"outcome": "refunded_outside", "reason": "x", "amount": amount},
    )
    assert field_error(response, "amount")
    job.refresh_from_db()
    assert job.status == "needs_attention"


def test_actions_require_csrf_token(sales_manager, make_job):
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(sales_manager)
    job = make_job("needs_attention", paid_at=timezone.now())
    response = csrf_client.post(action_url("retry", job))
    assert response.status_code == 403
    job.refresh_from_db()
    assert job.status == "needs_attention"


def test_inspect_shows_the_event_log_with_the_acting_user(manager_client, sales_manager, make_job):
    job = make_job("needs_attention", paid_at=timezone.now())
    confirm(manager_client, "resolve", job, {"outcome": "delivered", "reason": "Handled"})
    page = manager_client.get(inspect_url(job))
    [row] = select(page, ".smi-timeline tbody tr")
    cells = [text(cell) for cell in row.select("td")]
    assert cells[1] == "Marked as delivered by hand. Reason: Handled → Completed"
    assert cells[2] == sales_manager.get_username()


def test_take_in_hand_stops_the_automatic_refund_as_the_admin(
    manager_client, sales_manager, make_job
):
    job = make_job("needs_attention", paid_at=timezone.now())
    page = open_confirmation(manager_client, "take_in_hand", job)
    assert "no longer refunded automatically" in consequences(page)

    messages = confirm(manager_client, "take_in_hand", job)

    job.refresh_from_db()
    assert (job.status, job.taken_in_hand_by) == ("needs_attention", sales_manager)
    assert job.taken_in_hand_at is not None
    assert messages == ["You have taken this order in hand."]
    event = last_event(job)
    assert (event.code, event.actor) == ("taken_in_hand", sales_manager)
    # Taken: the action is no longer offered.
    offered = select(manager_client.get(inspect_url(job)), "[data-smi-action]")
    assert "take_in_hand" not in [item["data-smi-action"] for item in offered]


def test_a_refused_refund_is_reported_as_such(manager_client, paid_stripe_job, fake_stripe):
    job = paid_stripe_job("completed")
    fake_stripe.refund_mode = "refuse"

    messages = confirm(manager_client, "refund", job, {"reason": "Customer asked"})

    job.refresh_from_db()
    assert job.status == "completed"  # the customer keeps the file; the admin sees why
    assert job.last_error
    assert messages and messages[0].startswith("The refund could not be made")


# --- the resolve form's amount, through the real admin pages as a logged-in superuser -----


@pytest.fixture
def superuser_csrf_client(superuser):
    """A browser-like client: logged in with a password, CSRF checks on."""
    client = Client(enforce_csrf_checks=True)
    assert client.login(username=superuser.get_username(), password="pw-root")
    return client


def submit_confirmation_form(client, action, job, data):
    """Open the order, follow its link to the action, submit that page's form with its
    CSRF token, as a browser would."""
    order = client.get(inspect_url(job))
    link = one(order, f'[data-smi-action="{action}"] a')["href"]
    page = client.get(link)
    form = one(page, "form.smi-confirm__form")
    token = one(form, "input[name=csrfmiddlewaretoken]")["value"]
    return client.post(form["action"], {**data, "csrfmiddlewaretoken": token})


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
    job = make_job(
        "needs_attention", paid_at=timezone.now(), amount_cents=amount_cents, currency=currency
    )

    response = submit_confirmation_form(
        superuser_csrf_client,
        "resolve",
        job,
        {"outcome": "refunded_outside", "reason": "Bank transfer", "amount": amount},
    )

    assert response.status_code == 200
    assert why in field_error(response, "amount")
    assert one(response, "input[name=amount]")["value"] == amount  # kept for correction
    job.refresh_from_db()
    assert job.status == "needs_attention"
    assert (job.refund_amount_cents, job.refund_reason) == (0, "")
    assert not job.events.exists()


@pytest.mark.parametrize(
    "currency, amount_cents, amount, refunded",
    [
        ("usd", 576, "2.50", 250),
        ("usd", 576, "2,5", 250),
        ("usd", 576, "5.760", 576),
        ("jpy", 5000, "50", 50),
    ],
)
def test_resolve_takes_plain_amounts_in_the_orders_currency(
    superuser_csrf_client, make_job, currency, amount_cents, amount, refunded
):
    job = make_job(
        "needs_attention", paid_at=timezone.now(), amount_cents=amount_cents, currency=currency
    )

    response = submit_confirmation_form(
        superuser_csrf_client,
        "resolve",
        job,
        {"outcome": "refunded_outside", "reason": "Bank transfer", "amount": amount},
    )

    assert response.status_code == 302
    job.refresh_from_db()
    assert (job.status, job.refund_amount_cents) == ("refunded", refunded)


def test_resolve_caps_the_amount_at_what_was_paid_after_a_discount(superuser_csrf_client, make_job):
    job = make_job("needs_attention", paid_at=timezone.now(), amount_cents=576, discount_cents=100)

    response = submit_confirmation_form(
        superuser_csrf_client,
        "resolve",
        job,
        {"outcome": "refunded_outside", "reason": "x", "amount": "5.76"},
    )
    assert field_error(response, "amount") == "At most $4.76 was paid."
    response = submit_confirmation_form(
        superuser_csrf_client, "resolve", job, {"outcome": "refunded_outside", "reason": "x"}
    )
    assert response.status_code == 302

    job.refresh_from_db()
    assert (job.status, job.refund_amount_cents) == ("refunded", 476)
