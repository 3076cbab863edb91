"""Creating Stripe Checkout Sessions with the real stripe library against the local server."""

from __future__ import annotations

import time

import pytest
import stripe

from wagtail_smi.conf import smi_settings
from wagtail_smi.payments import CheckoutSession, PaymentProviderError, get_payment_provider

pytestmark = pytest.mark.django_db

SUCCESS = "https://shop.example/smi/orders/x/?key=k"
CANCEL = "https://shop.example/gallery/"


def create(job):
    return get_payment_provider().create_checkout(job, success_url=SUCCESS, cancel_url=CANCEL)


def test_create_checkout_returns_the_servers_checkout_url(stripe_settings, fake_stripe, make_job):
    job = make_job(factor=8, amount_cents=192)

    session = create(job)

    assert isinstance(session, CheckoutSession)
    assert session.session_id in fake_stripe.sessions
    assert session.url == f"{fake_stripe.base_url}/c/pay/{session.session_id}"


def test_checkout_session_is_built_from_the_job(stripe_settings, fake_stripe, make_job):
    job = make_job(factor=8, amount_cents=192, currency="eur", email="buyer@example.com")

    session = create(job)

    params = fake_stripe.sessions[session.session_id]["_params"]
    item = params["line_items"][0]
    assert params["mode"] == "payment"
    assert item["quantity"] == "1"
    assert item["price_data"]["unit_amount"] == "192"
    assert item["price_data"]["currency"] == "eur"
    assert item["price_data"]["product_data"]["name"] == "High-resolution image (8x)"
    assert (
        item["price_data"]["product_data"]["description"]
        == "Upscaled from 1000×1000 to 8000×8000 pixels"
    )
    assert params["metadata"] == {"job_id": str(job.pk)}
    assert params["payment_intent_data"]["metadata"] == {"job_id": str(job.pk)}
    assert params["customer_email"] == "buyer@example.com"
    assert params["success_url"] == SUCCESS
    assert params["cancel_url"] == CANCEL
    expires_in = int(params["expires_at"]) - time.time()
    assert 30 * 60 < expires_in <= 60 * 60 + 5
    # Options not switched on are not sent.
    for absent in (
        "automatic_tax",
        "allow_promotion_codes",
        "invoice_creation",
        "consent_collection",
    ):
        assert absent not in params


def test_checkout_without_email_lets_stripe_collect_it(stripe_settings, fake_stripe, make_job):
    session = create(make_job())
    assert "customer_email" not in fake_stripe.sessions[session.session_id]["_params"]


def test_checkout_pins_the_api_version_and_uses_a_job_idempotency_key(
    stripe_settings, fake_stripe, make_job
):
    job = make_job()
    first = create(job)
    again = create(job)

    posts = fake_stripe.requests_to("POST", "/v1/checkout/sessions")
    assert [r["idempotency_key"] for r in posts] == [f"wagtail-smi-checkout-{job.pk}"] * 2
    assert {r["stripe_version"] for r in posts} == {smi_settings.STRIPE["API_VERSION"]}
    # A retry (after a crash, say) replays the first session instead of opening a second.
    assert again == first
    assert len(fake_stripe.sessions) == 1


def test_pass_through_options_from_settings(settings, stripe_settings, fake_stripe, make_job):
    settings.WAGTAIL_SMI = {
        **settings.WAGTAIL_SMI,
        "STRIPE": {
            **settings.WAGTAIL_SMI["STRIPE"],
            "AUTOMATIC_TAX": True,
            "ALLOW_PROMOTION_CODES": True,
            "INVOICE_CREATION": True,
            "REQUIRE_TERMS_CONSENT": True,
            "ABANDONED_CHECKOUT_RECOVERY": True,
            "CHECKOUT_EXPIRES_MINUTES": 120,
        },
    }
    session = create(make_job())

    params = fake_stripe.sessions[session.session_id]["_params"]
    assert params["automatic_tax"] == {"enabled": "true"}
    assert params["allow_promotion_codes"] == "true"
    assert params["invoice_creation"] == {"enabled": "true"}
    assert params["consent_collection"] == {"terms_of_service": "required", "promotions": "auto"}
    assert "right of withdrawal" in params["custom_text"]["terms_of_service_acceptance"]["message"]
    assert params["after_expiration"] == {"recovery": {"enabled": "true"}}
    assert int(params["expires_at"]) - time.time() > 110 * 60


def test_product_image_only_when_the_site_is_public(
    settings, stripe_settings, fake_stripe, make_job
):
    local = create(make_job())
    assert (
        "images"
        not in fake_stripe.sessions[local.session_id]["_params"]["line_items"][0]["price_data"][
            "product_data"
        ]
    )

    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "PUBLIC_BASE_URL": "https://shop.example.com"}
    public = create(make_job())
    product = fake_stripe.sessions[public.session_id]["_params"]["line_items"][0]["price_data"][
        "product_data"
    ]
    assert len(product["images"]) == 1
    assert product["images"][0].startswith("https://shop.example.com/")


@pytest.mark.parametrize(
    "base",
    ["http://shop.example.com", "https://localhost:8000", "https://10.0.0.5", "https://127.0.0.1"],
)
def test_no_product_image_for_private_or_plain_http_sites(settings, base):
    from wagtail_smi.payments.stripe import site_is_public

    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "PUBLIC_BASE_URL": base}
    assert site_is_public() is False


def test_stripe_refusing_the_checkout_raises_a_provider_error(
    settings, stripe_settings, fake_stripe, make_job
):
    settings.WAGTAIL_SMI = {
        **settings.WAGTAIL_SMI,
        "STRIPE": {**settings.WAGTAIL_SMI["STRIPE"], "SECRET_KEY": "sk_test_wrong"},
    }
    with pytest.raises(PaymentProviderError):
        create(make_job())
    assert fake_stripe.sessions == {}


def test_the_library_reads_the_session_back(stripe_settings, fake_stripe, make_job):
    """The server's answers are real Stripe objects to the library (retrieve, line items)."""
    session = create(make_job(factor=8, amount_cents=192))
    client = stripe.StripeClient(
        "sk_test_wagtail_smi", base_addresses={"api": fake_stripe.base_url}, max_network_retries=0
    )
    again = client.v1.checkout.sessions.retrieve(session.session_id)
    items = client.v1.checkout.sessions.line_items.list(session.session_id)
    listed = client.v1.checkout.sessions.list()
    assert again.amount_total == 192
    assert [s.id for s in listed.data] == [session.session_id]
    assert items.data[0].description == "High-resolution image (8x)"
