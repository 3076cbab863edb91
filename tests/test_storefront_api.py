"""The public JSON endpoints (SPEC §4): prices, checkout, clicks, job status, CSRF, limits."""

import json
from datetime import timedelta

import pytest
from django.core.cache import caches
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tests.storefront_support import (
    FAILING_PROVIDER,
    PROVIDER,
    plain,
    publish_gallery,
    sellable,
)
from wagtail_smi import pricing
from wagtail_smi.models import ImageClick, JobEvent, JobStatus, PurchaseJob, SmiSiteSettings

pytestmark = pytest.mark.django_db

PRICES = "/smi/v1/calculate-all-prices"
CHECKOUT = "/smi/v1/create-checkout"
CLICK = "/smi/v1/track-click"


def post_json(client, url, data):
    return client.post(url, json.dumps(data), content_type="application/json")


# --- prices ----------------------------------------------------------------------------


def test_prices_are_the_pricing_module_quotes_for_the_stored_size(client, make_image, root_page):
    image = make_image(2000, 1500)
    page = publish_gallery(root_page, [sellable(image)])

    response = post_json(client, PRICES, {"image_id": image.pk, "page_id": page.pk})

    assert response.status_code == 200
    data = response.json()
    assert data["image"] == {"id": image.pk, "width": 2000, "height": 1500, "title": image.title}
    assert data["currency"] == "usd"
    assert set(data["pricing"]) == {"4x", "8x"}
    rules = SmiSiteSettings.objects.get().pricing_rules()
    for key, option in data["pricing"].items():
        expected = pricing.quote(2000, 1500, rules.option(key), rules)
        assert option["price_cents"] == expected.price_cents
        assert option["output_width"] == 2000 * option["factor"]
        assert option["price_display"] == pricing.format_price(expected.price_cents, "usd")
        assert option["available"] is True and option["reason"] == ""
    assert data["pricing"]["8x"]["price_cents"] == 576  # SPEC §3 example
    assert data["pricing"]["4x"]["label"] == "Standard Quality"
    assert response["Cache-Control"].startswith("max-age=0")


def test_form_encoded_prices_work_too_and_unknown_fields_are_ignored(client, offer):
    image, page = offer
    response = client.post(
        PRICES, {"image_id": str(image.pk), "page_id": str(page.pk), "width": "9"}
    )

    assert response.status_code == 200
    assert response.json()["image"]["width"] == 1000


def test_an_oversized_output_is_listed_unavailable_with_its_reason(client, make_image, root_page):
    image = make_image(3000, 2000)  # 8x = 384 MP is fine; lower the limit to see the refusal
    page = publish_gallery(root_page, [sellable(image)])
    settings_row = SmiSiteSettings.for_site(page.get_site())
    settings_row.max_output_megapixels = 100
    settings_row.save()

    pricing_ = post_json(client, PRICES, {"image_id": image.pk, "page_id": page.pk}).json()[
        "pricing"
    ]

    assert pricing_["4x"]["available"] is True
    assert pricing_["8x"]["available"] is False
    assert "megapixels" in pricing_["8x"]["reason"]
    assert pricing_["8x"]["price_cents"] > 0


def test_a_block_restriction_hides_other_resolutions(client, make_image, root_page):
    image = make_image()
    page = publish_gallery(root_page, [sellable(image, resolutions=["8x"])])

    data = post_json(client, PRICES, {"image_id": image.pk, "page_id": page.pk}).json()

    assert list(data["pricing"]) == ["8x"]


def test_an_image_not_for_sale_on_that_live_page_is_a_404(client, make_image, root_page):
    image, stranger = make_image(), make_image(title="Not here")
    page = publish_gallery(root_page, [sellable(image), plain(stranger)])

    response = post_json(client, PRICES, {"image_id": stranger.pk, "page_id": page.pk})

    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "message": "This image is no longer for sale."}


def test_an_unpublished_page_is_a_404(client, offer):
    image, page = offer
    page.unpublish()

    response = post_json(client, PRICES, {"image_id": image.pk, "page_id": page.pk})

    assert response.status_code == 404


def test_selling_switched_off_for_the_site_is_a_404(client, offer):
    image, page = offer
    settings_row = SmiSiteSettings.for_site(page.get_site())
    settings_row.enabled = False
    settings_row.save()

    assert post_json(client, PRICES, {"image_id": image.pk, "page_id": page.pk}).status_code == 404


@pytest.mark.parametrize(
    "body, field",
    [
        ({"page_id": 1}, "image_id"),
        ({"image_id": "12", "page_id": 1}, "image_id"),
        ({"image_id": 1.5, "page_id": 1}, "image_id"),
        ({"image_id": True, "page_id": 1}, "image_id"),
        ({"image_id": 1, "page_id": [1]}, "page_id"),
        ({"image_id": 1, "page_id": -3}, "page_id"),
    ],
)
def test_wrong_types_are_a_400_naming_the_field(client, body, field):
    response = post_json(client, PRICES, body)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid"
    assert response.json()["field"] == field
    assert field in response.json()["message"]


def test_broken_json_is_a_400(client):
    response = client.post(PRICES, "{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["field"] == "body"


def test_get_is_not_allowed_on_post_endpoints(client):
    assert client.get(PRICES).status_code == 405


def test_price_requests_cost_the_same_queries_whatever_the_page_size(client, make_image, root_page):
    images = [make_image(title=f"Image {i}") for i in range(40)]
    small = publish_gallery(root_page, [sellable(images[0])], slug="small")
    big = publish_gallery(root_page, [sellable(i) for i in images], slug="big")
    post_json(client, PRICES, {"image_id": images[0].pk, "page_id": small.pk})  # warm caches

    counts = []
    for image, page in [(images[0], small), (images[-1], big), (images[20], big)]:
        with CaptureQueriesContext(connection) as queries:
            assert (
                post_json(client, PRICES, {"image_id": image.pk, "page_id": page.pk}).status_code
                == 200
            )
        counts.append(len(queries))

    assert counts[0] == counts[1] == counts[2]
    assert counts[0] <= 3


# --- checkout --------------------------------------------------------------------------


@override_settings(WAGTAIL_SMI={"PAYMENT_BACKEND": PROVIDER})
def test_checkout_creates_the_job_and_returns_the_provider_url(client, offer):
    image, page = offer

    response = post_json(
        client,
        CHECKOUT,
        {
            "image_id": image.pk,
            "page_id": page.pk,
            "resolution": "8x",
            "email": "buyer@example.com",
        },
    )

    assert response.status_code == 200
    data = response.json()
    job = PurchaseJob.objects.get(pk=data["job_id"])
    assert job.status == JobStatus.AWAITING_PAYMENT
    assert (job.resolution, job.factor, job.output_width, job.output_height) == (
        "8x",
        8,
        8000,
        8000,
    )
    assert job.amount_cents == data["amount_cents"] == 192  # SPEC §3: 1000×1000 at 8x
    assert job.currency == data["currency"] == "usd"
    # The local upscaler costs what the site says a megapixel costs it: nothing by default.
    assert job.credits == 16 and job.upscale_cost_cents == 0
    assert job.email == "buyer@example.com"
    assert (job.image_ref, job.page_ref, job.image_title, job.page_title) == (
        image.pk,
        page.pk,
        "Aurora",
        page.title,
    )
    assert job.payment_provider == "testpay"
    assert job.checkout_session_id == f"cs_test_{job.pk.hex}"
    assert data["checkout_url"] == job.checkout_url
    assert data["status_url"] == (
        f"http://127.0.0.1:8000/smi/orders/{job.pk}/?key={job.access_key}"
    )
    assert data["checkout_url"].startswith(data["status_url"])
    assert job.cancel_url == f"http://127.0.0.1:8000{page.url}"
    assert job.events.filter(kind=JobEvent.Kind.NOTE, code="checkout_started").exists()


def test_checkout_with_the_dummy_provider_points_at_its_local_page(client, offer):
    image, page = offer

    data = post_json(
        client, CHECKOUT, {"image_id": image.pk, "page_id": page.pk, "resolution": "4x"}
    ).json()

    job = PurchaseJob.objects.get(pk=data["job_id"])
    assert data["checkout_url"] == (
        f"http://127.0.0.1:8000{reverse('wagtail_smi:dummy_checkout', args=[job.pk])}?key={job.access_key}"
    )
    assert job.amount_cents == 50 and job.email == ""


@override_settings(WAGTAIL_SMI={"PAYMENT_BACKEND": PROVIDER})
def test_checkout_refuses_a_resolution_not_on_offer(client, make_image, root_page):
    image = make_image()
    page = publish_gallery(root_page, [sellable(image, resolutions=["4x"])])

    response = post_json(
        client, CHECKOUT, {"image_id": image.pk, "page_id": page.pk, "resolution": "8x"}
    )

    assert response.status_code == 400
    assert response.json()["error"] == "resolution_unavailable"
    assert not PurchaseJob.objects.exists()


@override_settings(WAGTAIL_SMI={"PAYMENT_BACKEND": PROVIDER})
def test_checkout_refuses_an_unavailable_resolution_with_its_reason(client, make_image, root_page):
    image = make_image(3000, 3000)
    page = publish_gallery(root_page, [sellable(image)])  # 8x = 576 MP > 400

    response = post_json(
        client, CHECKOUT, {"image_id": image.pk, "page_id": page.pk, "resolution": "8x"}
    )

    assert response.status_code == 400
    assert "megapixels" in response.json()["message"]
    assert not PurchaseJob.objects.exists()


@override_settings(WAGTAIL_SMI={"PAYMENT_BACKEND": PROVIDER})
def test_checkout_needs_the_terms_accepted_when_a_terms_url_is_set(client, offer):
    image, page = offer
    settings_row = SmiSiteSettings.for_site(page.get_site())
    settings_row.terms_url = "https://example.com/terms"
    settings_row.save()
    body = {"image_id": image.pk, "page_id": page.pk, "resolution": "4x"}

    refused = post_json(client, CHECKOUT, body)
    accepted = post_json(client, CHECKOUT, {**body, "terms_accepted": True})

    assert refused.status_code == 400 and refused.json()["error"] == "terms_required"
    assert accepted.status_code == 200
    assert PurchaseJob.objects.get().terms_accepted_at is not None


@pytest.mark.parametrize(
    "extra, field",
    [
        ({"resolution": 4}, "resolution"),
        ({"resolution": "4x", "email": "not-an-email"}, "email"),
        ({"resolution": "4x", "terms_accepted": "yes"}, "terms_accepted"),
        ({}, "resolution"),
    ],
)
def test_checkout_input_errors_name_the_field(client, offer, extra, field):
    image, page = offer

    response = post_json(client, CHECKOUT, {"image_id": image.pk, "page_id": page.pk, **extra})

    assert response.status_code == 400
    assert response.json()["field"] == field
    assert not PurchaseJob.objects.exists()


@override_settings(WAGTAIL_SMI={"PAYMENT_BACKEND": FAILING_PROVIDER})
def test_a_failing_provider_answers_502_and_keeps_the_job_with_the_error(client, offer):
    image, page = offer

    response = post_json(
        client, CHECKOUT, {"image_id": image.pk, "page_id": page.pk, "resolution": "4x"}
    )

    assert response.status_code == 502
    assert response.json()["error"] == "payment_provider_error"
    assert "try again" in response.json()["message"]
    job = PurchaseJob.objects.get()
    assert job.status == JobStatus.AWAITING_PAYMENT
    assert "unreachable" in job.last_error
    assert job.checkout_url == ""


def test_checkout_of_an_image_not_for_sale_is_a_404(client, make_image, root_page):
    image = make_image()
    page = publish_gallery(root_page, [plain(image)])

    response = post_json(
        client, CHECKOUT, {"image_id": image.pk, "page_id": page.pk, "resolution": "4x"}
    )

    assert response.status_code == 404
    assert not PurchaseJob.objects.exists()


# --- CSRF ------------------------------------------------------------------------------


@override_settings(WAGTAIL_SMI={"PAYMENT_BACKEND": PROVIDER})
def test_posts_need_a_csrf_token_which_the_csrf_endpoint_hands_out_uncached(offer):
    image, page = offer
    browser = Client(enforce_csrf_checks=True)
    body = json.dumps({"image_id": image.pk, "page_id": page.pk, "resolution": "4x"})

    refused = browser.post(CHECKOUT, body, content_type="application/json")
    token_response = browser.get("/smi/v1/csrf")
    token = token_response.json()["csrf_token"]
    accepted = browser.post(CHECKOUT, body, content_type="application/json", HTTP_X_CSRFTOKEN=token)

    assert refused.status_code == 403
    assert "no-store" in token_response["Cache-Control"]
    assert accepted.status_code == 200


# --- clicks ----------------------------------------------------------------------------


def test_a_click_is_recorded(client, offer):
    image, page = offer

    response = post_json(client, CLICK, {"image_id": image.pk, "page_id": page.pk})

    assert response.json() == {"tracked": True}
    click = ImageClick.objects.get()
    assert (click.image_ref, click.page_ref, click.site_ref) == (
        image.pk,
        page.pk,
        page.get_site().pk,
    )


def test_a_click_on_an_image_not_for_sale_is_not_recorded(client, make_image, root_page):
    image = make_image()
    page = publish_gallery(root_page, [plain(image)])

    assert post_json(client, CLICK, {"image_id": image.pk, "page_id": page.pk}).status_code == 404
    assert not ImageClick.objects.exists()


# --- job status ------------------------------------------------------------------------


def status_url(job, key):
    return reverse("wagtail_smi:job_status", args=[job.pk]) + (
        f"?key={key}" if key is not None else ""
    )


@pytest.mark.parametrize("key", [None, "", "wrong", "0" * 40])
def test_job_status_without_the_right_key_is_a_404(client, make_job, key):
    job = make_job("paid")

    response = client.get(status_url(job, key))

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_job_status_of_an_unknown_job_is_a_404(client):
    assert (
        client.get("/smi/v1/job-status/00000000-0000-0000-0000-000000000000?key=x").status_code
        == 404
    )


@pytest.mark.parametrize(
    "status, fields, stage",
    [
        ("awaiting_payment", {}, "awaiting_payment"),
        ("paid", {}, "paid"),
        ("processing", {}, "upscaling"),
        ("processing", {"result_path": "smi/x.png"}, "delivering"),
        ("failed", {}, "failed"),
        ("refunded", {}, "refunded"),
        ("needs_attention", {}, "needs_attention"),
        ("abandoned", {}, "abandoned"),
    ],
)
def test_job_status_reports_the_stage_with_a_message(client, make_job, status, fields, stage):
    job = make_job(status, **fields)

    data = client.get(status_url(job, job.access_key)).json()

    assert data["job_id"] == str(job.pk)
    assert data["status"] == status and data["stage"] == stage
    assert 0 <= data["progress"] <= 100
    assert data["message"]
    assert "download_url" not in data


def test_a_completed_job_reports_its_download_url_and_expiry(client, make_job):
    expires = timezone.now() + timedelta(hours=24)
    job = make_job("completed", token_expires_at=expires, result_path="smi/result.png")

    data = client.get(status_url(job, job.access_key)).json()

    assert data["stage"] == "ready" and data["progress"] == 100
    assert data["download_url"] == (
        f"http://127.0.0.1:8000/smi/orders/{job.pk}/download/?key={job.access_key}"
    )
    assert data["expires_at"] == expires.isoformat().replace("+00:00", "Z")
    assert data["expires_at"].endswith("Z")


# --- rate limits -----------------------------------------------------------------------


@pytest.fixture
def limits():
    caches["default"].clear()
    with override_settings(
        WAGTAIL_SMI={
            "RATE_LIMITS_ENABLED": True,
            "RATE_LIMITS": {
                "prices": (2, 60),
                "checkout": (1, 60),
                "click": (2, 60),
                "status": (2, 60),
                "download": (30, 60),
                "purchase_page": (2, 60),
            },
        }
    ):
        yield
    caches["default"].clear()


def test_too_many_price_requests_answer_429_with_retry_after(client, offer, limits):
    image, page = offer
    body = {"image_id": image.pk, "page_id": page.pk}

    answers = [post_json(client, PRICES, body) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].json()["error"] == "rate_limited"
    assert answers[2].json()["message"] == "Too many requests, try again in a minute."
    assert 1 <= int(answers[2]["Retry-After"]) <= 60


def test_rate_limits_are_per_client(offer, limits):
    image, page = offer
    body = {"image_id": image.pk, "page_id": page.pk}
    first, second = Client(REMOTE_ADDR="10.0.0.1"), Client(REMOTE_ADDR="10.0.0.2")

    for _ in range(2):
        post_json(first, PRICES, body)

    assert post_json(first, PRICES, body).status_code == 429
    assert post_json(second, PRICES, body).status_code == 200


def test_job_status_is_rate_limited(client, make_job, limits):
    job = make_job("paid")

    codes = [client.get(status_url(job, job.access_key)).status_code for _ in range(3)]

    assert codes == [200, 200, 429]


@pytest.mark.parametrize("bad", ["²", "٣", "99999999999999999999999", "0", "-1", "1e3"])
def test_ids_that_are_not_plain_positive_numbers_are_refused_not_crashed(client, bad):
    response = client.post("/smi/v1/calculate-all-prices", {"image_id": bad, "page_id": "1"})
    assert response.status_code == 400
    assert response.json()["field"] == "image_id"


@pytest.mark.parametrize(
    "path",
    [
        "/smi/buy/1/?page=²",
        "/smi/buy/99999999999999999999999/?page=1",
        "/smi/buy/1/?page=99999999999999999999999",
    ],
)
def test_the_purchase_page_answers_bad_ids_without_a_server_error(client, path):
    assert client.get(path).status_code in {400, 404}


def test_a_pending_bank_payment_tells_the_buyer_not_to_pay_again(client, make_job):
    job = make_job("awaiting_payment", payment_intent_id="pi_pending")
    data = client.get(f"/smi/v1/job-status/{job.pk}?key={job.access_key}").json()
    assert data["status"] == "awaiting_payment"
    assert "No need to pay again" in data["message"]


def test_a_post_without_csrf_token_is_refused_in_json(offer):
    image, page = offer
    strict = Client(enforce_csrf_checks=True)
    response = strict.post(
        "/smi/v1/calculate-all-prices",
        json.dumps({"image_id": image.pk, "page_id": page.pk}),
        content_type="application/json",
    )
    assert response.status_code == 403
    assert response.json()["error"] == "csrf_failed"


def test_a_post_with_the_token_from_the_csrf_endpoint_passes(offer):
    image, page = offer
    strict = Client(enforce_csrf_checks=True)
    token = strict.get("/smi/v1/csrf").json()["csrf_token"]
    response = strict.post(
        "/smi/v1/calculate-all-prices",
        json.dumps({"image_id": image.pk, "page_id": page.pk}),
        content_type="application/json",
        HTTP_X_CSRFTOKEN=token,
    )
    assert response.status_code == 200


def test_a_body_over_the_upload_limit_is_a_json_413(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = client.post(
        "/smi/v1/calculate-all-prices",
        json.dumps({"pad": "x" * 5000}),
        content_type="application/json",
    )
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"


@pytest.mark.parametrize(
    "job_id",
    ["notauuid", "1B4E28BA-2FA1-11D2-883F-B9A761BDE3FB", "1b4e28ba2fa111d2883fb9a761bde3fb"],
)
def test_job_status_for_a_malformed_id_is_a_json_404(client, job_id):
    response = client.get(f"/smi/v1/job-status/{job_id}?key=x")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_job_status_answers_post_with_a_json_405(make_job):
    job = make_job()
    response = Client(enforce_csrf_checks=True).post(
        f"/smi/v1/job-status/{job.pk}?key={job.access_key}"
    )
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


def test_the_no_js_purchase_page_counts_the_click(client, offer):
    image, page = offer
    assert client.get(f"/smi/buy/{image.pk}/?page={page.pk}").status_code == 200
    assert ImageClick.objects.filter(image_ref=image.pk, page_ref=page.pk).count() == 1


def test_clicks_are_not_recorded_while_selling_is_off(client, offer, site):
    image, page = offer
    settings = SmiSiteSettings.for_site(site)
    settings.enabled = False
    settings.save()
    caches["default"].clear()
    response = client.post("/smi/v1/track-click", {"image_id": image.pk, "page_id": page.pk})
    assert response.status_code == 404
    assert not ImageClick.objects.exists()


def test_a_ready_order_without_email_does_not_claim_one_was_sent(client, make_job):
    job = make_job("completed", email="")
    message = client.get(f"/smi/v1/job-status/{job.pk}?key={job.access_key}").json()["message"]
    assert "emailed" not in message


def test_the_stripe_webhook_answers_without_the_trailing_slash(client):
    response = client.post("/smi-webhook/stripe", b"{}", content_type="application/json")
    assert response.status_code not in (301, 302, 404)
    assert response["Content-Type"].startswith("application/json")


def test_a_failed_payment_tells_the_buyer_they_were_not_charged(client, make_job):
    from wagtail_smi.operations import mark_payment_failed

    job = make_job("awaiting_payment", payment_intent_id="pi_x")
    mark_payment_failed(job.pk, provider="stripe")
    data = client.get(f"/smi/v1/job-status/{job.pk}?key={job.access_key}").json()
    assert "did not go through" in data["message"]
