""" "Email me a fresh link": a customer whose download link expired types the purchase email
and, when it matches, a new link goes to that address. The answer never tells whether it
matched; nothing goes out for refunded or revoked orders; clients and orders are limited."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from tests.html_support import one, select, text
from tests.operations_support import codes, event
from tests.pages_support import BUYER, PAYLOAD
from wagtail_smi import links, storage
from wagtail_smi.models import EventCode, PurchaseJob
from wagtail_smi.operations import delivery as delivery_ops
from wagtail_smi.operations import maintenance
from wagtail_smi.timeline import describe

pytestmark = pytest.mark.django_db

TOKEN_IN_EMAIL = re.compile(r"/smi/download/([A-Za-z0-9_-]{64})")


@pytest.fixture
def expired(delivered):
    """An order whose link expired an hour ago (its file still kept), and that old token."""
    return delivered(token_expires_at=timezone.now() - timedelta(hours=1))


@pytest.fixture
def ask_for_link(client, django_capture_on_commit_callbacks):
    """Post the expired link page's form; emails go out as after a commit."""

    def post(token: str, email: str):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(links.token_fresh_link_path(token), {"email": email})

    return post


def test_the_purchase_email_gets_a_fresh_link_that_downloads(client, expired, ask_for_link):
    job, old_token = expired
    old_expiry = job.token_expires_at

    response = ask_for_link(old_token, "  buyer@EXAMPLE.com ")  # case and spaces differ

    assert response.status_code == 200
    assert "Check your inbox" in text(response, "h1")
    [message] = mail.outbox
    assert message.to == [BUYER]  # the order's address, not the one typed
    [new_token] = TOKEN_IN_EMAIL.findall(message.body)
    assert new_token != old_token
    download = client.get(f"/smi/download/{new_token}")
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == PAYLOAD
    job.refresh_from_db()
    assert job.token_expires_at > timezone.now() > old_expiry
    assert job.download_count == 1  # the allowance goes on; a fresh link does not reset it


def test_the_fresh_link_is_recorded_on_the_order(expired, ask_for_link):
    job, token = expired

    ask_for_link(token, BUYER)

    resent = event(job, EventCode.LINK_RESENT)
    assert resent.data == {"requested_by": "customer"} and resent.actor is None
    assert "customer asked for a fresh download link" in describe(resent)


def test_a_wrong_email_gets_the_same_answer_and_nothing_is_sent(expired, ask_for_link):
    job, token = expired
    before = (job.token_hash, job.token_expires_at)

    wrong = ask_for_link(token, "someone.else@example.com")

    assert mail.outbox == []
    job.refresh_from_db()
    assert (job.token_hash, job.token_expires_at) == before
    assert EventCode.LINK_RESENT not in codes(job)
    right = ask_for_link(token, BUYER)  # the same form, the purchase address
    assert len(mail.outbox) == 1
    assert wrong.status_code == right.status_code == 200

    def answer(response, typed):
        return text(response, "main").replace(typed, "ADDRESS")

    assert answer(wrong, "someone.else@example.com") == answer(right, BUYER)
    assert not TOKEN_IN_EMAIL.search(right.content.decode())  # only the email has the link


@pytest.mark.parametrize(
    "fields",
    [
        {"status": "refunded"},
        {"access_revoked_at": timezone.now()},
        {"file_deleted_at": timezone.now()},
        {"download_limit": 2, "download_count": 2},
        {"token_expires_at": timezone.now() + timedelta(hours=1)},  # not expired
    ],
    ids=["refunded", "revoked", "file deleted", "used up", "still valid"],
)
def test_nothing_is_sent_when_the_order_may_not_have_one(delivered, ask_for_link, fields):
    fields.setdefault("token_expires_at", timezone.now() - timedelta(hours=1))
    job, token = delivered(**fields)

    response = ask_for_link(token, BUYER)

    assert response.status_code == 200  # the same answer as ever
    assert "Check your inbox" in text(response, "h1")
    assert mail.outbox == []
    assert EventCode.LINK_RESENT not in codes(job)


def test_an_order_gets_a_few_fresh_links_a_day_whoever_asks(expired, ask_for_link, settings):
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "FRESH_LINKS_PER_ORDER": (2, 3600)}
    job, token = expired
    answers = []
    for _ in range(3):
        answers.append(ask_for_link(token, BUYER))
        job.refresh_from_db()
        # The emailed link expires again, and the newest token is used to ask.
        PurchaseJob.objects.filter(pk=job.pk).update(
            token_expires_at=timezone.now() - timedelta(seconds=1)
        )
        token = TOKEN_IN_EMAIL.findall(mail.outbox[-1].body)[0]

    assert len(mail.outbox) == 2
    assert {a.status_code for a in answers} == {200}
    assert codes(job).count(EventCode.LINK_RESENT) == 2


def test_a_client_is_rate_limited_whatever_the_address(expired, settings):
    settings.WAGTAIL_SMI = {
        **settings.WAGTAIL_SMI,
        "RATE_LIMITS_ENABLED": True,
        "RATE_LIMITS": {"fresh_link": (2, 3600)},
    }
    _job, token = expired
    client = Client(REMOTE_ADDR="203.0.113.7")
    url = links.token_fresh_link_path(token)

    answers = [client.post(url, {"email": f"guess{i}@example.com"}) for i in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2]["Retry-After"]
    other = Client(REMOTE_ADDR="203.0.113.8").post(url, {"email": "guess@example.com"})
    assert other.status_code == 200


def test_the_form_needs_a_csrf_token(expired):
    _job, token = expired

    response = Client(enforce_csrf_checks=True).post(
        links.token_fresh_link_path(token), {"email": BUYER}
    )

    assert response.status_code == 403
    assert mail.outbox == []


@pytest.mark.parametrize("typed", ["", "not-an-address"])
def test_a_missing_or_malformed_address_is_asked_again(expired, ask_for_link, typed):
    _job, token = expired

    response = ask_for_link(token, typed)

    assert response.status_code == 400
    field = one(response, "form.smi-fresh-link input[name=email]")
    assert field["aria-invalid"] == "true" and field["value"] == typed
    assert text(response, "#smi-fresh-error")
    assert mail.outbox == []


def test_an_unknown_token_or_a_wrong_key_is_a_404(client, expired):
    job, _token = expired

    unknown = client.post(links.token_fresh_link_path("A" * 64), {"email": BUYER})
    wrong_key = client.post(
        links.fresh_link_path(job).replace(job.access_key, "0" * 40), {"email": BUYER}
    )

    assert unknown.status_code == wrong_key.status_code == 404
    assert mail.outbox == []


def test_the_form_only_takes_posts(client, expired):
    _job, token = expired

    assert client.get(links.token_fresh_link_path(token)).status_code == 405


def test_the_order_page_of_an_expired_order_offers_the_form(client, expired):
    job, _token = expired

    response = client.get(links.order_path(job))

    form = one(response, "form.smi-fresh-link")
    assert form["action"] == links.fresh_link_path(job)
    assert "expired" in text(response, ".smi-message")
    assert one(response, "p.smi-download").has_attr("hidden")


def test_the_order_form_sends_the_link_and_leads_back_to_the_order(
    client, expired, django_capture_on_commit_callbacks
):
    job, _token = expired

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(links.fresh_link_path(job), {"email": BUYER})

    assert len(mail.outbox) == 1
    back = [a["href"] for a in select(response, ".smi-fresh-link-sent a")]
    assert back == [links.order_path(job)]
    page = client.get(links.order_path(job))  # ready again, with the button
    assert not one(page, "p.smi-download").has_attr("hidden")
    assert select(page, "form.smi-fresh-link") == []


@pytest.mark.parametrize(
    "fields",
    [{"status": "refunded"}, {"access_revoked_at": timezone.now()}],
    ids=["refunded", "revoked"],
)
def test_the_order_page_offers_no_form_to_refunded_or_revoked_orders(client, delivered, fields):
    job, _token = delivered(token_expires_at=timezone.now() - timedelta(hours=1), **fields)

    response = client.get(links.order_path(job))

    assert select(response, "form.smi-fresh-link") == []


def test_the_file_is_kept_for_the_fresh_link_days_then_deleted(
    expired, settings, django_capture_on_commit_callbacks
):
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "FRESH_LINK_DAYS": 2}
    job, _token = expired
    files = storage.private_storage()

    with django_capture_on_commit_callbacks(execute=True):
        kept = maintenance.cleanup()["files_deleted"]
    PurchaseJob.objects.filter(pk=job.pk).update(
        token_expires_at=timezone.now() - timedelta(days=2, minutes=1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        deleted = maintenance.cleanup()["files_deleted"]

    assert (kept, deleted) == (0, 1)
    job.refresh_from_db()
    assert job.file_deleted_at and not files.exists(job.result_path)


def test_no_fresh_link_days_means_no_form_and_prompt_deletion(client, expired, settings):
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "FRESH_LINK_DAYS": 0}
    job, token = expired

    page = client.get(f"/smi/download/{token}")

    assert select(page, "form.smi-fresh-link") == []
    assert list(delivery_ops.deletable_files(timezone.now()).values_list("pk", flat=True)) == [
        job.pk
    ]
