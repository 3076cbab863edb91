"""The dummy provider and its checkout page: Pay, Decline card, Cancel."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from django.urls import reverse

from tests.html_support import one, parse, select, text
from wagtail_smi import links
from wagtail_smi.models import JobEvent, PurchaseJob
from wagtail_smi.payments import get_payment_provider
from wagtail_smi.workflow import update_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def dummy_job(make_job):
    """A job whose checkout was opened with the dummy provider, as the storefront does."""

    def factory(**fields):
        job = make_job(
            factor=8, amount_cents=192, cancel_url="http://testserver/gallery/", **fields
        )
        session = get_payment_provider("dummy").create_checkout(
            job, success_url="unused", cancel_url=job.cancel_url
        )
        return update_job(
            job,
            checkout_session_id=session.session_id,
            checkout_url=session.url,
            payment_provider="dummy",
        )

    return factory


def page_url(job, key=None) -> str:
    return (
        reverse("wagtail_smi:dummy_checkout", args=[job.pk])
        + f"?key={job.access_key if key is None else key}"
    )


def status_url(job) -> str:
    return reverse("wagtail_smi:order_status", args=[job.pk]) + f"?key={job.access_key}"


class TestProvider:
    def test_refused_unless_debug_or_explicitly_allowed(self, settings):
        settings.DEBUG = False
        settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "ALLOW_DUMMY_PAYMENTS": False}
        with pytest.raises(ImproperlyConfigured):
            get_payment_provider("dummy")

        settings.DEBUG = True
        assert get_payment_provider("dummy").name == "dummy"

    def test_checkout_url_is_the_local_page_with_the_access_key(self, settings, make_job):
        settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "PUBLIC_BASE_URL": "https://shop.example"}
        job = make_job()
        session = get_payment_provider("dummy").create_checkout(
            job, success_url="s", cancel_url="c"
        )
        assert (
            session.url == f"https://shop.example/smi/dummy-checkout/{job.pk}/?key={job.access_key}"
        )


class TestPage:
    def test_the_page_shows_the_order(self, client, dummy_job):
        job = dummy_job()
        response = client.get(page_url(job))
        assert response.status_code == 200
        doc = parse(response)
        details = dict(
            zip(
                [dt.get_text() for dt in select(doc, "dl dt")],
                [dd.get_text() for dd in select(doc, "dl dd")],
            )
        )
        assert details["Resolution"] == "8x"
        assert details["Output size"] == "8000 × 8000 pixels"
        assert text(doc, "dd.smi-dummy-price") == "$1.92"
        assert one(doc, "img")["src"]
        assert [b["value"] for b in select(doc, "form button[type=submit][name=action]")] == [
            "pay",
            "decline",
            "cancel",
        ]
        assert one(doc, "form input[type=hidden][name=csrfmiddlewaretoken]")["value"]

    @pytest.mark.parametrize("key", ["", "wrong"])
    def test_without_the_right_key_it_is_a_404(self, client, dummy_job, key):
        job = dummy_job()
        assert client.get(page_url(job, key)).status_code == 404
        assert client.post(page_url(job, key), {"action": "pay"}).status_code == 404
        assert PurchaseJob.objects.get(pk=job.pk).status == "awaiting_payment"

    def test_a_job_of_another_provider_cannot_be_paid_here(self, client, dummy_job):
        job = update_job(dummy_job(), payment_provider="stripe")
        assert client.post(page_url(job), {"action": "pay"}).status_code == 404
        assert PurchaseJob.objects.get(pk=job.pk).status == "awaiting_payment"

    def test_the_page_is_gone_when_dummy_payments_are_not_allowed(
        self, client, settings, dummy_job
    ):
        job = dummy_job()
        settings.DEBUG = False
        settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "ALLOW_DUMMY_PAYMENTS": False}
        assert client.post(page_url(job), {"action": "pay"}).status_code == 404
        assert PurchaseJob.objects.get(pk=job.pk).status == "awaiting_payment"

    def test_posting_needs_the_csrf_token(self, dummy_job):
        job = dummy_job()
        assert (
            Client(enforce_csrf_checks=True).post(page_url(job), {"action": "pay"}).status_code
            == 403
        )
        assert PurchaseJob.objects.get(pk=job.pk).status == "awaiting_payment"

    def test_an_unknown_action_is_a_400_naming_the_field(self, client, dummy_job):
        response = client.post(page_url(dummy_job()), {"action": "steal"})
        assert response.status_code == 400
        assert response.context["error_field"] == "action"


class TestPay:
    def test_pay_marks_the_job_paid_enqueues_once_and_goes_to_the_status_page(
        self, client, dummy_job, enqueued, django_capture_on_commit_callbacks
    ):
        job = dummy_job()
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(page_url(job), {"action": "pay", "email": "buyer@example.com"})

        assert response.status_code == 302
        assert response["Location"] == status_url(job)
        job.refresh_from_db()
        assert job.status == "paid"
        assert job.email == "buyer@example.com"
        assert job.payment_intent_id == f"dummy_pi_{job.pk.hex}"
        assert enqueued == [str(job.pk)]

    def test_paying_twice_changes_nothing_the_second_time(
        self, client, dummy_job, enqueued, django_capture_on_commit_callbacks
    ):
        job = dummy_job()
        with django_capture_on_commit_callbacks(execute=True):
            client.post(page_url(job), {"action": "pay", "email": "buyer@example.com"})
            second = client.post(page_url(job), {"action": "pay", "email": "buyer@example.com"})
        assert second.status_code == 302
        assert second["Location"] == status_url(job)
        assert JobEvent.objects.filter(job=job, to_status="paid", kind="transition").count() == 1
        assert enqueued == [str(job.pk)]

    def test_an_invalid_email_is_a_400_naming_the_field(self, client, dummy_job):
        job = dummy_job()
        response = client.post(page_url(job), {"action": "pay", "email": "not-an-email"})
        assert response.status_code == 400
        assert response.context["error_field"] == "email"
        assert PurchaseJob.objects.get(pk=job.pk).status == "awaiting_payment"

    @pytest.mark.parametrize("email", ["", "   "])
    def test_paying_without_an_email_is_refused_when_the_order_has_none(
        self, client, dummy_job, enqueued, email, django_capture_on_commit_callbacks
    ):
        job = dummy_job()
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(page_url(job), {"action": "pay", "email": email})
        assert response.status_code == 400
        assert response.context["error_field"] == "email"
        doc = parse(response)
        assert (
            text(doc, "#smi-dummy-message[role=alert]")
            == "Enter your email address: the download link is sent there."
        )
        field = one(doc, "input[name=email]")
        assert (field["aria-invalid"], field["aria-describedby"]) == ("true", "smi-dummy-message")
        one(doc, "button[value=pay]")
        job.refresh_from_db()
        assert (job.status, job.email) == ("awaiting_payment", "")
        assert enqueued == []

    def test_the_email_field_is_required_on_the_page_but_not_for_decline_or_cancel(
        self, client, dummy_job
    ):
        doc = parse(client.get(page_url(dummy_job())))
        assert one(doc, "input[name=email]").has_attr("required")
        skips_validation = {
            b["value"]: b.has_attr("formnovalidate") for b in select(doc, "button[name=action]")
        }
        assert skips_validation == {"pay": False, "decline": True, "cancel": True}

    def test_an_order_with_an_email_pays_without_asking_again(
        self, client, dummy_job, enqueued, django_capture_on_commit_callbacks
    ):
        job = dummy_job(email="given@example.com")
        assert select(client.get(page_url(job)), "[name=email]") == []
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(page_url(job), {"action": "pay"})
        assert response.status_code == 302
        job.refresh_from_db()
        assert (job.status, job.email) == ("paid", "given@example.com")

    def test_declining_needs_no_email(
        self, client, dummy_job, emails_sent, django_capture_on_commit_callbacks
    ):
        job = dummy_job()
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(page_url(job), {"action": "decline"})
        assert response.status_code == 200
        assert "declined" in text(response, "#smi-dummy-message[role=alert]")

    def test_a_paid_job_redirects_to_its_status_page(self, client, dummy_job):
        from wagtail_smi.workflow import transition

        job = dummy_job()
        transition(job, "paid", code="payment_received")
        response = client.get(page_url(job))
        assert response.status_code == 302
        assert response["Location"] == status_url(job)


class TestDeclineAndCancel:
    def test_decline_shows_a_message_emails_nobody_and_allows_a_retry(
        self, client, dummy_job, enqueued, emails_sent, django_capture_on_commit_callbacks
    ):
        job = dummy_job(email="buyer@example.com")
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(page_url(job), {"action": "decline"})

        assert response.status_code == 200
        assert "declined" in text(response, "#smi-dummy-message[role=alert]")
        one(response, "button[type=submit][value=pay]")  # the buyer can try again
        job.refresh_from_db()
        assert job.status == "awaiting_payment"
        assert job.last_error == "The card was declined."
        # The address was typed into this page, not confirmed by a payment provider.
        assert emails_sent == []
        assert job.payment_failed_emailed_at is None
        assert enqueued == []

        with django_capture_on_commit_callbacks(execute=True):
            retry = client.post(page_url(job), {"action": "pay"})
        assert retry.status_code == 302
        assert PurchaseJob.objects.get(pk=job.pk).status == "paid"
        assert enqueued == [str(job.pk)]

    def test_cancel_leads_to_the_order_page_saying_nothing_was_charged(self, client, dummy_job):
        job = dummy_job()
        response = client.post(page_url(job), {"action": "cancel"})
        assert response.status_code == 302
        assert response["Location"] == links.checkout_cancelled_path(job)
        assert PurchaseJob.objects.get(pk=job.pk).status == "awaiting_payment"

    def test_cancel_never_redirects_off_site(self, client, dummy_job):
        job = update_job(dummy_job(), cancel_url="https://evil.example/")
        response = client.post(page_url(job), {"action": "cancel"})
        assert response["Location"].startswith(f"/smi/orders/{job.pk}/?key=")
