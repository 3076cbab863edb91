"""A purchase through the public API to a paid order, on each payment provider."""

from __future__ import annotations

import json

import pytest

from tests.html_support import one, text
from tests.stripe_fixtures import deliver
from wagtail_smi import links
from wagtail_smi.models import PurchaseJob

pytestmark = pytest.mark.django_db

CHECKOUT = "/smi/v1/create-checkout"


def start_checkout(client, offer, **extra):
    image, page = offer
    body = {"image_id": image.pk, "page_id": page.pk, "resolution": "8x", **extra}
    response = client.post(CHECKOUT, json.dumps(body), content_type="application/json")
    assert response.status_code in (200, 201), response.content
    return response.json()


def local(url: str) -> str:
    return url.removeprefix("http://127.0.0.1:8000")


def test_stripe_checkout_from_the_api_to_a_paid_order(
    client, offer, fake_stripe, stripe_settings, enqueued, django_capture_on_commit_callbacks
):
    data = start_checkout(client, offer)
    job = PurchaseJob.objects.get(pk=data["job_id"])

    assert data["checkout_url"] == f"{fake_stripe.base_url}/c/pay/{job.checkout_session_id}"
    session = fake_stripe.sessions[job.checkout_session_id]
    assert session["success_url"] == data["status_url"]
    assert session["amount_total"] == data["amount_cents"] == 192
    assert session["cancel_url"] == links.checkout_cancelled_url(job)

    _, payload, signature = fake_stripe.complete_session(
        job.checkout_session_id, email="paid@example.com"
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert deliver(client, payload, signature).status_code == 200

    job.refresh_from_db()
    assert (job.status, job.email) == ("paid", "paid@example.com")
    assert enqueued == [str(job.pk)]


def test_dummy_checkout_from_the_api_to_the_order_page(
    client, offer, enqueued, django_capture_on_commit_callbacks
):
    data = start_checkout(client, offer)
    page = client.get(local(data["checkout_url"]))
    assert page.status_code == 200
    assert text(page, "dd.smi-dummy-price") == "$1.92"

    with django_capture_on_commit_callbacks(execute=True):
        paid = client.post(
            local(data["checkout_url"]), {"action": "pay", "email": "demo@example.com"}
        )

    assert paid.status_code == 302
    assert paid["Location"] == local(data["status_url"])
    assert client.get(paid["Location"]).status_code == 200
    assert PurchaseJob.objects.get(pk=data["job_id"]).status == "paid"
    assert enqueued == [data["job_id"]]


def test_dummy_cancel_says_nothing_was_charged_and_leads_back_to_the_gallery(client, offer):
    data = start_checkout(client, offer)
    response = client.post(local(data["checkout_url"]), {"action": "cancel"})
    _, page = offer
    cancelled = client.get(response["Location"])
    assert "nothing was charged" in text(cancelled, ".smi-cancelled .smi-message")
    back = one(cancelled, ".smi-cancelled a.smi-button")
    assert back["href"] == f"http://127.0.0.1:8000{page.url}"
