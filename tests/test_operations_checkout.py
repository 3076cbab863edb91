"""The checkout and payment operations called directly: start_checkout, mark_paid,
mark_payment_failed, abandon_checkout and apply_payment_event (with a ``PaymentEvent``
built here, as a provider's ``parse_event`` would hand it over)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.test import override_settings
from django.utils import timezone

from tests.operations_support import codes, event, log
from tests.storefront_support import FAILING_PROVIDER
from wagtail_smi import catalog, links
from wagtail_smi.models import ProcessedWebhookEvent, PurchaseJob, SmiSiteSettings
from wagtail_smi.operations import (
    CheckoutUnavailable,
    InvalidInput,
    RetryLater,
    abandon_checkout,
    apply_payment_event,
    mark_paid,
    mark_payment_failed,
    start_checkout,
)
from wagtail_smi.payments import PaymentEvent, get_payment_provider
from wagtail_smi.workflow import update_job

pytestmark = pytest.mark.django_db


def sale(offer):
    image, page = offer
    return catalog.sale_offer(image.pk, page.pk)


# --- start_checkout ---------------------------------------------------------------------------


def test_start_checkout_creates_the_order_at_the_quoted_price_and_opens_the_providers_page(
    offer, queued
):
    job = start_checkout(offer=sale(offer), resolution_key="8x", email="b@example.com")

    image, page = offer
    assert (job.status, job.resolution, job.factor) == ("awaiting_payment", "8x", 8)
    assert (job.amount_cents, job.currency, job.email) == (192, "usd", "b@example.com")
    assert (job.image_id, job.page_id, job.output_width) == (image.pk, page.pk, 8000)
    assert job.payment_provider == "dummy"
    assert job.checkout_session_id == f"dummy_cs_{job.pk.hex}"
    assert job.checkout_url == links.dummy_checkout_url(job)
    assert job.terms_accepted_at is None
    assert log(job) == [
        (
            "checkout_started",
            "",
            {"resolution": "8x", "licence": "personal", "amount_cents": 192, "currency": "usd"},
        )
    ]
    assert (mail.outbox, queued) == ([], [])


@pytest.mark.parametrize("key", ["16x", ""])
def test_start_checkout_refuses_a_resolution_not_on_offer(offer, key):
    with pytest.raises(InvalidInput) as refused:
        start_checkout(offer=sale(offer), resolution_key=key)

    assert (refused.value.code, refused.value.field) == ("resolution_unavailable", "resolution")
    assert not PurchaseJob.objects.exists()


def test_start_checkout_needs_the_terms_when_the_site_has_them(offer, site):
    settings_row = SmiSiteSettings.for_site(site)
    settings_row.terms_url = "https://shop.example/terms"
    settings_row.save()

    with pytest.raises(InvalidInput) as refused:
        start_checkout(offer=sale(offer), resolution_key="4x")
    assert (refused.value.code, refused.value.field) == ("terms_required", "terms_accepted")
    assert not PurchaseJob.objects.exists()

    job = start_checkout(offer=sale(offer), resolution_key="4x", terms_accepted=True)
    assert job.terms_accepted_at is not None


@override_settings(WAGTAIL_SMI={"PAYMENT_BACKEND": FAILING_PROVIDER})
def test_start_checkout_keeps_the_order_when_the_provider_fails(offer, queued):
    with pytest.raises(CheckoutUnavailable) as failed:
        start_checkout(offer=sale(offer), resolution_key="4x")

    job = PurchaseJob.objects.get()
    assert failed.value.job.pk == job.pk and failed.value.code == "payment_provider_error"
    assert (job.status, job.payment_provider, job.checkout_session_id) == (
        "awaiting_payment",
        "brokenpay",
        "",
    )
    assert (
        job.last_error == "checkout session failed: ConnectionError: payment provider unreachable"
    )
    assert codes(job) == ["checkout_started"]
    assert (mail.outbox, queued) == ([], [])


# --- mark_paid ----------------------------------------------------------------------------------


def test_mark_paid_pays_backfills_and_starts_processing_after_commit(
    make_job, queued, django_capture_on_commit_callbacks
):
    job = make_job(email="")

    with django_capture_on_commit_callbacks(execute=True):
        paid = mark_paid(
            job.pk,
            provider="dummy",
            reference="cs_1",
            email="b@example.com",
            payment_intent_id="pi_1",
        )

    job.refresh_from_db()
    assert (paid.pk, job.status, job.email, job.payment_intent_id) == (
        job.pk,
        "paid",
        "b@example.com",
        "pi_1",
    )
    assert job.paid_at is not None
    assert log(job) == [("payment_received", "paid", {"provider": "dummy", "reference": "cs_1"})]
    assert queued == [("process", str(job.pk))]
    # The receipt, to the address the payment backfilled (the download link comes later).
    assert [(m.to, m.subject) for m in mail.outbox] == [
        (["b@example.com"], f"Your receipt for order {job.short_id}")
    ]


def test_a_replayed_payment_returns_none_and_changes_nothing(
    make_job, queued, django_capture_on_commit_callbacks
):
    job = make_job(email="first@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        mark_paid(job.pk, provider="dummy", reference="cs_1")
    paid_at = PurchaseJob.objects.get(pk=job.pk).paid_at

    with django_capture_on_commit_callbacks(execute=True):
        again = mark_paid(job.pk, provider="dummy", reference="cs_1", email="other@example.com")

    job.refresh_from_db()
    assert again is None
    assert (job.status, job.email, job.paid_at) == ("paid", "first@example.com", paid_at)
    assert codes(job) == ["payment_received"]
    assert queued == [("process", str(job.pk))]


def test_mark_paid_records_a_promotion_code_so_refunds_stop_at_what_was_paid(make_job, queued):
    job = make_job(amount_cents=192)

    paid = mark_paid(job.pk, provider="stripe", reference="cs_1", discount_cents=42)

    assert (paid.discount_cents, paid.paid_amount_cents, paid.refundable_cents) == (42, 150, 150)
    assert event(job, "discount_applied").data == {
        "discount_cents": 42,
        "amount_cents": 192,
        "paid_cents": 150,
        "currency": "usd",
    }


def test_a_payment_after_the_checkout_was_abandoned_is_honoured(make_job, queued):
    job = make_job("abandoned")

    paid = mark_paid(job.pk, provider="stripe", reference="cs_late")

    assert paid.status == "paid"
    assert log(job)[-1] == (
        "payment_received",
        "paid",
        {"provider": "stripe", "reference": "cs_late"},
    )


# --- mark_payment_failed ---------------------------------------------------------------------


def test_a_failed_payment_emails_the_provider_confirmed_address_once(
    make_job, queued, django_capture_on_commit_callbacks
):
    job = make_job(email="", payment_intent_id="pi_pending")

    with django_capture_on_commit_callbacks(execute=True):
        first = mark_payment_failed(
            job.pk,
            provider="stripe",
            reference="cs_1",
            message="Card declined.",
            confirmed_email="payer@example.com",
        )
    with django_capture_on_commit_callbacks(execute=True):
        mark_payment_failed(
            job.pk, provider="stripe", reference="cs_1", confirmed_email="payer@example.com"
        )

    job.refresh_from_db()
    assert first.status == job.status == "awaiting_payment"
    assert (job.email, job.payment_intent_id, job.last_error) == (
        "payer@example.com",
        "",
        "The payment failed.",
    )
    assert job.payment_failed_emailed_at is not None
    assert log(job) == [
        (
            "payment_failed",
            "",
            {"provider": "stripe", "reference": "cs_1", "payment": "pi_pending"},
        ),
        ("payment_failed", "", {"provider": "stripe", "reference": "cs_1", "payment": ""}),
    ]
    assert [m.to for m in mail.outbox] == [["payer@example.com"]]
    assert queued == []


def test_a_failed_payment_never_emails_an_address_typed_into_our_forms(
    make_job, django_capture_on_commit_callbacks
):
    job = make_job(email="typed@example.com")

    with django_capture_on_commit_callbacks(execute=True):
        failed = mark_payment_failed(job.pk, provider="dummy", message="The card was declined.")

    assert (failed.last_error, failed.payment_failed_emailed_at) == ("The card was declined.", None)
    assert codes(job) == ["payment_failed"]
    assert mail.outbox == []


def test_a_late_payment_failure_for_a_paid_order_is_ignored(make_job):
    job = make_job("paid", paid_at=timezone.now())

    assert (
        mark_payment_failed(job.pk, provider="stripe", confirmed_email="payer@example.com") is None
    )
    job.refresh_from_db()
    assert (job.status, job.last_error, codes(job)) == ("paid", "", [])


# --- abandon_checkout ---------------------------------------------------------------------------


def test_abandon_checkout_ends_an_unpaid_order(make_job, queued):
    by_cleanup, by_provider = make_job(), make_job()

    abandon_checkout(by_cleanup.pk, hours=24)
    abandoned = abandon_checkout(by_provider.pk, provider="stripe", reference="cs_9")

    assert abandoned.status == "abandoned" and abandoned.abandoned_at is not None
    assert log(by_cleanup) == [("checkout_abandoned", "abandoned", {"hours": 24})]
    assert log(by_provider) == [
        ("checkout_abandoned", "abandoned", {"provider": "stripe", "reference": "cs_9"})
    ]
    assert (mail.outbox, queued) == ([], [])


def test_abandon_checkout_leaves_a_paid_order_alone(make_job):
    job = make_job("paid", paid_at=timezone.now())

    assert abandon_checkout(job.pk, provider="stripe", reference="cs_1") is None
    assert (PurchaseJob.objects.get(pk=job.pk).status, codes(job)) == ("paid", [])


# --- apply_payment_event ----------------------------------------------------------------------


def completed(job, *, event_id="evt_1", session_id=None, **overrides) -> PaymentEvent:
    """A paid ``checkout.session.completed`` for ``job``'s own session, as a provider
    translates it."""
    values = {
        "provider": "stripe",
        "event_id": event_id,
        "kind": PaymentEvent.CHECKOUT_COMPLETED,
        "provider_type": "checkout.session.completed",
        "object_id": session_id or job.checkout_session_id,
        "session_id": session_id or job.checkout_session_id,
        "payment_intent_id": "pi_1",
        "claimed_job_id": str(job.pk),
        "paid": True,
        "payment_status": "paid",
        "mode": "payment",
        "currency": job.currency,
        "amount_subtotal": job.amount_cents,
        "amount_total": job.amount_cents,
        "email": "payer@example.com",
        "confirmed_email": "payer@example.com",
    }
    return PaymentEvent(**{**values, **overrides})


@pytest.fixture
def provider():
    return get_payment_provider("dummy")


@pytest.fixture
def checkout_job(make_job):
    """An unpaid order whose checkout session id is stored, as after start_checkout."""
    return update_job(make_job(email=""), checkout_session_id="cs_own", payment_provider="stripe")


def test_an_event_for_the_orders_own_session_pays_it_once(
    checkout_job, provider, queued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        outcomes = [
            apply_payment_event(completed(checkout_job), provider),
            apply_payment_event(completed(checkout_job), provider),  # redelivered
            apply_payment_event(
                completed(checkout_job, event_id="evt_2"), provider
            ),  # another event
        ]

    job = PurchaseJob.objects.get(pk=checkout_job.pk)
    assert outcomes == ["paid", "duplicate", "already_paid"]
    assert (job.status, job.email, job.payment_intent_id) == ("paid", "payer@example.com", "pi_1")
    assert log(job) == [("payment_received", "paid", {"provider": "stripe", "reference": "cs_own"})]
    assert sorted(ProcessedWebhookEvent.objects.values_list("event_id", "job_id")) == [
        ("evt_1", job.pk),
        ("evt_2", job.pk),
    ]
    assert queued == [("process", str(job.pk))]


def test_an_event_for_a_session_the_order_does_not_know_is_foreign(checkout_job, provider, queued):
    stranger = completed(
        checkout_job, session_id="cs_payment_link"
    )  # names the order, all the same

    assert apply_payment_event(stranger, provider) == "ignored"

    checkout_job.refresh_from_db()
    assert (checkout_job.status, codes(checkout_job)) == ("awaiting_payment", [])
    assert not ProcessedWebhookEvent.objects.exists()
    assert queued == []


def test_an_event_before_the_order_stored_its_session_id_asks_for_redelivery(
    make_job, provider, queued
):
    young = make_job()  # the provider answered, the id is not saved yet

    with pytest.raises(RetryLater) as later:
        apply_payment_event(completed(young, session_id="cs_new"), provider)

    young.refresh_from_db()
    assert later.value.code == "retry_later"
    assert (young.status, codes(young)) == ("awaiting_payment", [])
    assert not ProcessedWebhookEvent.objects.exists()
    assert queued == []


def test_the_same_event_about_an_old_order_without_a_session_id_is_foreign(make_job, provider):
    old = make_job()
    PurchaseJob.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=1))

    assert apply_payment_event(completed(old, session_id="cs_new"), provider) == "ignored"
    assert PurchaseJob.objects.get(pk=old.pk).status == "awaiting_payment"


def test_a_payment_that_does_not_match_the_order_is_not_applied_and_the_admins_hear(
    checkout_job, provider, queued, settings, django_capture_on_commit_callbacks
):
    settings.ADMINS = [("Ops", "ops@example.com")]

    with django_capture_on_commit_callbacks(execute=True):
        outcome = apply_payment_event(
            completed(checkout_job, amount_subtotal=1, amount_total=1), provider
        )

    checkout_job.refresh_from_db()
    assert outcome == "mismatch"
    assert checkout_job.status == "awaiting_payment"
    assert log(checkout_job) == [
        (
            "payment_not_applied",
            "",
            {
                "provider": "stripe",
                "reference": "cs_own",
                "detail": "amount_subtotal 1 instead of 50",
            },
        )
    ]
    assert [m.to for m in mail.outbox] == [["ops@example.com"]]
    assert queued == []
