"""Pricing settings: validation in the admin form and the live price preview."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.price_list_support import resolution, settings_edit_url, settings_form_data
from wagtail_smi.models import SmiSiteSettings

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


def post_settings(admin_client, site, **overrides):
    return admin_client.post(settings_edit_url(site), settings_form_data(**overrides))


def test_valid_settings_are_saved(admin_client, site):
    response = post_settings(admin_client, site, currency="EUR", markup_percent="150")
    assert response.status_code == 302
    saved = SmiSiteSettings.for_site(site)
    assert (saved.currency, str(saved.markup_percent)) == ("eur", "150.00")


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("markup_percent", "-1", "zero or more"),
        ("currency", "xyz", "not a currency Stripe accepts"),
        ("currency", "us", "not a currency Stripe accepts"),
    ],
)
def test_invalid_values_are_refused(admin_client, site, field, value, message):
    response = post_settings(admin_client, site, **{field: value})
    assert response.status_code == 200
    assert response.context["form"].errors.get(field)
    assert message in " ".join(response.context["form"].errors[field])
    assert SmiSiteSettings.for_site(site).currency == "usd"


def test_at_least_one_resolution_must_be_offered(admin_client, site):
    response = post_settings(
        admin_client,
        site,
        resolutions=([resolution(enabled=False), resolution("8x", 8, "P", enabled=False)]),
    )
    assert response.status_code == 200
    assert "Offer at least one resolution." in str(response.context["form"].errors["resolutions"])


def test_resolution_keys_must_be_unique(admin_client, site):
    response = post_settings(
        admin_client, site, resolutions=[resolution("4x", 4), resolution("4x", 8)]
    )
    assert response.status_code == 200
    assert "used twice" in str(response.context["form"].errors["resolutions"])


@pytest.mark.parametrize("key", ['4"x', "../8x", "8 x", "Big"])
def test_resolution_keys_are_plain_slugs(admin_client, site, key):
    # Keys end up in file names and download headers: only lowercase slugs are accepted.
    response = post_settings(
        admin_client, site, resolutions=[resolution(key, 4), resolution("8x", 8)]
    )
    assert response.status_code == 200
    assert response.context["form"].errors["resolutions"]
    assert "lowercase letters" in response.content.decode()
    assert [o.key for o in SmiSiteSettings.for_site(site).resolution_options()] == ["4x", "8x"]


def test_settings_page_has_the_price_preview(admin_client, site):
    html = admin_client.get(settings_edit_url(site)).content.decode()
    assert "data-smi-price-preview" in html
    assert reverse("wagtail_smi_price_preview") in html


def preview(client, params):
    return client.get(reverse("wagtail_smi_price_preview"), params)


def prices(response) -> dict:
    return {
        (f"{s['width']}x{s['height']}", q["key"]): q["price_display"]
        for s in response.json()["samples"]
        for q in s["quotes"]
    }


def test_preview_with_defaults_matches_the_spec_examples(admin_client):
    response = preview(admin_client, {})
    assert response.status_code == 200
    assert prices(response) == {
        ("1000x1000", "4x"): "$0.50",
        ("1000x1000", "8x"): "$1.92",
        ("2000x1500", "4x"): "$1.44",
        ("2000x1500", "8x"): "$5.76",
    }


def test_preview_uses_unsaved_form_values(admin_client):
    response = preview(
        admin_client,
        {
            "currency": "eur",
            "markup_percent": "100",
            "minimum_price_cents": "0",
            "resolution": ["2x:2:1:Small", "8x:8:0:Off"],
        },
    )
    # 1000×1000 at 2x: 4 MP → 1 credit → 0.04 → ×2 = 0.08 €.
    assert prices(response) == {("1000x1000", "2x"): "€0.08", ("2000x1500", "2x"): "€0.24"}


@pytest.mark.parametrize(
    "params,field",
    [
        ({"markup_percent": "-5"}, "markup_percent"),
        ({"markup_percent": "abc"}, "markup_percent"),
        ({"currency": "zzz"}, "currency"),
        ({"minimum_price_cents": "1.5"}, "minimum_price_cents"),
        ({"resolution": "4x:x:1"}, "resolution"),
    ],
)
def test_preview_names_the_bad_field(admin_client, params, field):
    response = preview(admin_client, params)
    assert response.status_code == 400
    assert response.json()["field"] == field


def test_preview_is_refused_to_users_who_cannot_edit_settings(editor_client):
    response = preview(editor_client, {})
    assert response.status_code == 403
    assert "samples" not in response.json()
