"""Customer pages in the site's layout: they extend the base template the site names in
``WAGTAIL_SMI["BASE_TEMPLATE"]`` (the demo's own ``base.html``) and still work with the
package's minimal default; without JavaScript an order in progress refreshes itself; a
cancelled checkout says nothing was charged; settled problems show no full progress bar;
dates are in the site's time zone and the language's format."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from django.test import override_settings
from django.utils import timezone, translation

from tests.html_support import one, parse, select, text
from tests.pages_support import demo_navigation
from tests.storefront_support import PROVIDER, RecordingProvider, publish_gallery
from wagtail_smi import links
from wagtail_smi.conf import DEFAULTS
from wagtail_smi.emails import format_expiry
from wagtail_smi.models import PurchaseJob
from wagtail_smi.templatetags.smi_tags import smi_datetime

pytestmark = pytest.mark.django_db

PACKAGE_BASE = DEFAULTS["BASE_TEMPLATE"]


@pytest.fixture
def navigation(root_page):
    publish_gallery(root_page, [], slug="prints", title="Prints")
    return ["Gallery test", "Prints"]


@pytest.fixture
def package_layout(settings):
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "BASE_TEMPLATE": PACKAGE_BASE}


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def customer_pages(client, offer, make_job, delivered):
    """One of each customer page: purchase, order, refused download, dummy checkout."""
    image, page = offer
    job = make_job("processing", image=image, page=page)
    _done, token = delivered(token_expires_at=timezone.now() - timedelta(hours=1))
    dummy = make_job("awaiting_payment", image=image, page=page, payment_provider="dummy")
    return {
        "purchase": client.get(links.purchase_path(image.pk, page.pk)),
        "order": client.get(links.order_path(job)),
        "download": client.get(f"/smi/download/{token}"),
        "dummy checkout": client.get(local(links.dummy_checkout_url(dummy))),
    }


def test_every_customer_page_is_in_the_sites_layout(client, offer, make_job, delivered, navigation):
    pages = customer_pages(client, offer, make_job, delivered)

    for name, response in pages.items():
        assert response.status_code in {200, 410}, name
        assert demo_navigation(response) == navigation, name
        doc = parse(response)
        assert len(select(doc, "main")) == 1, name  # ours inside the site's <main>
        assert select(doc, "head link[href$='/wagtail_smi/storefront/modal.css']"), name
        assert "wagtail-smi demo" in text(doc, "title"), name


def test_the_rate_limit_page_is_in_the_sites_layout_too(client, offer, navigation, settings):
    settings.WAGTAIL_SMI = {
        **settings.WAGTAIL_SMI,
        "RATE_LIMITS_ENABLED": True,
        "RATE_LIMITS": {"purchase_page": (0, 60)},
    }
    image, page = offer

    response = client.get(links.purchase_path(image.pk, page.pk))

    assert response.status_code == 429
    assert demo_navigation(response) == navigation
    assert "Too many requests" in text(response, "h1")


def test_the_package_default_layout_still_works(client, offer, make_job, delivered, package_layout):
    pages = customer_pages(client, offer, make_job, delivered)

    for name, response in pages.items():
        assert response.status_code in {200, 410}, name
        assert demo_navigation(response) == [], name
        doc = parse(response)
        assert one(doc, "html")["lang"] == "en-us"
        assert one(doc, "meta[name=robots]")["content"] == "noindex"
        assert select(doc, "head link[href$='/wagtail_smi/storefront/modal.css']"), name


# --- without JavaScript, an order in progress refreshes itself ------------------------------


def refresh(response):
    """The seconds of the <noscript> refresh in <head>, or None."""
    doc = parse(response)
    metas = select(doc, "head noscript meta[http-equiv=refresh]")
    assert len(metas) <= 1 and not select(doc, "body meta[http-equiv=refresh]")
    return int(metas[0]["content"]) if metas else None


@pytest.mark.parametrize("status", ["awaiting_payment", "paid", "processing", "failed"])
def test_an_order_in_progress_refreshes_itself_without_javascript(client, make_job, status):
    job = make_job(status)

    response = client.get(links.order_path(job))

    assert refresh(response) == 10
    assert "Refresh" not in response  # a header would reload script users' pages too
    assert one(response, ".smi-order")["data-final"] == "0"  # order.js polls instead


@pytest.mark.parametrize("status", ["completed", "refunded", "abandoned", "needs_attention"])
def test_a_settled_order_does_not_refresh(client, make_job, status):
    job = make_job(status, token_expires_at=timezone.now() + timedelta(hours=1))

    assert refresh(client.get(links.order_path(job))) is None


def test_the_refresh_interval_is_a_setting(client, make_job, settings):
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "NO_SCRIPT_REFRESH_SECONDS": 3}

    assert refresh(client.get(links.order_path(make_job("paid")))) == 3


# --- a cancelled checkout ------------------------------------------------------------------


@override_settings(WAGTAIL_SMI={"PAYMENT_BACKEND": PROVIDER})
def test_the_providers_cancel_url_is_the_order_page_saying_nothing_was_charged(client, offer):
    RecordingProvider.calls.clear()
    image, page = offer
    client.post(links.purchase_path(image.pk, page.pk), {"resolution": "4x"})
    [call] = RecordingProvider.calls
    job = PurchaseJob.objects.get(pk=call["job_id"])
    assert call["cancel_url"] == links.checkout_cancelled_url(job)

    response = client.get(links.checkout_cancelled_path(job))

    notice = one(response, ".smi-cancelled[role=status]")
    assert "nothing was charged" in text(notice, ".smi-message")
    assert [(a.get_text(), a["href"]) for a in select(notice, "a")] == [
        ("Back to the image", job.cancel_url),
        ("Return to the payment page", job.checkout_url),
    ]
    assert one(response, ".smi-order")["data-final"] == "1"  # nothing to poll for
    assert refresh(response) is None
    assert select(response, ".smi-progress") == []


def test_the_cancel_notice_is_not_shown_once_the_order_is_paid(client, make_job):
    job = make_job("paid")

    response = client.get(links.checkout_cancelled_path(job))

    assert select(response, ".smi-cancelled") == []
    assert one(response, "li[data-stage=paid]")["aria-current"] == "step"


def test_an_abandoned_checkout_cancelled_offers_no_payment_page(client, make_job):
    job = make_job("abandoned", checkout_url="https://pay.example/c/1", cancel_url="/gallery/")

    notice = one(client.get(links.checkout_cancelled_path(job)), ".smi-cancelled")

    assert [a.get_text() for a in select(notice, "a")] == ["Back to the image"]


# --- progress --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["refunded", "failed", "needs_attention", "abandoned"])
def test_a_refunded_or_failed_order_shows_no_full_progress_bar(client, make_job, status):
    job = make_job(status)

    response = client.get(links.order_path(job))
    data = client.get(links.job_status_path(job)).json()

    assert one(response, "progress.smi-progress").has_attr("hidden")
    assert data["progress"] < 100


def test_an_order_in_progress_shows_its_progress_bar(client, make_job):
    response = client.get(links.order_path(make_job("processing")))

    bar = one(response, "progress.smi-progress")
    assert not bar.has_attr("hidden") and 0 < int(bar["value"]) < 100


# --- dates -------------------------------------------------------------------------------------

EXPIRY = datetime(2026, 12, 1, 14, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    "language, zone, shown",
    [
        ("en-us", "Europe/Paris", "Dec. 1, 2026, 3:30 p.m. CET"),
        ("fr", "Europe/Paris", "1 décembre 2026 15:30 CET"),
        ("de", "America/New_York", "1. Dezember 2026 09:30 EST"),
    ],
)
def test_dates_are_in_the_sites_time_zone_and_the_languages_format(settings, language, zone, shown):
    settings.TIME_ZONE = zone

    with translation.override(language):
        assert smi_datetime(EXPIRY) == shown
        assert str(format_expiry(EXPIRY)) == shown  # the emails' dates


def test_an_emails_date_is_written_in_the_language_it_is_rendered_in(settings):
    settings.TIME_ZONE = "UTC"
    with translation.override("en-us"):
        expiry = format_expiry(EXPIRY)  # made while another language is active

    with translation.override("de"):
        assert str(expiry) == "1. Dezember 2026 14:30 UTC"


def test_the_order_page_shows_the_expiry_in_the_site_format(client, delivered, settings):
    settings.TIME_ZONE = "Europe/Paris"
    expiry = timezone.now() + timedelta(hours=5)
    job, _token = delivered(token_expires_at=expiry)

    response = client.get(links.order_path(job))

    with translation.override("en-us"):
        expected = str(format_expiry(expiry))
    assert text(response, ".smi-expiry") == f"The link works until {expected}."
    assert expected.endswith((" CET", " CEST"))
