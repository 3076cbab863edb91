"""A download link that gives no file answers a page in the site's layout, saying what
happened and what to do, with the statuses of SPEC §4 (404 unknown, 410 expired, revoked
or used up, 425 not ready); a client that asks for JSON gets the JSON error as before."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.html_support import one, select, text
from tests.pages_support import demo_navigation
from tests.storefront_support import publish_gallery
from wagtail_smi import links
from wagtail_smi.models import SmiSiteSettings

pytestmark = pytest.mark.django_db

EXPIRED = {"token_expires_at": timezone.now() - timedelta(minutes=1)}
JSON = {"HTTP_ACCEPT": "application/json"}
BROWSER = {"HTTP_ACCEPT": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


@pytest.fixture
def support(site):
    row = SmiSiteSettings.for_site(site)
    row.support_email = "help@shop.example"
    row.save()
    return row.support_email


@pytest.fixture
def navigation(root_page):
    """A page in the site's navigation, to recognise the demo's layout by."""
    publish_gallery(root_page, [], slug="prints", title="Prints")
    return ["Prints"]


def token_url(token: str) -> str:
    return f"/smi/download/{token}"


CASES = {
    # name: (order fields, status, code, words in the title)
    "expired": (EXPIRED, 410, "expired", "has expired"),
    "refunded": ({"status": "refunded"}, 410, "revoked", "was refunded"),
    "revoked": ({"access_revoked_at": timezone.now()}, 410, "revoked", "no longer available"),
    "limit_reached": (
        {"download_limit": 1, "download_count": 1},
        410,
        "limit_reached",
        "limit reached",
    ),
    "not_ready": ({"status": "needs_attention"}, 425, "not_ready", "not ready yet"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_refused_link_answers_a_page_in_the_site_layout(
    client, delivered, support, navigation, case
):
    fields, status, code, title = CASES[case]
    _job, token = delivered(**fields)

    response = client.get(token_url(token), **BROWSER)

    assert response.status_code == status
    assert response["Content-Type"].startswith("text/html")
    assert demo_navigation(response) == navigation
    assert one(response, ".smi-download-refused")["data-reason"] == code
    assert title in text(response, "h1").lower()
    assert text(response, ".smi-message")  # what happened, in words
    assert support in text(response, ".smi-support")  # and whom to ask
    assert "no-store" in response["Cache-Control"]
    assert response["Referrer-Policy"] == "strict-origin"  # the token stays on the page
    assert response["X-Robots-Tag"] == "noindex"


@pytest.mark.parametrize("case", CASES)
def test_a_client_asking_for_json_gets_the_json_error(client, delivered, case):
    fields, status, code, _title = CASES[case]
    _job, token = delivered(**fields)

    response = client.get(token_url(token), **JSON)

    assert response.status_code == status
    assert response.json()["error"] == code


def test_an_unknown_link_is_a_404_page_that_says_what_to_check(client, delivered, support):
    delivered()

    response = client.get(token_url("A" * 64), **BROWSER)

    assert response.status_code == 404
    assert "does not work" in text(response, "h1")
    assert "copied the whole link" in text(response, ".smi-message")
    assert support in text(response, ".smi-support")  # the site's, with no order to go by
    assert select(response, "form") == []


def test_an_expired_link_offers_a_fresh_one_by_email(client, delivered):
    job, token = delivered(**EXPIRED)

    response = client.get(token_url(token), **BROWSER)

    form = one(response, "form.smi-fresh-link")
    assert form["method"] == "post"
    assert form["action"] == links.token_fresh_link_path(token) == f"{token_url(token)}/fresh-link/"
    assert one(form, "input[type=email][name=email]").has_attr("required")
    assert one(form, "input[name=csrfmiddlewaretoken]")["value"]
    assert "Email me a fresh link" in text(form, "button[type=submit]")
    assert "expired on" in text(response, ".smi-expired-at")


def test_an_expired_link_whose_file_is_gone_says_to_write_instead(client, delivered):
    _job, token = delivered(file_deleted_at=timezone.now(), **EXPIRED)

    response = client.get(token_url(token), **BROWSER)

    assert response.status_code == 410
    assert select(response, "form") == []
    assert "no longer kept" in text(response, ".smi-message")


@pytest.mark.parametrize("case", ["refunded", "revoked", "limit_reached", "not_ready"])
def test_only_an_expired_link_offers_a_fresh_one(client, delivered, case):
    fields = {**CASES[case][0], **EXPIRED}
    _job, token = delivered(**fields)

    response = client.get(token_url(token), **BROWSER)

    assert select(response, "form.smi-fresh-link") == []


def test_the_order_page_button_refused_links_back_to_the_order(client, delivered):
    job, _token = delivered(status="needs_attention")
    url = links.order_download_url(job).removeprefix("http://testserver")

    response = client.get(url, **BROWSER)

    assert response.status_code == 425
    assert one(response, ".smi-download-refused a[href*='/smi/orders/']")["href"] == (
        links.order_path(job)
    )


def test_the_order_page_button_of_an_expired_order_offers_the_order_form(client, delivered):
    job, _token = delivered(**EXPIRED)
    url = links.order_download_url(job).removeprefix("http://testserver")

    response = client.get(url, **BROWSER)

    assert response.status_code == 410
    assert one(response, "form.smi-fresh-link")["action"] == links.fresh_link_path(job)


def test_too_many_downloads_answer_a_429_page_or_json(client, delivered, settings):
    settings.WAGTAIL_SMI = {
        **settings.WAGTAIL_SMI,
        "RATE_LIMITS_ENABLED": True,
        "RATE_LIMITS": {"download": (1, 60)},
    }
    _job, token = delivered(**EXPIRED)
    client.get(token_url(token), **BROWSER)

    page = client.get(token_url(token), **BROWSER)
    data = client.get(token_url(token), **JSON)

    assert page.status_code == data.status_code == 429
    assert page["Retry-After"] and "Too many requests" in text(page, "h1")
    assert data.json()["error"] == "rate_limited"
