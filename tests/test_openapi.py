"""The OpenAPI 3.1 document of the public API (``/smi/v1/openapi.json``): valid, complete,
and in step with what the endpoints answer.

Every answer the suite's tests get from a ``/smi/v1/`` route is also checked against the
document (``tests/openapi_support.py``); the situations below make sure each operation's
answers are seen here too, whatever other tests do.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.cache import caches
from django.http import JsonResponse
from django.test import Client, override_settings
from django.urls import URLPattern
from django.utils import timezone
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from tests.openapi_support import Contract
from tests.storefront_support import FAILING_PROVIDER, PROVIDER, publish_gallery, sellable
from wagtail_smi import forms, urls
from wagtail_smi.models import JobStatus
from wagtail_smi.openapi import document

pytestmark = pytest.mark.django_db

PRICES = "/smi/v1/calculate-all-prices"
CHECKOUT = "/smi/v1/create-checkout"
CLICK = "/smi/v1/track-click"


def post_json(client, url, data):
    return client.post(url, json.dumps(data), content_type="application/json")


@pytest.fixture
def contract():
    return Contract(document())


def route_template(pattern: URLPattern) -> str:
    """``smi/v1/job-status/<str:job_id>`` → ``/smi/v1/job-status/{job_id}``."""
    route = str(pattern.pattern)
    for converter in ("str", "int", "uuid", "slug", "path"):
        route = route.replace(f"<{converter}:", "<")
    return "/" + route.replace("<", "{").replace(">", "}")


# --- the document ----------------------------------------------------------------------


def test_the_document_is_valid_openapi_3_1():
    validate(document(), cls=OpenAPIV31SpecValidator)


def test_every_public_api_route_is_in_the_document():
    routes = {
        route_template(p)
        for p in urls.urlpatterns
        if isinstance(p, URLPattern) and str(p.pattern).startswith("smi/v1/")
    }

    assert routes == set(document()["paths"])


@pytest.mark.parametrize(
    "schema, form_class",
    [("OfferRequest", forms.OfferForm), ("CheckoutRequest", forms.CheckoutForm)],
)
def test_request_bodies_list_every_field_the_api_accepts(schema, form_class):
    body = document()["components"]["schemas"][schema]

    assert set(body["properties"]) == set(form_class.base_fields)
    assert set(body["required"]) == {n for n, f in form_class.base_fields.items() if f.required}


def test_the_document_is_served_at_its_route_and_uncached(client):
    response = client.get("/smi/v1/openapi.json")

    assert response.status_code == 200
    assert response.json() == json.loads(json.dumps(document()))
    assert "no-store" in response["Cache-Control"]
    assert client.post("/smi/v1/openapi.json").status_code == 405


def test_the_checker_reports_an_answer_the_document_does_not_describe(contract):
    """The suite-wide check is only worth something if it notices drift."""
    missing_field = JsonResponse({"job_id": "x", "status": "paid"})
    unknown_status = JsonResponse({"error": "teapot", "message": "no"}, status=418)
    wrong_type = JsonResponse({"tracked": "yes"})
    job_status = "/smi/v1/job-status/00000000-0000-0000-0000-000000000000"

    assert any("required" in p for p in contract.problems("GET", job_status, missing_field))
    assert contract.problems("POST", CLICK, unknown_status) == [
        "status 418 is not one of ['200', '400', '403', '404', '413', '429']"
    ]
    assert contract.problems("POST", CLICK, wrong_type)
    assert contract.problems("GET", "/smi/orders/x/", wrong_type) == []  # not the API


# --- answers in each situation -----------------------------------------------------------


def assert_described(contract, method, path, response):
    assert contract.problems(method, path, response) == [], response.content


def test_price_answers_match_the_document(client, offer, make_image, root_page, contract):
    image, page = offer
    tiny = make_image(4, 4, title="Too small")
    tiny_page = publish_gallery(root_page, [sellable(tiny)], slug="tiny")
    situations = [
        ({"image_id": image.pk, "page_id": page.pk}, 200),
        ({"image_id": image.pk + 1000, "page_id": page.pk}, 404),
        ({"image_id": "1", "page_id": page.pk}, 400),
        ({"image_id": tiny.pk, "page_id": tiny_page.pk}, None),  # 200 or 422: both described
    ]
    for body, status in situations:
        response = post_json(client, PRICES, body)
        assert status is None or response.status_code == status
        assert_described(contract, "POST", PRICES, response)
    broken = client.post(PRICES, "{", content_type="application/json")
    assert broken.status_code == 400
    assert_described(contract, "POST", PRICES, broken)


def test_checkout_answers_match_the_document(client, offer, contract, settings):
    image, page = offer
    body = {"image_id": image.pk, "page_id": page.pk, "resolution": "4x"}
    with override_settings(WAGTAIL_SMI={**settings.WAGTAIL_SMI, "PAYMENT_BACKEND": PROVIDER}):
        created = post_json(client, CHECKOUT, {**body, "email": "b@example.com"})
        unknown = post_json(client, CHECKOUT, {**body, "resolution": "3x"})
        bad_email = post_json(client, CHECKOUT, {**body, "email": "not an email"})
    with override_settings(
        WAGTAIL_SMI={**settings.WAGTAIL_SMI, "PAYMENT_BACKEND": FAILING_PROVIDER}
    ):
        provider_down = post_json(client, CHECKOUT, body)

    assert [created.status_code, unknown.status_code, bad_email.status_code] == [200, 400, 400]
    assert provider_down.status_code == 502
    for response in (created, unknown, bad_email, provider_down):
        assert_described(contract, "POST", CHECKOUT, response)


def test_the_stripe_checkout_answer_matches_the_document(client, offer, stripe_settings, contract):
    image, page = offer
    response = post_json(
        client, CHECKOUT, {"image_id": image.pk, "page_id": page.pk, "resolution": "8x"}
    )

    assert response.status_code == 200
    assert response.json()["checkout_url"].startswith("http://127.0.0.1:")
    assert_described(contract, "POST", CHECKOUT, response)


def test_click_csrf_and_method_answers_match_the_document(client, offer, contract):
    image, page = offer
    click = post_json(client, CLICK, {"image_id": image.pk, "page_id": page.pk})
    token = client.get("/smi/v1/csrf")
    wrong_method = client.get(CLICK)
    strict = Client(enforce_csrf_checks=True)
    no_token = post_json(strict, CLICK, {"image_id": image.pk, "page_id": page.pk})

    assert [click.status_code, token.status_code] == [200, 200]
    assert [wrong_method.status_code, no_token.status_code] == [405, 403]
    assert_described(contract, "POST", CLICK, click)
    assert_described(contract, "GET", "/smi/v1/csrf", token)
    assert_described(contract, "GET", CLICK, wrong_method)
    assert_described(contract, "POST", CLICK, no_token)


@pytest.mark.parametrize("status", JobStatus.values)
def test_job_status_answers_match_the_document_in_every_state(client, make_job, contract, status):
    fields = {}
    if status == JobStatus.COMPLETED:
        fields = {
            "token_expires_at": timezone.now() + timedelta(hours=24),
            "result_path": "smi/result.png",
        }
    job = make_job(status, **fields)
    path = f"/smi/v1/job-status/{job.pk}"

    found = client.get(path, {"key": job.access_key})
    wrong_key = client.get(path, {"key": "nope"})

    assert [found.status_code, wrong_key.status_code] == [200, 404]
    assert found.json()["status"] == status
    assert_described(contract, "GET", path, found)
    assert_described(contract, "GET", path, wrong_key)


def test_rate_limited_answers_match_the_document(client, offer, contract):
    image, page = offer
    caches["default"].clear()
    with override_settings(
        WAGTAIL_SMI={"RATE_LIMITS_ENABLED": True, "RATE_LIMITS": {"prices": (1, 60)}}
    ):
        answers = [
            post_json(client, PRICES, {"image_id": image.pk, "page_id": page.pk}) for _ in range(2)
        ]
    caches["default"].clear()

    assert [a.status_code for a in answers] == [200, 429]
    assert_described(contract, "POST", PRICES, answers[1])
