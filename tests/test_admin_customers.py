"""Customers by email: orders, net spent per currency, first and last order, the repeat
rate, a link to their orders; and erasure requests, which remove personal data and keep
the amounts."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from tests.html_support import hrefs, one, select, text
from wagtail_smi import analytics, operations
from wagtail_smi.models import DownloadEvent, JobEvent, PurchaseJob

pytestmark = pytest.mark.django_db

CUSTOMERS = "wagtail_smi_reports:customers"


def at(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def paid(make_job, image, when, email, amount, **fields):
    job = make_job("completed", image=image, email=email, amount_cents=amount, **fields)
    PurchaseJob.objects.filter(pk=job.pk).update(paid_at=when, created_at=when)
    return job


@pytest.fixture
def customers(make_job, make_image):
    """Hand-computed:

    - ann@ (also typed Ann@): 5.00 + 10.00 with 2.50 back, usd, and 7.00 eur → 3 orders,
      12.50 usd and 7.00 eur net, first 1 Jan, last 20 Feb;
    - bob@: 3.00 usd, 3.00 refunded → 1 order, 0.00 net;
    - cat@: 4.00 usd less a 1.00 promotion code → 3.00;
    - an order never paid and one without an address count for nobody.
    """
    image = make_image()
    paid(make_job, image, at(2026, 1, 1, 9), "ann@example.com", 500)
    paid(make_job, image, at(2026, 2, 3, 9), "Ann@Example.com", 1000, refund_amount_cents=250)
    paid(make_job, image, at(2026, 2, 20, 9), "ann@example.com", 700, currency="eur")
    paid(make_job, image, at(2026, 2, 1, 9), "bob@example.com", 300, refund_amount_cents=300)
    paid(make_job, image, at(2026, 2, 2, 9), "cat@example.com", 400, discount_cents=100)
    make_job("awaiting_payment", image=image, email="dan@example.com", amount_cents=900)
    paid(make_job, image, at(2026, 2, 2, 9), "", 800)


@override_settings(TIME_ZONE="UTC")
def test_customers_by_email_with_net_spent_per_currency_and_repeat_rate(manager_client, customers):
    response = manager_client.get(reverse(CUSTOMERS))
    assert response.status_code == 200
    assert response.context["period"].key == "all"  # customers: all time by default
    people = [
        (p.email, p.orders, {c: f.net for c, f in p.money.items()}, p.first_order, p.last_order)
        for p in response.context["object_list"]
    ]
    assert people == [
        ("ann@example.com", 3, {"eur": 700, "usd": 1250}, at(2026, 1, 1, 9), at(2026, 2, 20, 9)),
        # One order each: the latest first.
        ("cat@example.com", 1, {"usd": 300}, at(2026, 2, 2, 9), at(2026, 2, 2, 9)),
        ("bob@example.com", 1, {"usd": 0}, at(2026, 2, 1, 9), at(2026, 2, 1, 9)),
    ]
    summary = response.context["summary"]
    assert (summary.customers, summary.repeat_customers, summary.repeat_rate) == (
        3,
        1,
        Decimal("33.3"),
    )
    assert summary.orders_per_customer == Decimal("1.67")
    [ann] = select(response, "tr[data-email='ann@example.com']")
    assert [text(s) for s in ann.select("[data-figure=net] span")] == ["€7.00", "$12.50"]
    assert "Jan. 1, 2026, 9 a.m." in text(ann)


@override_settings(TIME_ZONE="UTC")
def test_a_customer_links_to_their_orders(manager_client, customers):
    response = manager_client.get(reverse(CUSTOMERS))
    [ann] = select(response, "tr[data-email='ann@example.com']")
    url = ann.select_one("th a")["href"]
    assert url == reverse("smi_orders:list") + "?email=ann%40example.com"
    listed = manager_client.get(url).context["object_list"]
    assert sorted(job.amount_cents for job in listed) == [500, 700, 1000]


@override_settings(TIME_ZONE="UTC")
def test_the_period_limits_customers_to_orders_paid_in_it(manager_client, customers):
    response = manager_client.get(
        reverse(CUSTOMERS), {"dates_from": "2026-02-01", "dates_to": "2026-02-10"}
    )
    people = {p.email: (p.orders, p.money["usd"].net) for p in response.context["object_list"]}
    assert people == {
        "ann@example.com": (1, 750),
        "bob@example.com": (1, 0),
        "cat@example.com": (1, 300),
    }
    assert response.context["summary"].repeat_customers == 0


@override_settings(TIME_ZONE="UTC")
def test_customers_export_by_the_one_rule(manager_client, customers):
    response = manager_client.get(reverse(CUSTOMERS), {"export": "csv"})
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert lines[0] == "Customer,Paid orders,Net spent (EUR),Net spent (USD),First order,Last order"
    assert lines[1] == "ann@example.com,3,7.00,12.50,2026-01-01 09:00:00,2026-02-20 09:00:00"


def test_the_customer_list_is_ordered_as_asked(manager_client, customers):
    listing = analytics.CustomerList(analytics.resolve_period("all"), "last_order")
    assert [p.email for p in listing] == ["ann@example.com", "cat@example.com", "bob@example.com"]
    assert listing.count() == len(listing) == 3
    assert [p.email for p in listing[1:2]] == ["cat@example.com"]


# --- erasure requests ---------------------------------------------------------------------------


def test_anonymising_a_customer_removes_personal_data_and_keeps_amounts(make_job, sales_manager):
    now = timezone.now()
    mine = make_job(
        "completed", email="Ann@Example.com", locale="fr", amount_cents=500, paid_at=now
    )
    other = make_job(
        "completed", email="ann@example.com", amount_cents=700, currency="eur", paid_at=now
    )
    someone = make_job("completed", email="bob@example.com", locale="de", paid_at=now)
    DownloadEvent.objects.create(job=mine, ip_hash="a" * 64)
    JobEvent.objects.create(
        job=mine, code="email_failed", data={"email": "x", "problem": "refused ann@example.com"}
    )

    count = operations.anonymise_customer(
        "ann@example.com", reason="Erasure request of 3 March", actor=sales_manager
    )

    assert count == 2
    for job in (mine, other):
        job.refresh_from_db()
        assert (job.email, job.locale) == ("", "")
        assert job.anonymised_at is not None
        event = JobEvent.objects.get(job=job, code="anonymised")
        assert (event.actor, event.data) == (
            sales_manager,
            {"reason": "Erasure request of 3 March", "orders": 2},
        )
    assert (mine.amount_cents, other.amount_cents, other.currency) == (500, 700, "eur")
    assert DownloadEvent.objects.get(job=mine).ip_hash == ""
    quoted = JobEvent.objects.get(job=mine, code="email_failed")
    assert quoted.data["problem"] == "refused [removed]"
    someone.refresh_from_db()
    assert (someone.email, someone.locale, someone.anonymised_at) == ("bob@example.com", "de", None)
    # The money still counts; the customer does not.
    period = analytics.resolve_period("all")
    assert analytics.totals(period)["usd"].sales == 500 + 50
    assert [p.email for p in analytics.CustomerList(period)] == ["bob@example.com"]


def test_an_unknown_address_or_no_reason_is_refused(make_job):
    make_job("completed", email="ann@example.com")
    with pytest.raises(operations.NotFound):
        operations.anonymise_customer("nobody@example.com", reason="x")
    with pytest.raises(operations.InvalidInput):
        operations.anonymise_customer("ann@example.com", reason="  ")
    assert PurchaseJob.objects.get(email="ann@example.com").anonymised_at is None


def test_the_erasure_page_says_what_happens_and_asks_for_the_address_again(
    manager_client, make_job
):
    job = make_job("completed", email="ann@example.com", amount_cents=500)
    url = reverse("wagtail_smi_customers:anonymise") + "?email=ann%40example.com"
    page = manager_client.get(url)
    assert page.status_code == 200
    assert text(page, "[data-smi-email]") == "ann@example.com"
    assert "Kept: amounts, currencies, dates" in text(page, ".smi-confirm__consequences")
    assert one(page, "form.smi-confirm__form")["action"] == url

    wrong = manager_client.post(url, {"confirm_email": "bob@example.com", "reason": "Asked"})
    assert wrong.status_code == 200
    assert "This is not the customer's address." in text(wrong, "form.smi-confirm__form")
    assert PurchaseJob.objects.get(pk=job.pk).email == "ann@example.com"

    done = manager_client.post(url, {"confirm_email": "ANN@example.com", "reason": "Asked"})
    assert done.status_code == 302 and done.url == reverse(CUSTOMERS)
    assert [str(m) for m in get_messages(done.wsgi_request)] == [
        "Personal data removed from 1 orders."
    ]
    assert PurchaseJob.objects.get(pk=job.pk).email == ""


def test_only_those_who_may_act_on_orders_can_anonymise(viewer, editor, make_job):
    make_job("completed", email="ann@example.com")
    url = reverse("wagtail_smi_customers:anonymise") + "?email=ann%40example.com"
    viewer_client, editor_client = Client(), Client()
    viewer_client.force_login(viewer)
    editor_client.force_login(editor)
    for client in (viewer_client, editor_client):
        assert client.get(url).status_code in (302, 403)
        response = client.post(url, {"confirm_email": "ann@example.com", "reason": "x"})
        assert response.status_code in (302, 403)
        assert b"ann@example.com" not in response.content
    assert PurchaseJob.objects.get(email="ann@example.com").anonymised_at is None
    # A viewer sees the report, without the erasure link.
    report = viewer_client.get(reverse(CUSTOMERS))
    assert report.status_code == 200
    assert not [h for h in hrefs(report) if "anonymise" in h]
