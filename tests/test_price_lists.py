"""Price lists (SPEC §3): strategies, prices per collection and per image, licences, amounts
typed in major units, and one quote everywhere: the dialog's prices, the amount the
checkout charges on (fake) Stripe and the settings preview agree, under each strategy and
with each kind of override."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import Client, override_settings
from django.urls import reverse
from wagtail.models import Collection, GroupCollectionPermission

from tests.price_list_support import (
    collection_price,
    licence,
    resolution,
    save_settings,
    settings_edit_url,
    settings_form_data,
)
from tests.storefront_support import publish_gallery, sellable
from wagtail_smi import catalog
from wagtail_smi.models import PurchaseJob, SmiSiteSettings

pytestmark = pytest.mark.django_db

PRICES = "/smi/v1/calculate-all-prices"
CHECKOUT = "/smi/v1/create-checkout"
PREVIEW = reverse("wagtail_smi_price_preview")

# Personal (the default, ×1), Commercial (×3), and Editorial (×1.5 plus 20.00, 8x only).
LICENCES = [
    licence("personal", "Personal use", default=True),
    licence("commercial", "Commercial use", multiplier="3"),
    licence("editorial", "Editorial use", multiplier="1.5", add_on="20.00", resolutions="8x"),
]


def fixed_resolutions(price_4x="29", price_8x="59"):
    return [
        resolution("4x", 4, "Standard", price=price_4x),
        resolution("8x", 8, "Premium", price=price_8x),
    ]


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


@pytest.fixture
def landscapes(wagtail_baseline):
    return Collection.get_first_root_node().add_child(name="Landscapes")


@pytest.fixture
def lake(make_image, root_page, landscapes):
    """A 1000 × 1000 image in the Landscapes collection, for sale on a live page."""
    image = make_image(1000, 1000, title="Lake at dusk")
    image.collection = landscapes
    image.save()
    return image, publish_gallery(root_page, [sellable(image)])


def post_json(client, url, data):
    return client.post(url, json.dumps(data), content_type="application/json")


# --- the same price in the dialog, at checkout and in the preview ---------------------------

# Each case: the settings form (as typed, in major units), the image's own prices (minor
# units, as the image's edit page stores them), and the expected price of every
# (resolution, licence) the site sells, in cents, for the 1000 × 1000 image.
CASES = {
    "cost plus (the seed's formula)": (
        {},
        {},
        {
            ("4x", "personal"): 50,
            ("4x", "commercial"): 150,
            ("8x", "personal"): 192,
            ("8x", "commercial"): 576,
            ("8x", "editorial"): 2288,  # 192 × 1.5 + 2000
        },
    ),
    "cost plus, with a collection price": (
        {"collection_prices": [("8x", "45.50")]},
        {},
        {
            ("4x", "personal"): 50,
            ("4x", "commercial"): 150,
            ("8x", "personal"): 4550,
            ("8x", "commercial"): 13650,
            ("8x", "editorial"): 8825,
        },
    ),
    "fixed prices": (
        {"pricing_strategy": "fixed", "resolutions": fixed_resolutions()},
        {},
        {
            ("4x", "personal"): 2900,
            ("4x", "commercial"): 8700,
            ("8x", "personal"): 5900,
            ("8x", "commercial"): 17700,
            ("8x", "editorial"): 10850,
        },
    ),
    "fixed prices, a collection's and an image's own": (
        {
            "pricing_strategy": "fixed",
            "resolutions": fixed_resolutions(),
            "collection_prices": [("4x", "19"), ("8x", "45.50")],
        },
        {"8x": 9900},
        {
            ("4x", "personal"): 1900,  # the collection's
            ("4x", "commercial"): 5700,
            ("8x", "personal"): 9900,  # the image's own, over the collection's
            ("8x", "commercial"): 29700,
            ("8x", "editorial"): 16850,
        },
    ),
}


def form_for(case_form: dict, collection) -> dict:
    form = dict(case_form)
    form["collection_prices"] = [
        collection_price(collection, key, price) for key, price in form.get("collection_prices", ())
    ]
    return {"licences": LICENCES, **form}


def dialog_prices(buyer, image, page) -> dict:
    data = post_json(buyer, PRICES, {"image_id": image.pk, "page_id": page.pk}).json()
    return {
        (key, licence_key): cents
        for key, entry in data["pricing"].items()
        for licence_key, cents in entry["licence_prices"].items()
    }


def checkout_charges(buyer, image, page, fake_stripe, choices) -> dict:
    """What the Checkout Session on (fake) Stripe charges for each choice."""
    charged = {}
    for key, licence_key in choices:
        answer = post_json(
            buyer,
            CHECKOUT,
            {"image_id": image.pk, "page_id": page.pk, "resolution": key, "licence": licence_key},
        ).json()
        job = PurchaseJob.objects.get(pk=answer["job_id"])
        session = fake_stripe.sessions[job.checkout_session_id]
        assert answer["amount_cents"] == job.amount_cents == session["amount_total"]
        assert job.licence_key == licence_key
        charged[(key, licence_key)] = session["amount_total"]
    return charged


def preview_prices(admin_client, form: dict, image) -> dict:
    data = admin_client.post(
        PREVIEW, {**settings_form_data(**form), "preview_image": str(image.pk)}
    ).json()
    sample = next(s for s in data["samples"] if s["image"] and s["image"]["id"] == image.pk)
    return {
        (q["key"], entry["key"]): entry["price_cents"]
        for q in sample["quotes"]
        for entry in q["licences"]
    }


@pytest.mark.parametrize("case", CASES)
def test_dialog_checkout_and_preview_quote_the_same_price(
    case, admin_client, site, lake, landscapes, fake_stripe, stripe_settings
):
    case_form, own_prices, expected = CASES[case]
    image, page = lake
    form = form_for(case_form, landscapes)
    assert save_settings(admin_client, site, **form).status_code == 302
    catalog.set_image_prices(image, own_prices)
    buyer = Client()

    assert dialog_prices(buyer, image, page) == expected
    assert preview_prices(admin_client, form, image) == expected
    assert checkout_charges(buyer, image, page, fake_stripe, expected) == expected


def test_the_default_licence_price_is_the_resolutions_price(site, lake, landscapes, admin_client):
    image, page = lake
    form = form_for(CASES["fixed prices"][0], landscapes)
    save_settings(admin_client, site, **form)

    data = post_json(Client(), PRICES, {"image_id": image.pk, "page_id": page.pk}).json()

    assert {key: entry["price_cents"] for key, entry in data["pricing"].items()} == {
        "4x": 2900,
        "8x": 5900,
    }
    assert [item["key"] for item in data["licences"] if item["default"]] == ["personal"]


def test_a_licence_not_sold_with_a_resolution_is_refused_at_checkout(
    site, lake, landscapes, admin_client
):
    image, page = lake
    save_settings(admin_client, site, **form_for({}, landscapes))

    response = post_json(
        Client(),
        CHECKOUT,
        {"image_id": image.pk, "page_id": page.pk, "resolution": "4x", "licence": "editorial"},
    )

    assert response.status_code == 400
    assert response.json()["error"] == "licence_unavailable"
    assert not PurchaseJob.objects.exists()


# --- overrides: image > collection > site ---------------------------------------------------


def test_the_nearest_collection_with_a_price_wins(site, make_image, landscapes, admin_client):
    lakes = landscapes.add_child(name="Lakes")
    image = make_image(1000, 1000)
    image.collection = lakes
    image.save()
    save_settings(
        admin_client,
        site,
        collection_prices=[
            collection_price(landscapes, "4x", "10"),
            collection_price(landscapes, "8x", "20"),
            collection_price(lakes, "8x", "30"),
        ],
    )
    settings_row = SmiSiteSettings.for_site(site)

    quotes, _currency = catalog.image_offer(image, site).quotes()

    assert {key: (q.price_cents, q.price_source) for key, q in quotes.items()} == {
        "4x": (1000, "collection"),  # inherited from Landscapes
        "8x": (3000, "collection"),  # Lakes' own, nearer than Landscapes'
    }
    assert catalog.collection_prices(image, settings_row) == {"4x": 1000, "8x": 3000}


def test_clearing_an_image_price_falls_back_to_its_collection_then_the_site(
    site, lake, landscapes, admin_client
):
    image, _page = lake
    save_settings(
        admin_client, site, collection_prices=[collection_price(landscapes, "8x", "45.50")]
    )
    catalog.set_image_prices(image, {"8x": 9900, "4x": 1500})

    def prices():
        quotes, _currency = catalog.image_offer(image, site).quotes()
        return {key: (q.price_cents, q.price_source) for key, q in quotes.items()}

    assert prices() == {"4x": (1500, "image"), "8x": (9900, "image")}
    assert catalog.set_image_prices(image, {"8x": None}) == {"4x": 1500}
    assert prices() == {"4x": (1500, "image"), "8x": (4550, "collection")}
    catalog.set_image_prices(image, {"4x": None})
    assert prices() == {"4x": (50, "cost_plus"), "8x": (4550, "collection")}


# --- amounts in major units, through the real settings form ---------------------------------


def test_amounts_are_typed_in_major_units_and_stored_in_minor_units(admin_client, site, landscapes):
    response = save_settings(
        admin_client,
        site,
        pricing_strategy="fixed",
        minimum_price_cents="29",
        resolutions=fixed_resolutions("29", "59.5"),
        licences=[
            licence("personal", "Personal use", default=True),
            licence("commercial", "Commercial use", add_on="20.00"),
        ],
        collection_prices=[collection_price(landscapes, "8x", "45.50")],
    )
    assert response.status_code == 302

    saved = SmiSiteSettings.for_site(site)
    assert saved.minimum_price_cents == 2900
    assert [(o.key, o.price_cents) for o in saved.resolution_options()] == [
        ("4x", 2900),
        ("8x", 5950),
    ]
    assert [(item.key, item.add_on_cents) for item in saved.licence_options()] == [
        ("personal", 0),
        ("commercial", 2000),
    ]
    assert saved.collection_price_map() == {landscapes.pk: {"8x": 4550}}

    # Read back in major units on the edit page (the form field and the blocks' state).
    page = admin_client.get(settings_edit_url(site)).content.decode()
    assert 'name="minimum_price_cents" value="29.00"' in page
    for shown in ("29.00", "59.50", "20.00", "45.50"):
        assert f"&quot;{shown}&quot;" in page or f'"{shown}"' in page


def test_a_zero_decimal_currency_takes_whole_amounts(admin_client, site):
    response = save_settings(
        admin_client,
        site,
        currency="jpy",
        pricing_strategy="fixed",
        minimum_price_cents="80",
        resolutions=fixed_resolutions("3000", "6000"),
    )
    assert response.status_code == 302

    saved = SmiSiteSettings.for_site(site)
    assert saved.minimum_price_cents == 80
    assert [o.price_cents for o in saved.resolution_options()] == [3000, 6000]


@pytest.mark.parametrize(
    "form,field",
    [
        ({"minimum_price_cents": "0.505"}, "minimum_price_cents"),
        ({"minimum_price_cents": "-1"}, "minimum_price_cents"),
        ({"currency": "jpy", "minimum_price_cents": "0.5"}, "minimum_price_cents"),
        ({"resolutions": fixed_resolutions("29.999", "59")}, "resolutions"),
        ({"pricing_strategy": "fixed", "resolutions": fixed_resolutions("", "59")}, "resolutions"),
    ],
)
def test_amounts_the_currency_cannot_hold_are_refused(admin_client, site, form, field):
    response = save_settings(admin_client, site, **form)

    assert response.status_code == 200
    assert response.context["form"].errors.get(field)
    assert SmiSiteSettings.for_site(site).minimum_price_cents == 50


# --- the seller's margin ---------------------------------------------------------------------


def preview_rows(admin_client, **form) -> dict:
    data = admin_client.post(PREVIEW, settings_form_data(**form)).json()
    sample = next(s for s in data["samples"] if (s["width"], s["height"]) == (1000, 1000))
    return data, {
        q["key"]: (q["price_cents"], q["cost_cents"], q["margin_cents"]) for q in sample["quotes"]
    }


def test_the_preview_counts_a_local_upscalers_cost_per_megapixel(admin_client):
    # 1000 × 1000 at 4x is 16 MP, at 8x 64 MP; at 0.02 a megapixel: 0.32 and 1.28.
    data, rows = preview_rows(admin_client, cost_per_megapixel="0.02")

    assert rows == {"4x": (50, 32, 18), "8x": (192, 128, 64)}
    assert data["cost_basis"] == "megapixels"
    assert "0.02 USD per output megapixel" in data["cost_note"]


def test_a_self_hosted_upscaler_costs_nothing_unless_told(admin_client):
    _data, rows = preview_rows(admin_client)

    assert rows == {"4x": (50, 0, 50), "8x": (192, 0, 192)}


@override_settings(
    WAGTAIL_SMI={
        "UPSCALER": {"CLASS": "upsampler", "OPTIONS": {"API_KEY": "test"}},
        "ALLOW_DUMMY_PAYMENTS": True,
    }
)
def test_the_preview_counts_upsamplers_credits(admin_client):
    # 4x: 16 MP → 4 credits; 8x: 64 MP → 16 credits; at 0.05 a credit: 0.20 and 0.80. The
    # price (cost plus, 200 % markup) follows the same credits: 0.60 and 2.40.
    data, rows = preview_rows(admin_client, cost_per_credit="0.05", cost_per_megapixel="9")

    assert rows == {"4x": (60, 20, 40), "8x": (240, 80, 160)}
    assert data["cost_basis"] == "credits"


def test_a_fixed_price_below_the_cost_shows_a_loss(admin_client):
    _data, rows = preview_rows(
        admin_client,
        pricing_strategy="fixed",
        cost_per_megapixel="0.05",
        resolutions=fixed_resolutions("1", "2"),
    )

    # 8x: 64 MP × 0.05 = 3.20 to make, sold for 2.00.
    assert rows["8x"] == (200, 320, -120)


def test_the_preview_prices_an_image_with_its_collection_and_own_prices_unsaved(
    admin_client, site, lake, landscapes
):
    image, _page = lake
    catalog.set_image_prices(image, {"4x": 1234})
    form = settings_form_data(collection_prices=[collection_price(landscapes, "8x", "45.50")])

    data = admin_client.post(PREVIEW, {**form, "preview_image": str(image.pk)}).json()

    first = data["samples"][0]
    assert first["image"] == {"id": image.pk, "title": "Lake at dusk", "collection": "Landscapes"}
    assert [(q["key"], q["price_cents"], q["price_source"]) for q in first["quotes"]] == [
        ("4x", 1234, "image"),
        ("8x", 4550, "collection"),
    ]
    # Nothing was saved: the site still has no collection prices.
    assert SmiSiteSettings.for_site(site).collection_price_map() == {}


@pytest.mark.parametrize("value", ["999999", "abc", "-1"])
def test_the_preview_names_an_unknown_image(admin_client, value):
    response = admin_client.post(PREVIEW, {**settings_form_data(), "preview_image": value})

    assert response.status_code == 400
    assert response.json()["field"] == "preview_image"


def test_the_settings_page_offers_the_images_for_sale_to_the_preview(
    admin_client, site, lake, make_image
):
    image, _page = lake
    unlisted = make_image(100, 100, title="Not for sale")

    html = admin_client.get(settings_edit_url(site)).content.decode()

    assert f'<option value="{image.pk}">' in html and "Lake at dusk" in html
    assert f'<option value="{unlisted.pk}">' not in html


@pytest.fixture
def pricing_editor_client(client, landscapes):
    """May change the shop's settings, and use images of another collection only."""
    group = Group.objects.create(name="Pricing editors")
    group.permissions.add(
        Permission.objects.get(content_type__app_label="wagtailadmin", codename="access_admin"),
        Permission.objects.get(
            content_type__app_label="wagtail_smi", codename="change_smisitesettings"
        ),
    )
    elsewhere = Collection.get_first_root_node().add_child(name="Portraits")
    GroupCollectionPermission.objects.create(
        group=group,
        collection=elsewhere,
        permission=Permission.objects.get(
            content_type__app_label="wagtailimages", codename="choose_image"
        ),
    )
    user = get_user_model().objects.create_user("priya", password="pw-priya")
    user.groups.add(group)
    client.force_login(user)
    return client


def test_the_preview_offers_only_images_the_user_may_see(pricing_editor_client, site, lake):
    image, _page = lake  # in Landscapes, where this user has no image permission

    html = pricing_editor_client.get(settings_edit_url(site)).content.decode()
    response = pricing_editor_client.post(
        PREVIEW, {**settings_form_data(), "preview_image": str(image.pk)}
    )

    assert "data-smi-price-preview-image" in html
    assert f'<option value="{image.pk}">' not in html
    assert response.status_code == 400
    assert response.json()["field"] == "preview_image"
