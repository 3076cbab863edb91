"""Hostile input to the public JSON endpoints: deeply nested JSON is a 400, never a 500
(which, with DEBUG off, also mails the admins on every request)."""

from __future__ import annotations

import json

import pytest
from django.core import mail
from django.test import Client

from wagtail_smi.models import ImageClick

pytestmark = pytest.mark.django_db

ENDPOINTS = ["/smi/v1/calculate-all-prices", "/smi/v1/create-checkout", "/smi/v1/track-click"]
DEPTH = 100_000
LIMIT = 16  # wagtail_smi.api.LIMIT
NESTED = {
    "arrays": b"[" * DEPTH + b"]" * DEPTH,
    "objects": b'{"a":' * DEPTH + b"1" + b"}" * DEPTH,
    "inside a field": b'{"image_id": ' + b"[" * DEPTH + b"]" * DEPTH + b"}",
}


@pytest.fixture
def production(settings):
    """DEBUG off with admins configured, and a client that answers a crash with the 500
    page (as a real server would) instead of raising it into the test."""
    settings.DEBUG = False
    settings.ADMINS = [("Ops", "ops@example.com")]
    return Client(raise_request_exception=False)


@pytest.mark.parametrize("url", ENDPOINTS)
@pytest.mark.parametrize("shape", list(NESTED))
def test_deeply_nested_json_is_a_400_and_mails_nobody(production, url, shape):
    response = production.post(url, NESTED[shape], content_type="application/json")

    assert (response.status_code, [m.subject for m in mail.outbox]) == (400, [])
    assert response.json()["error"] == "invalid"
    assert response.json()["field"] == "body"


def test_ordinary_json_bodies_still_work_on_every_endpoint(production, offer):
    image, page = offer
    body = {"image_id": image.pk, "page_id": page.pk, "note": "[[[{{{ brackets in text }}}]]]"}

    prices = production.post(ENDPOINTS[0], json.dumps(body), content_type="application/json")
    click = production.post(ENDPOINTS[2], json.dumps(body), content_type="application/json")
    checkout = production.post(
        ENDPOINTS[1], json.dumps({**body, "resolution": "4x"}), content_type="application/json"
    )

    assert prices.status_code == 200 and set(prices.json()["pricing"]) == {"4x", "8x"}
    assert click.status_code == 200 and ImageClick.objects.count() == 1
    assert checkout.status_code == 200 and checkout.json()["checkout_url"]
    assert mail.outbox == []


def test_an_oversized_nested_body_is_still_a_413(production, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = production.post(ENDPOINTS[0], NESTED["arrays"], content_type="application/json")
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"


def test_json_that_is_not_utf8_is_a_400(production):
    body = json.dumps({"image_id": 1, "page_id": 1}).encode("utf-16")
    response = production.post(ENDPOINTS[0], body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"


@pytest.mark.parametrize(
    "body, too_deep",
    [
        (b'{"a": 1}', False),
        (b"[" * LIMIT + b"]" * LIMIT, False),
        (b"[" * (LIMIT + 1) + b"]" * (LIMIT + 1), True),
        (b"[{" * (LIMIT // 2 + 1) + b"}]" * (LIMIT // 2 + 1), True),
        # Many siblings are wide, not deep.
        (b"[" + b"[],{}," * 10_000 + b"1]", False),
        # Brackets inside strings (escaped quotes too) are text, not nesting.
        (b'{"a": "' + b"[" * 1000 + b'", "b": "\\"' + b"{" * 1000 + b'"}', False),
        # Brackets that never close count against the limit.
        (b"[" * 1000, True),
    ],
)
def test_depth_is_measured_without_recursion(body, too_deep):
    from wagtail_smi.api import MAX_JSON_DEPTH, json_too_deep

    assert MAX_JSON_DEPTH == LIMIT
    assert json_too_deep(body) is too_deep
