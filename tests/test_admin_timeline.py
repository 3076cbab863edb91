"""An order's page: its timeline in sentences (every event code, emails included), who
acted, one date format in the site's time zone, links to the image, the page, the payment
in Stripe's dashboard and the customer's other orders; the last error only while the order
is unresolved."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.test import override_settings
from django.urls import reverse

from tests.html_support import one, select, text
from wagtail_smi import timeline
from wagtail_smi.models import DownloadEvent, EventCode, JobEvent, PurchaseJob

pytestmark = pytest.mark.django_db

C = EventCode
#: Data as the operations write it, for every code.
SAMPLES = {
    C.CHECKOUT_STARTED: {"resolution": "4x", "amount_cents": 576, "currency": "usd"},
    C.CHECKOUT_REUSED: {"resolution": "4x", "minutes": 30},
    C.PAYMENT_RECEIVED: {"provider": "stripe", "reference": "cs_test_1"},
    C.DISCOUNT_APPLIED: {
        "discount_cents": 100,
        "amount_cents": 576,
        "paid_cents": 476,
        "currency": "usd",
    },
    C.PAYMENT_NOT_APPLIED: {"provider": "stripe", "reference": "cs_x", "detail": "wrong amount"},
    C.PAYMENT_FAILED: {"provider": "stripe", "reference": "cs_x", "payment": "card"},
    C.CHECKOUT_ABANDONED: {"provider": "stripe", "reference": "cs_x"},
    C.PROCESSING_STARTED: {"upscaler": "upsampler"},
    C.SUBMITTED: {"upscaler": "upsampler", "external_id": "up-1", "via": "answer"},
    C.SUBMISSION_UNCONFIRMED: {"error": "timed out", "wait_until": "2026-01-01T00:00:00+00:00"},
    C.CALLBACK_IGNORED: {"upscaler": "upsampler", "external_id": "up-2", "why": "other_order"},
    C.ATTEMPT_FAILED: {"attempt": 2, "error": "HTTP 503", "delay_seconds": 240},
    C.DELIVERED: {},
    C.PROCESSING_FAILED: {"reason": "result_invalid", "detail": "not an image"},
    C.NEEDS_ATTENTION: {"detail": "The upscaler did not answer before the deadline."},
    C.REFUND_STARTED: {"reason": "Customer asked"},
    C.REFUNDED: {"amount_cents": 576, "currency": "usd", "refund_id": "re_1", "reason": "Asked"},
    C.PARTIAL_REFUND: {
        "amount_cents": 100,
        "total_cents": 100,
        "paid_cents": 576,
        "currency": "usd",
        "refund_id": "re_2",
        "reason": "Goodwill",
        "provider": "stripe",
    },
    C.REFUND_REFUSED: {"refund_id": "", "error": "Stripe refused the refund: card expired"},
    C.RETRIED: {},
    C.REDELIVERED: {},
    C.LINK_RESENT: {},
    C.ACCESS_REVOKED: {"reason": "Chargeback"},
    C.RESOLVED_DELIVERED: {"details": "Sent by email"},
    C.RESOLVED_REFUNDED: {"details": "Bank transfer", "amount_cents": 576, "currency": "usd"},
    C.TAKEN_IN_HAND: {},
    C.AUTO_REFUND: {"hours": 24},
    C.EMAIL_SENT: {"email": "download_ready"},
    C.EMAIL_FAILED: {"email": "refund_notice", "problem": "SMTPServerDisconnected: gone"},
    C.EMAIL_RETRIED: {"email": "download_ready"},
    C.ANONYMISED: {"reason": "Erasure request", "orders": 2},
    C.LEGACY: {"text": "Paid via Stripe."},
}
# A raw key in a sentence: words joined by underscores, or an event code's dotted name.
RAW_KEY = re.compile(r"\b[a-z]+_[a-z_]+\b|\b[a-z]+\.[a-z]+\.[a-z]+\b")


def test_every_event_code_has_a_sentence_without_raw_keys():
    assert set(SAMPLES) == set(EventCode), "a new event code needs its sentence and a sample"
    for code, data in SAMPLES.items():
        sentence = timeline.describe(JobEvent(code=code, data=data))
        assert sentence and "?" not in sentence, (code, sentence)
        assert not RAW_KEY.search(sentence), (code, sentence)
        assert code == C.LEGACY or code in timeline.SENTENCES


@pytest.mark.parametrize(
    "code, data, sentence",
    [
        (C.EMAIL_SENT, {"email": "download_ready"}, "Sent the “download ready” email to the customer."),
        (C.EMAIL_SENT, {"email": "admin_alert"}, "Sent an alert to the shop's admins."),
        (C.EMAIL_FAILED, {"email": "refund_notice", "problem": "no recipient"},
         "Could not send the refund email to the customer: no recipient."),
        (C.ATTEMPT_FAILED, {"attempt": 2, "error": "HTTP 503", "delay_seconds": 240},
         "Attempt 2 failed (HTTP 503); trying again in 4 minutes."),
        (C.PROCESSING_FAILED, {"reason": "result_invalid", "detail": "not an image"},
         "Upscaling failed: the upscaled image did not pass the image checks (not an image)."),
    ],
)  # fmt: skip
def test_sentences_read_as_plain_language(code, data, sentence):
    assert timeline.describe(JobEvent(code=code, data=data)) == sentence


def test_a_refused_transition_names_the_states_as_people_do():
    event = JobEvent(
        code=C.REFUNDED, kind="refused", from_status="abandoned", to_status="refunded", data={}
    )
    assert timeline.describe(event).startswith("Refused: Abandoned → Refunded.")


def add_event(job, code, *, at, actor=None, kind="note", to_status="", data=None):
    event = JobEvent.objects.create(
        job=job,
        code=code,
        kind=kind,
        to_status=to_status,
        data=SAMPLES[code] if data is None else data,
        actor=actor,
    )
    JobEvent.objects.filter(pk=event.pk).update(created_at=at)
    return event


@pytest.fixture
def stripe_key(settings):
    def use(key: str):
        settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "STRIPE": {"SECRET_KEY": key}}

    return use


@override_settings(TIME_ZONE="America/New_York")
def test_the_timeline_says_who_acted_in_one_date_format_in_the_site_time_zone(
    manager_client, make_job, sales_manager, stripe_key
):
    stripe_key("sk_test_123")
    sales_manager.first_name, sales_manager.last_name = "Sally", "Sales"
    sales_manager.save()
    job = make_job(
        "completed",
        payment_provider="stripe",
        payment_intent_id="pi_3Abc",
        email="buyer@example.com",
        paid_at=datetime(2026, 1, 10, 4, 30, tzinfo=UTC),
    )
    add_event(job, C.CHECKOUT_STARTED, at=datetime(2026, 1, 10, 4, 20, tzinfo=UTC))
    add_event(
        job,
        C.PAYMENT_RECEIVED,
        at=datetime(2026, 1, 10, 4, 30, tzinfo=UTC),
        kind="transition",
        to_status="paid",
    )
    add_event(job, C.EMAIL_SENT, at=datetime(2026, 1, 10, 4, 45, tzinfo=UTC))
    add_event(
        job, C.PARTIAL_REFUND, at=datetime(2026, 1, 11, 15, 0, tzinfo=UTC), actor=sales_manager
    )
    DownloadEvent.objects.create(job=job)
    DownloadEvent.objects.filter(job=job).update(created_at=datetime(2026, 1, 10, 5, tzinfo=UTC))

    page = manager_client.get(reverse("smi_orders:inspect", args=[job.pk]))
    rows = [
        [text(cell) for cell in row.select("td")] for row in select(page, ".smi-timeline tbody tr")
    ]
    assert rows == [
        [
            "Jan. 9, 2026, 11:20 p.m.",
            "The customer started a checkout for the 4x copy at $5.76.",
            "Customer",
        ],
        [
            "Jan. 9, 2026, 11:30 p.m.",
            "Payment received through Stripe. → Paid See it in Stripe",
            "Stripe",
        ],
        [
            "Jan. 9, 2026, 11:45 p.m.",
            "Sent the “download ready” email to the customer.",
            "System",
        ],
        [
            "Jan. 11, 2026, 10 a.m.",
            "Refunded $1.00 of $5.76 through Stripe; $4.76 left. Reason: Goodwill See it in Stripe",
            "Sally Sales",
        ],
    ]
    # The same format for the order's own times and its downloads: no other one on the page.
    details = text(page, ".smi-order__fields:not(.smi-order__money)")
    assert "Paid Jan. 9, 2026, 11:30 p.m." in details
    assert "Jan. 10, 2026, midnight" in text(page, "[aria-labelledby=smi-downloads-heading]")
    main = text(page, ".smi-order")
    assert not re.search(r"\d{4}-\d{2}-\d{2}", main)
    assert select(page, ".smi-timeline time")[0]["datetime"] == "2026-01-10T04:20:00+00:00"


def test_the_order_links_to_its_image_page_payment_and_the_customers_orders(
    manager_client, make_job, stripe_key
):
    stripe_key("sk_test_123")
    job = make_job(
        "completed",
        payment_provider="stripe",
        payment_intent_id="pi_3Abc",
        email="Buyer@Example.com",
        paid_at=datetime(2026, 1, 10, tzinfo=UTC),
    )
    other = make_job(
        "refunded", email="buyer@example.com", paid_at=datetime(2026, 1, 1, tzinfo=UTC)
    )
    make_job("completed", email="someone@example.com")

    page = manager_client.get(reverse("smi_orders:inspect", args=[job.pk]))
    links = {li["data-smi-link"]: li for li in select(page, "[data-smi-link]")}
    assert links["image"].a["href"] == reverse("wagtailimages:edit", args=[job.image_ref])
    assert links["page"].a["href"] == reverse("wagtailadmin_pages:edit", args=[job.page_ref])
    assert links["payment"].a["href"] == "https://dashboard.stripe.com/test/payments/pi_3Abc"
    customer = links["customer"].a["href"]
    assert text(links["customer"].a) == "all 2 orders"
    listed = manager_client.get(customer)
    assert {str(o.pk) for o in listed.context["object_list"]} == {str(job.pk), str(other.pk)}


def test_a_live_key_links_to_the_live_dashboard(manager_client, make_job, stripe_key):
    stripe_key("sk_live_123")
    job = make_job("completed", payment_provider="stripe", payment_intent_id="pi_live")
    page = manager_client.get(reverse("smi_orders:inspect", args=[job.pk]))
    assert one(page, "[data-smi-link=payment] a")["href"] == (
        "https://dashboard.stripe.com/payments/pi_live"
    )


@pytest.mark.parametrize(
    "status, shown",
    [
        ("processing", True),
        ("needs_attention", True),
        ("failed", True),
        ("completed", False),
        ("refunded", False),
        ("abandoned", False),
    ],
)
def test_the_last_error_shows_only_until_the_order_is_resolved(
    manager_client, make_job, status, shown
):
    job = make_job(status, last_error="The upscaler did not answer.")
    page = manager_client.get(reverse("smi_orders:inspect", args=[job.pk]))
    assert bool(select(page, "[data-smi-last-error]")) is shown


def test_an_anonymised_order_says_so_and_offers_no_customer_links(manager_client, make_job):
    job = make_job("completed", email="")
    PurchaseJob.objects.filter(pk=job.pk).update(anonymised_at=datetime(2026, 1, 1, tzinfo=UTC))
    page = manager_client.get(reverse("smi_orders:inspect", args=[job.pk]))
    assert select(page, "[data-smi-anonymised]")
    assert not select(page, "[data-smi-link=customer]")
