"""Security regressions for payments: who may pay (or refund, fail, abandon) an order, the
webhook without a secret, and the "payment failed" email.

Every Stripe event here is built by the local Stripe server and signed exactly as Stripe
signs, and the sessions that are not the shop's are created through the real ``stripe``
library, as any other integration on the same account (or a Payment Link's payer) would.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from tests.html_support import text
from tests.stripe_fixtures import deliver, open_checkout
from wagtail_smi.models import ProcessedWebhookEvent, PurchaseJob
from wagtail_smi.payments import get_payment_provider
from wagtail_smi.timeline import describe
from wagtail_smi.workflow import update_job

pytestmark = pytest.mark.django_db

ELSEWHERE = "https://elsewhere.example/thanks"


@pytest.fixture
def order(stripe_settings, make_image, make_job):
    """A $5.76 order (2000×1500 at 8x) whose Checkout Session the shop opened."""
    return open_checkout(make_job(image=make_image(2000, 1500), factor=8, amount_cents=576))


def job_claims(job) -> dict:
    """What an event may say about the order it is for: anyone can say it."""
    return {
        "client_reference_id": str(job.pk),
        "metadata": {"job_id": str(job.pk)},
        "payment_intent_data": {"metadata": {"job_id": str(job.pk)}},
    }


def line(amount: int, currency: str = "usd") -> list[dict]:
    return [
        {
            "quantity": 1,
            "price_data": {
                "currency": currency,
                "unit_amount": amount,
                "product_data": {"name": "Something else"},
            },
        }
    ]


def payment_link_session(
    stripe_api, fake_stripe, job, *, amount: int, currency: str = "usd"
) -> str:
    """A Payment Link of the account (a $1 tip jar, say) opened by a payer who appends
    ``?client_reference_id=<the victim's order id>`` to its URL."""
    price = stripe_api.v1.prices.create(
        params={"unit_amount": amount, "currency": currency, "product_data": {"name": "Tip jar"}}
    )
    link = stripe_api.v1.payment_links.create(
        params={"line_items": [{"price": price.id, "quantity": 1}]}
    )
    return fake_stripe.open_payment_link(link.id, client_reference_id=str(job.pk))["id"]


def api_session(stripe_api, job, **params) -> str:
    """A Checkout Session some other code on the account created, naming the order."""
    body = {"success_url": ELSEWHERE, **job_claims(job), **params}
    return stripe_api.v1.checkout.sessions.create(params=body).id


FOREIGN_SESSIONS = {
    "payment link for $1.00": lambda api, fake, job: payment_link_session(
        api, fake, job, amount=100
    ),
    "payment link at the order's full price": lambda api, fake, job: payment_link_session(
        api, fake, job, amount=576
    ),
    "1 JPY": lambda api, fake, job: api_session(
        api, job, mode="payment", line_items=line(1, "jpy")
    ),
    "576 JPY": lambda api, fake, job: api_session(
        api, job, mode="payment", line_items=line(576, "jpy")
    ),
    "$0 setup session": lambda api, fake, job: api_session(api, job, mode="setup", currency="usd"),
    "same amount, another session": lambda api, fake, job: api_session(
        api, job, mode="payment", line_items=line(576)
    ),
    "fully discounted": lambda api, fake, job: api_session(
        api,
        job,
        mode="payment",
        line_items=line(576),
        discounts=[{"coupon": api.v1.coupons.create(params={"percent_off": 100}).id}],
    ),
}


def assert_untouched(job, *, events_before: int, enqueued, emails_sent):
    job.refresh_from_db()
    assert (job.status, job.paid_at, job.payment_intent_id, job.last_error) == (
        "awaiting_payment",
        None,
        "",
        "",
    )
    assert job.events.count() == events_before
    assert ProcessedWebhookEvent.objects.filter(job_id=job.pk).count() == 0
    assert enqueued == []
    assert emails_sent == []
    assert mail.outbox == []


class TestOnlyTheShopsOwnCheckoutPays:
    @pytest.mark.parametrize("kind", FOREIGN_SESSIONS)
    def test_a_session_the_shop_did_not_create_pays_nothing(
        self,
        client,
        fake_stripe,
        stripe_api,
        order,
        enqueued,
        emails_sent,
        kind,
        django_capture_on_commit_callbacks,
        caplog,
    ):
        session_id = FOREIGN_SESSIONS[kind](stripe_api, fake_stripe, order)
        assert session_id != order.checkout_session_id
        events_before = order.events.count()

        event, payload, signature = fake_stripe.complete_session(
            session_id, email="attacker@example.com"
        )
        assert event["data"]["object"]["payment_status"] in ("paid", "no_payment_required")
        with django_capture_on_commit_callbacks(execute=True), caplog.at_level(logging.WARNING):
            response = deliver(client, payload, signature)

        assert (response.status_code, response.json()) == (200, {"status": "ignored"})
        assert_untouched(
            order, events_before=events_before, enqueued=enqueued, emails_sent=emails_sent
        )
        assert f"names order {order.pk}" in caplog.text
        # The order's own session still pays, once.
        _, payload, signature = fake_stripe.complete_session(order.checkout_session_id)
        with django_capture_on_commit_callbacks(execute=True):
            assert deliver(client, payload, signature).json() == {"status": "paid"}
            assert deliver(client, payload, signature).json() == {"status": "duplicate"}
        order.refresh_from_db()
        assert (order.status, order.email, order.discount_cents) == ("paid", "buyer@example.com", 0)
        assert enqueued == [str(order.pk)]

    def test_a_foreign_delayed_payment_that_succeeds_pays_nothing(
        self,
        client,
        fake_stripe,
        stripe_api,
        order,
        enqueued,
        emails_sent,
        django_capture_on_commit_callbacks,
    ):
        session_id = api_session(stripe_api, order, mode="payment", line_items=line(100))
        events_before = order.events.count()
        _, payload, signature = fake_stripe.complete_session(session_id, paid=False)
        _, async_payload, async_signature = fake_stripe.async_payment(session_id, succeeded=True)
        with django_capture_on_commit_callbacks(execute=True):
            assert deliver(client, payload, signature).json() == {"status": "ignored"}
            assert deliver(client, async_payload, async_signature).json() == {"status": "ignored"}
        assert_untouched(
            order, events_before=events_before, enqueued=enqueued, emails_sent=emails_sent
        )

    def test_a_foreign_failed_payment_neither_fails_nor_emails_the_order(
        self,
        client,
        fake_stripe,
        stripe_api,
        order,
        enqueued,
        emails_sent,
        django_capture_on_commit_callbacks,
    ):
        session_id = payment_link_session(stripe_api, fake_stripe, order, amount=100)
        events_before = order.events.count()
        fake_stripe.complete_session(session_id, paid=False, email="victim@example.com")
        _, payload, signature = fake_stripe.async_payment(session_id, succeeded=False)
        with django_capture_on_commit_callbacks(execute=True):
            assert deliver(client, payload, signature).json() == {"status": "ignored"}
        assert_untouched(
            order, events_before=events_before, enqueued=enqueued, emails_sent=emails_sent
        )

    def test_a_foreign_expired_session_does_not_abandon_the_order(
        self, client, fake_stripe, stripe_api, order, enqueued, emails_sent
    ):
        session_id = payment_link_session(stripe_api, fake_stripe, order, amount=100)
        events_before = order.events.count()
        _, payload, signature = fake_stripe.expire_session(session_id)
        assert deliver(client, payload, signature).json() == {"status": "ignored"}
        assert_untouched(
            order, events_before=events_before, enqueued=enqueued, emails_sent=emails_sent
        )

    def test_the_order_is_found_by_its_session_id_whatever_the_metadata_claims(
        self,
        client,
        fake_stripe,
        stripe_settings,
        make_job,
        enqueued,
        django_capture_on_commit_callbacks,
    ):
        """Metadata naming another order does not move a payment there."""
        paid = open_checkout(make_job(factor=8, amount_cents=192))
        other = open_checkout(make_job(factor=8, amount_cents=192))
        event, _, _ = fake_stripe.complete_session(paid.checkout_session_id)
        session = {
            **event["data"]["object"],
            "metadata": {"job_id": str(other.pk)},
            "client_reference_id": str(other.pk),
        }
        _, payload, signature = fake_stripe.make_event("checkout.session.completed", session)
        with django_capture_on_commit_callbacks(execute=True):
            assert deliver(client, payload, signature).json() == {"status": "paid"}
        assert PurchaseJob.objects.get(pk=paid.pk).status == "paid"
        assert PurchaseJob.objects.get(pk=other.pk).status == "awaiting_payment"
        assert enqueued == [str(paid.pk)]


class TestTheOrdersOwnSessionMustMatchIt:
    @pytest.mark.parametrize(
        ("params", "problem"),
        [
            ({"mode": "payment", "line_items": line(100)}, "amount_subtotal 100 instead of 576"),
            (
                {"mode": "payment", "line_items": line(576, "jpy")},
                "currency 'jpy' instead of 'usd'",
            ),
            ({"mode": "setup", "currency": "usd"}, "mode 'setup' instead of 'payment'"),
        ],
        ids=["wrong amount", "wrong currency", "setup mode"],
    )
    def test_a_mismatching_own_session_changes_nothing_and_alerts_an_admin(
        self,
        client,
        fake_stripe,
        stripe_api,
        order,
        enqueued,
        emails_sent,
        params,
        problem,
        django_capture_on_commit_callbacks,
    ):
        # The session stored on the order is not what the order costs (a shop-side bug, or
        # an id changed by hand): the webhook must not trust it either.
        wrong = api_session(stripe_api, order, **params)
        order = update_job(order, checkout_session_id=wrong)
        _, payload, signature = fake_stripe.complete_session(wrong)

        with django_capture_on_commit_callbacks(execute=True):
            first = deliver(client, payload, signature)
            again = deliver(client, payload, signature)

        assert (first.status_code, first.json()) == (200, {"status": "mismatch"})
        assert again.json() == {"status": "duplicate"}
        order.refresh_from_db()
        assert (order.status, order.paid_at, order.payment_intent_id) == (
            "awaiting_payment",
            None,
            "",
        )
        assert enqueued == []
        assert emails_sent == [("send_admin_alert", str(order.pk))]
        note = order.events.get(code="payment_not_applied")
        assert problem in describe(note)

    def test_a_discounted_own_session_pays_and_records_the_discount(
        self,
        settings,
        client,
        fake_stripe,
        stripe_api,
        stripe_settings,
        make_image,
        make_job,
        enqueued,
        django_capture_on_commit_callbacks,
    ):
        settings.WAGTAIL_SMI = {
            **settings.WAGTAIL_SMI,
            "STRIPE": {**settings.WAGTAIL_SMI["STRIPE"], "ALLOW_PROMOTION_CODES": True},
        }
        order = open_checkout(make_job(image=make_image(2000, 1500), factor=8, amount_cents=576))
        coupon = stripe_api.v1.coupons.create(params={"amount_off": 100, "currency": "usd"})
        event, payload, signature = fake_stripe.complete_session(
            order.checkout_session_id, promotion_coupon=coupon.id
        )
        session = event["data"]["object"]
        assert (session["amount_subtotal"], session["amount_total"]) == (576, 476)
        assert session["total_details"]["amount_discount"] == 100

        with django_capture_on_commit_callbacks(execute=True):
            assert deliver(client, payload, signature).json() == {"status": "paid"}

        order.refresh_from_db()
        assert (order.status, order.discount_cents, order.paid_amount_cents) == ("paid", 100, 476)
        assert (
            describe(order.events.get(code="discount_applied"))
            == "A promotion code took $1.00 off $5.76: the customer paid $4.76."
        )
        assert enqueued == [str(order.pk)]
        # A dashboard refund of everything taken is a full refund of what was paid.
        from wagtail_smi.workflow import transition

        transition(order, "processing", code="processing_started")
        transition(order, "completed", code="delivered")
        _, payload, signature = fake_stripe.dashboard_refund(order.payment_intent_id)
        assert deliver(client, payload, signature).json() == {"status": "refund_recorded"}
        order.refresh_from_db()
        assert (order.status, order.refund_amount_cents, order.refundable_cents) == (
            "refunded",
            476,
            0,
        )

    def test_a_promotion_code_covering_everything_pays_with_the_discount_recorded(
        self,
        settings,
        client,
        fake_stripe,
        stripe_api,
        stripe_settings,
        make_job,
        enqueued,
        django_capture_on_commit_callbacks,
    ):
        settings.WAGTAIL_SMI = {
            **settings.WAGTAIL_SMI,
            "STRIPE": {**settings.WAGTAIL_SMI["STRIPE"], "ALLOW_PROMOTION_CODES": True},
        }
        order = open_checkout(make_job(factor=8, amount_cents=192))
        coupon = stripe_api.v1.coupons.create(params={"percent_off": 100})
        event, payload, signature = fake_stripe.complete_session(
            order.checkout_session_id, promotion_coupon=coupon.id
        )
        assert event["data"]["object"]["payment_status"] == "no_payment_required"
        with django_capture_on_commit_callbacks(execute=True):
            assert deliver(client, payload, signature).json() == {"status": "paid"}
        order.refresh_from_db()
        assert (order.status, order.discount_cents, order.paid_amount_cents) == ("paid", 192, 0)
        assert enqueued == [str(order.pk)]


class TestASessionIdNotStoredYet:
    def test_the_event_waits_for_the_id_then_pays(
        self,
        client,
        fake_stripe,
        stripe_settings,
        make_job,
        enqueued,
        django_capture_on_commit_callbacks,
    ):
        job = make_job(factor=8, amount_cents=192)
        # Stripe answered the create call; the shop has not stored the id yet.
        session = get_payment_provider().create_checkout(
            job, success_url=ELSEWHERE, cancel_url=ELSEWHERE
        )
        _, payload, signature = fake_stripe.complete_session(session.session_id)

        early = deliver(client, payload, signature)
        assert early.status_code == 409
        assert early.json()["error"] == "retry_later"
        assert PurchaseJob.objects.get(pk=job.pk).status == "awaiting_payment"
        assert ProcessedWebhookEvent.objects.count() == 0

        update_job(job, checkout_session_id=session.session_id, payment_provider="stripe")
        with django_capture_on_commit_callbacks(execute=True):
            assert deliver(client, payload, signature).json() == {"status": "paid"}
        assert enqueued == [str(job.pk)]

    def test_after_the_grace_period_a_stranger_session_is_ignored_not_retried(
        self, client, fake_stripe, stripe_api, stripe_settings, make_job, enqueued
    ):
        job = make_job(factor=8, amount_cents=192)  # its checkout never got a session
        PurchaseJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(hours=1))
        session_id = payment_link_session(stripe_api, fake_stripe, job, amount=192)
        _, payload, signature = fake_stripe.complete_session(session_id)
        assert deliver(client, payload, signature).json() == {"status": "ignored"}
        assert PurchaseJob.objects.get(pk=job.pk).status == "awaiting_payment"
        assert enqueued == []


class TestRefundsApplyOnlyToTheOrdersOwnPayment:
    @pytest.fixture
    def paid_order_and_foreign_payment(self, client, fake_stripe, stripe_api, order):
        """The order paid through its own session; another payment on the account names it."""
        _, payload, signature = fake_stripe.complete_session(order.checkout_session_id)
        assert deliver(client, payload, signature).json() == {"status": "paid"}
        foreign = api_session(stripe_api, order, mode="payment", line_items=line(576))
        _, payload, signature = fake_stripe.complete_session(foreign)
        deliver(client, payload, signature)  # ignored (see TestOnlyTheShopsOwnCheckoutPays)
        order.refresh_from_db()
        foreign_intent = fake_stripe.sessions[foreign]["payment_intent"]
        assert foreign_intent != order.payment_intent_id
        assert fake_stripe.payment_intents[foreign_intent]["metadata"] == {"job_id": str(order.pk)}
        return order, foreign_intent

    def test_a_refund_of_a_foreign_charge_changes_nothing(
        self,
        client,
        fake_stripe,
        paid_order_and_foreign_payment,
        emails_sent,
        django_capture_on_commit_callbacks,
    ):
        order, foreign_intent = paid_order_and_foreign_payment
        events_before = order.events.count()
        event, payload, signature = fake_stripe.dashboard_refund(foreign_intent)
        assert event["data"]["object"]["metadata"] == {"job_id": str(order.pk)}

        with django_capture_on_commit_callbacks(execute=True):
            assert deliver(client, payload, signature).json() == {"status": "ignored"}

        order.refresh_from_db()
        assert (order.status, order.refund_amount_cents, order.access_revoked_at) == (
            "paid",
            0,
            None,
        )
        assert order.events.count() == events_before
        assert emails_sent == []

    def test_a_failed_refund_of_a_foreign_charge_changes_nothing(
        self,
        client,
        fake_stripe,
        stripe_api,
        paid_order_and_foreign_payment,
        emails_sent,
        django_capture_on_commit_callbacks,
    ):
        order, foreign_intent = paid_order_and_foreign_payment
        refund = stripe_api.v1.refunds.create(
            params={"payment_intent": foreign_intent, "metadata": {"job_id": str(order.pk)}}
        )
        _, payload, signature = fake_stripe.refund_failed_later(refund.id)

        with django_capture_on_commit_callbacks(execute=True):
            assert deliver(client, payload, signature).json() == {"status": "ignored"}

        order.refresh_from_db()
        assert (order.status, order.last_error) == ("paid", "")
        assert emails_sent == []

    def test_a_refund_of_the_orders_own_charge_is_applied(
        self,
        client,
        fake_stripe,
        paid_order_and_foreign_payment,
        django_capture_on_commit_callbacks,
    ):
        order, _ = paid_order_and_foreign_payment
        _, payload, signature = fake_stripe.dashboard_refund(order.payment_intent_id)
        with django_capture_on_commit_callbacks(execute=True):
            assert deliver(client, payload, signature).json() == {"status": "refund_recorded"}
        assert PurchaseJob.objects.get(pk=order.pk).status == "refunded"


class TestWebhookWithoutSecret:
    @pytest.fixture
    def no_secret(self, settings, stripe_settings, fresh_secret_report):
        settings.WAGTAIL_SMI = {
            **settings.WAGTAIL_SMI,
            "STRIPE": {**settings.WAGTAIL_SMI["STRIPE"], "WEBHOOK_SECRET": ""},
        }

    def test_signed_requests_are_503_not_configured_and_logged_once(
        self, client, fake_stripe, order, no_secret, caplog
    ):
        _, payload, signature = fake_stripe.complete_session(order.checkout_session_id)
        with caplog.at_level(logging.INFO):
            answers = [deliver(client, payload, signature) for _ in range(3)]

        assert [r.status_code for r in answers] == [503] * 3
        assert answers[0].json() == {
            "error": "not_configured",
            "message": "The Stripe webhook is not configured on this site.",
        }
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, [r.getMessage() for r in errors]
        assert "WEBHOOK_SECRET" in errors[0].getMessage()
        assert PurchaseJob.objects.get(pk=order.pk).status == "awaiting_payment"

    def test_unsigned_requests_are_still_400(self, client, fake_stripe, order, no_secret, caplog):
        _, payload, _ = fake_stripe.complete_session(order.checkout_session_id)
        response = deliver(client, payload, None)
        assert (response.status_code, response.json()["error"]) == (400, "missing_signature")
        assert "WEBHOOK_SECRET" not in caplog.text


class TestPaymentFailedEmail:
    def test_declining_on_the_dummy_page_again_and_again_emails_nobody(
        self, client, make_job, emails_sent, django_capture_on_commit_callbacks
    ):
        job = make_job(factor=8, amount_cents=192, email="typed-by-anyone@example.com")
        session = get_payment_provider("dummy").create_checkout(job, success_url="", cancel_url="")
        job = update_job(job, checkout_session_id=session.session_id, payment_provider="dummy")
        url = f"/smi/dummy-checkout/{job.pk}/?key={job.access_key}"

        for _ in range(3):
            with django_capture_on_commit_callbacks(execute=True):
                response = client.post(url, {"action": "decline"})
            assert response.status_code == 200
            assert "Your card was declined" in text(response, "[role=alert]")

        assert emails_sent.count(("send_payment_failed", str(job.pk))) == 0
        assert mail.outbox == []
        job.refresh_from_db()
        assert (job.status, job.payment_failed_emailed_at) == ("awaiting_payment", None)

    def test_stripe_async_failures_email_the_confirmed_address_once(
        self, client, fake_stripe, order, emails_sent, django_capture_on_commit_callbacks
    ):
        _, payload, signature = fake_stripe.complete_session(
            order.checkout_session_id, paid=False, email="confirmed@example.com"
        )
        assert deliver(client, payload, signature).json() == {"status": "waiting_for_payment"}
        event, payload, signature = fake_stripe.async_payment(
            order.checkout_session_id, succeeded=False
        )
        # Stripe reports the failure again under a new event id (another event, same session).
        _, payload2, signature2 = fake_stripe.make_event(event["type"], event["data"]["object"])

        with django_capture_on_commit_callbacks(execute=True):
            assert deliver(client, payload, signature).json() == {"status": "payment_failed"}
            assert deliver(client, payload2, signature2).json() == {"status": "payment_failed"}

        assert emails_sent.count(("send_payment_failed", str(order.pk))) == 1
        assert [m.to for m in mail.outbox] == [["confirmed@example.com"]]
        order.refresh_from_db()
        assert order.email == "confirmed@example.com"
        assert order.payment_failed_emailed_at is not None
