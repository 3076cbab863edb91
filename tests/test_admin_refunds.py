"""The refund confirmation page: what is left prefilled in the order's currency, partial
refunds that keep a delivered order (and its download, unless revoked), amounts over what is
left refused with a clear message, and one refund per submission whatever happens (a double
submit, a retry after a crash). Through the local Stripe server with the real stripe
library where money moves."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from tests.html_support import one, select, text
from wagtail_smi import operations
from wagtail_smi.models import JobEvent, PurchaseJob, RefundRequest
from wagtail_smi.operations import RefundNotPossible, RetryLater
from wagtail_smi.operations.refunds import ANSWER_WAIT, submission_key
from wagtail_smi.payments import get_payment_provider

pytestmark = pytest.mark.django_db


def refund_url(job) -> str:
    return reverse("smi_orders:action_refund", args=[job.pk])


def inspect_url(job) -> str:
    return reverse("smi_orders:inspect", args=[job.pk])


def open_form(client, job) -> dict:
    """The refund page's form, as a browser would submit it unchanged."""
    page = client.get(refund_url(job))
    assert page.status_code == 200
    form = one(page, "form.smi-confirm__form")
    return {
        "page": page,
        "amount": one(form, "input[name=amount]")["value"],
        "token": one(form, "input[name=token]")["value"],
    }


def submit(client, job, data) -> tuple[object, list[str]]:
    response = client.post(refund_url(job), data)
    return response, [str(m) for m in get_messages(response.wsgi_request)]


def stripe_refunds(fake_stripe) -> list[int]:
    return [refund["amount"] for refund in fake_stripe.refunds.values()]


def test_the_page_prefills_what_is_left_in_major_units_and_asks_for_a_reason(
    manager_client, make_job
):
    job = make_job(
        "completed",
        paid_at=timezone.now(),
        payment_provider="dummy",
        amount_cents=576,
        discount_cents=100,
        refund_amount_cents=100,
    )
    form = open_form(manager_client, job)
    page = form["page"]
    # Paid 4.76 after the promotion code, 1.00 already back: 3.76 left, in dollars.
    assert form["amount"] == "3.76"
    assert text(page, "[data-smi-refund-amount]") == "$3.76"
    amount_field = one(page, "input[name=amount]")
    assert amount_field["inputmode"] == "decimal"
    help_text = text(page, "#id_amount-helptext, [id$=amount-helptext]")
    assert "In USD. At most $3.76 (everything left)" in help_text
    assert one(page, "input[name=reason]").has_attr("required")
    assert one(page, "input[name=revoke]")["type"] == "checkbox"
    consequences = text(page, ".smi-confirm__consequences")
    assert "$4.76 was paid, $1.00 is already refunded." in consequences
    assert "Refunding less: the order stays “Completed” and the download keeps working" in (
        consequences
    )
    assert "Submitting this page twice refunds once." in consequences
    assert len(form["token"]) >= 16


def test_a_failed_order_offers_no_revoke_box_and_says_a_partial_refund_ends_it(
    manager_client, make_job
):
    job = make_job("failed", paid_at=timezone.now(), payment_provider="dummy", amount_cents=576)
    page = open_form(manager_client, job)["page"]
    assert not select(page, "input[name=revoke]")
    assert "Refunding less: the order becomes “Refunded” and the rest is kept" in text(
        page, ".smi-confirm__consequences"
    )


def test_a_partial_refund_then_the_rest_through_stripe(
    manager_client, sales_manager, paid_stripe_job, fake_stripe, django_capture_on_commit_callbacks
):
    job = paid_stripe_job("completed")  # 1.92 paid through the local Stripe server
    mail.outbox.clear()

    form = open_form(manager_client, job)
    assert form["amount"] == "1.92"
    with django_capture_on_commit_callbacks(execute=True):
        response, messages = submit(
            manager_client, job, {"amount": "0.50", "reason": "Goodwill", "token": form["token"]}
        )

    assert response.status_code == 302 and response.url == inspect_url(job)
    assert messages == ["Refunded $0.50. $1.42 can still be refunded; the download still works."]
    job.refresh_from_db()
    assert (job.status, job.refund_amount_cents, job.refundable_cents) == ("completed", 50, 142)
    assert job.access_revoked_at is None  # the customer keeps the file
    assert stripe_refunds(fake_stripe) == [50]
    partial = JobEvent.objects.get(job=job, code="partial_refund")
    assert (partial.actor, partial.data["amount_cents"], partial.data["total_cents"]) == (
        sales_manager,
        50,
        50,
    )
    assert [m.to for m in mail.outbox] == [["buyer@example.com"]]  # the refund email

    form = open_form(manager_client, job)
    assert form["amount"] == "1.42"  # what is left
    with django_capture_on_commit_callbacks(execute=True):
        _response, messages = submit(
            manager_client,
            job,
            {
                "amount": form["amount"],
                "reason": "Asked again",
                "token": form["token"],
            },  # fmt: skip
        )

    assert messages == ["Refunded $1.42."]
    job.refresh_from_db()
    assert (job.status, job.refund_amount_cents, job.refundable_cents) == ("refunded", 192, 0)
    assert job.access_revoked_at is not None  # everything back: the download stops
    assert stripe_refunds(fake_stripe) == [50, 142]
    timeline = text(manager_client.get(inspect_url(job)), ".smi-timeline")
    assert "Refunded $0.50 of $1.92 through Stripe; $1.42 left. Reason: Goodwill" in timeline
    assert "Refunded $1.92: the order is closed. Reason: Asked again" in timeline


def test_more_than_is_left_is_refused_with_a_clear_message_and_nothing_sent(
    manager_client, paid_stripe_job, fake_stripe
):
    job = paid_stripe_job("completed")
    form = open_form(manager_client, job)
    response, _messages = submit(
        manager_client, job, {"amount": "2.00", "reason": "Too much", "token": form["token"]}
    )
    assert response.status_code == 200  # the page again, with the error by the field
    [wrapper] = [w for w in select(response, ".w-field__wrapper") if w.select("[name=amount]")]
    assert text(wrapper, ".w-field__errors") == (
        "At most $1.92 can be refunded: $1.92 was paid and $0.00 is already refunded."
    )
    assert fake_stripe.requests_to("POST", "/v1/refunds") == []
    assert PurchaseJob.objects.get(pk=job.pk).refund_amount_cents == 0


def test_stripe_refusing_more_than_its_charge_has_left_is_reported_on_the_order(
    manager_client, paid_stripe_job, fake_stripe, stripe_api
):
    job = paid_stripe_job("completed")
    # 1.00 refunded in Stripe's dashboard; its webhook has not arrived yet.
    stripe_api.v1.refunds.create(params={"payment_intent": job.payment_intent_id, "amount": 100})
    form = open_form(manager_client, job)

    _response, messages = submit(
        manager_client, job, {"amount": "1.92", "reason": "Customer asked", "token": form["token"]}
    )

    assert messages == [
        "The refund could not be made: Stripe refused the refund: Refund amount (192) is "
        "greater than unrefunded amount on charge (92)"
    ]
    job.refresh_from_db()
    assert (job.status, job.refund_amount_cents) == ("completed", 0)
    assert "greater than unrefunded amount" in job.last_error
    assert RefundRequest.objects.get(job=job).status == "refused"


def test_the_same_submission_twice_refunds_once(manager_client, paid_stripe_job, fake_stripe):
    job = paid_stripe_job("completed")
    form = open_form(manager_client, job)
    data = {"amount": "0.50", "reason": "Goodwill", "token": form["token"]}

    _first, first_messages = submit(manager_client, job, data)
    second, second_messages = submit(manager_client, job, data)  # a double click

    assert first_messages == [
        "Refunded $0.50. $1.42 can still be refunded; the download still works."
    ]
    assert second.status_code == 302
    # (The first message was never shown: no page was opened in between.)
    assert second_messages[-1] == "This refund was already submitted: nothing was refunded twice."
    assert stripe_refunds(fake_stripe) == [50]
    assert len(fake_stripe.requests_to("POST", "/v1/refunds")) == 1
    assert PurchaseJob.objects.get(pk=job.pk).refund_amount_cents == 50


def test_the_same_request_key_twice_at_the_operation_sends_one_refund(paid_stripe_job, fake_stripe):
    job = paid_stripe_job("completed")
    for _ in range(2):
        operations.refund(job.pk, reason="Goodwill", amount_cents=50, request_key="form-token-1")
    assert len(fake_stripe.requests_to("POST", "/v1/refunds")) == 1
    assert PurchaseJob.objects.get(pk=job.pk).refund_amount_cents == 50
    # The same form with another amount is another refund (idempotent per amount).
    operations.refund(job.pk, reason="Goodwill", amount_cents=20, request_key="form-token-1")
    assert stripe_refunds(fake_stripe) == [50, 20]


def test_a_retry_after_a_crash_replays_the_lost_refund_instead_of_repeating_it(
    manager_client, paid_stripe_job, fake_stripe
):
    job = paid_stripe_job("completed")
    # The process died after Stripe refunded 0.50 and before the order recorded it.
    key = submission_key(job, "lost-form-token", 50)
    request = RefundRequest.objects.create(
        job=job, key=key, amount_cents=50, currency="usd", refunded_before_cents=0,
        reason="Goodwill", provider="stripe",
    )  # fmt: skip
    RefundRequest.objects.filter(pk=request.pk).update(
        created_at=timezone.now() - ANSWER_WAIT - timedelta(seconds=1)
    )
    get_payment_provider("stripe").refund(job, amount_cents=50, reason="x", idempotency_key=key)

    # The admin sees nothing refunded and asks for everything (1.92) with a new form.
    form = open_form(manager_client, job)
    assert form["amount"] == "1.92"
    _response, messages = submit(
        manager_client, job, {"amount": "1.92", "reason": "Again", "token": form["token"]}
    )

    # The lost refund is replayed (same key: Stripe answers with the same refund) and
    # recorded first; 1.92 is then more than is left, so nothing more goes out.
    assert messages == ["The action failed: The refund must be between $0.01 and $1.42."]
    assert stripe_refunds(fake_stripe) == [50]
    keys = [r["idempotency_key"] for r in fake_stripe.requests_to("POST", "/v1/refunds")]
    assert keys == [key, key]
    job.refresh_from_db()
    assert (job.status, job.refund_amount_cents) == ("completed", 50)
    assert RefundRequest.objects.get(pk=request.pk).status == "succeeded"


def test_a_refund_still_waiting_for_its_answer_holds_back_another(paid_stripe_job, fake_stripe):
    job = paid_stripe_job("completed")
    RefundRequest.objects.create(
        job=job, key="wagtail-smi-refund-in-flight", amount_cents=50, currency="usd",
        refunded_before_cents=0, reason="Goodwill", provider="stripe",
    )  # fmt: skip
    with pytest.raises(RetryLater, match="still waiting for the payment provider's answer"):
        operations.refund(job.pk, reason="Another", amount_cents=20, request_key="other-form")
    assert fake_stripe.requests_to("POST", "/v1/refunds") == []


def test_a_partial_refund_can_revoke_the_download_when_asked(
    manager_client, make_job, sales_manager
):
    job = make_job("completed", paid_at=timezone.now(), payment_provider="dummy", amount_cents=576)
    form = open_form(manager_client, job)
    _response, messages = submit(
        manager_client,
        job,
        {"amount": "1.00", "reason": "Wrong file", "token": form["token"], "revoke": "on"},
    )
    assert messages == ["Refunded $1.00. The download was revoked."]
    job.refresh_from_db()
    assert (job.status, job.refund_amount_cents) == ("completed", 100)
    assert job.access_revoked_at is not None
    codes = list(JobEvent.objects.filter(job=job).values_list("code", "actor"))
    assert codes[-2:] == [
        ("partial_refund", sales_manager.pk),
        ("access_revoked", sales_manager.pk),
    ]


def test_a_partial_refund_of_a_failed_order_ends_it_refunded_with_the_rest_kept(make_job):
    job = make_job("failed", paid_at=timezone.now(), payment_provider="dummy", amount_cents=576)
    refunded = operations.refund(job.pk, reason="Keep the fee", amount_cents=476)
    assert (refunded.status, refunded.refund_amount_cents, refunded.refundable_cents) == (
        "refunded",
        476,
        100,
    )


def test_a_partial_refund_leaves_an_order_in_the_pipeline_to_carry_on(make_job, queued):
    job = make_job("processing", paid_at=timezone.now(), payment_provider="dummy", amount_cents=576)
    partly = operations.refund(job.pk, reason="Slow", amount_cents=100)
    assert (partly.status, partly.refund_amount_cents) == ("processing", 100)
    # Everything left still stops the pipeline first.
    done = operations.refund(job.pk, reason="Too slow")
    steps = list(JobEvent.objects.filter(job=job, kind="transition").values_list("to_status"))
    assert (done.status, done.refund_amount_cents, steps[-2:]) == (
        "refunded",
        576,
        [("failed",), ("refunded",)],
    )


def test_zero_or_too_much_is_refused_by_the_operation_in_the_orders_currency(make_job):
    job = make_job("completed", paid_at=timezone.now(), payment_provider="dummy", amount_cents=500)
    for amount in (0, 501):
        with pytest.raises(RefundNotPossible, match=r"between \$0.01 and \$5.00"):
            operations.refund(job.pk, reason="x", amount_cents=amount)
    assert not RefundRequest.objects.exists()
