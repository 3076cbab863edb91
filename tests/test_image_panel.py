"""The "Sales" panel on an image's edit page, through the real admin views: the switch,
the image's own prices (major units in, minor units stored) and its sales figures, and who
may use which."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse
from django.utils import timezone

from tests.html_support import one, select, text
from tests.storefront_support import publish_gallery, sellable
from wagtail_smi import catalog
from wagtail_smi.models import ImageClick, ImageForSale, ImagePrice, SmiSiteSettings

pytestmark = pytest.mark.django_db


def edit_url(image):
    return reverse("wagtailimages:edit", args=(image.pk,))


def sales_url(image):
    return reverse("wagtail_smi_image_sales", args=(image.pk,))


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


@pytest.fixture
def image(make_image, site):
    # The local upscaler costs what the site says: a cent per output megapixel here.
    settings_row = SmiSiteSettings.for_site(site)
    settings_row.cost_per_megapixel = Decimal("0.01")
    settings_row.save()
    return make_image(1000, 1000, title="Lake at dusk")


def rows(response) -> dict[str, dict[str, str]]:
    return {
        row["data-resolution"]: {
            "price": text(row, ".smi-image-sales__price"),
            "cost": text(row, ".smi-image-sales__cost"),
            "margin": text(row, ".smi-image-sales__margin"),
        }
        for row in select(response, "#smi-sales tbody tr")
    }


def test_the_edit_page_shows_the_panel_with_prices_cost_and_margin(admin_client, image):
    response = admin_client.get(edit_url(image))

    assert response.status_code == 200
    panel = one(response, "section#smi-sales")
    form = one(panel, "form")
    assert form["action"] == sales_url(image)
    switch = one(form, "input[name=for_sale][type=checkbox]")
    assert not switch.has_attr("checked")
    # SPEC §3 at 1000 × 1000: 4x sells at 0.50 and 8x at 1.92; 16 and 64 megapixels cost
    # 0.16 and 0.64 to make.
    assert rows(response) == {
        "4x": {"price": "$0.50 cost plus markup", "cost": "$0.16", "margin": "$0.34"},
        "8x": {"price": "$1.92 cost plus markup", "cost": "$0.64", "margin": "$1.28"},
    }
    assert [field["name"] for field in select(form, "input[type=text]")] == [
        "price_4x",
        "price_8x",
    ]
    assert text(response, ".smi-image-sale-summary dd") == "Not for sale"


def test_the_switch_puts_the_image_on_sale_and_takes_it_off(admin_client, image, superuser):
    on = admin_client.post(sales_url(image), {"for_sale": "on", "price_4x": "", "price_8x": ""})

    assert on.status_code == 302 and on["Location"] == edit_url(image) + "#smi-sales"
    assert ImageForSale.objects.get(image=image).created_by == superuser
    page = admin_client.get(edit_url(image))
    assert one(page, "#smi-sales input[name=for_sale]").has_attr("checked")
    assert text(page, ".smi-image-sale-summary dd") == "For sale"

    admin_client.post(sales_url(image), {"price_4x": "", "price_8x": ""})

    assert not ImageForSale.objects.filter(image=image).exists()


def test_prices_are_typed_in_major_units_and_stored_in_cents(admin_client, image, site):
    response = admin_client.post(sales_url(image), {"price_4x": "29", "price_8x": "59.50"})

    assert response.status_code == 302
    assert catalog.image_prices(image) == {"4x": 2900, "8x": 5950}
    quotes, _currency = catalog.image_offer(image, site).quotes()
    assert (quotes["4x"].price_cents, quotes["8x"].price_cents) == (2900, 5950)
    page = admin_client.get(edit_url(image))
    assert rows(page)["4x"] == {
        "price": "$29.00 this image's price",
        "cost": "$0.16",
        "margin": "$28.84",
    }
    assert one(page, "input[name=price_8x]")["value"] == "59.50"

    admin_client.post(sales_url(image), {"price_4x": "", "price_8x": "59.50"})

    assert catalog.image_prices(image) == {"8x": 5950}


def test_prices_follow_the_currency_of_the_site(admin_client, image, site):
    settings_row = SmiSiteSettings.for_site(site)
    settings_row.currency = "jpy"
    settings_row.save()

    refused = admin_client.post(sales_url(image), {"price_4x": "4500.5", "price_8x": ""})
    accepted = admin_client.post(sales_url(image), {"price_4x": "4500", "price_8x": ""})

    assert refused.status_code == 400
    assert "at most 0 decimals" in text(refused, "tr[data-resolution='4x'] .error-message")
    assert accepted.status_code == 302
    assert catalog.image_prices(image) == {"4x": 4500}


@pytest.mark.parametrize("typed", ["abc", "-5", "1.234", "1e3", "NaN"])
def test_a_wrong_price_is_refused_and_nothing_changes(admin_client, image, typed):
    ImagePrice.objects.create(image=image, resolution="8x", price_cents=900)

    response = admin_client.post(
        sales_url(image), {"for_sale": "on", "price_4x": typed, "price_8x": ""}
    )

    assert response.status_code == 400
    assert "such as 29.00" in text(response, "tr[data-resolution='4x'] .error-message")
    assert one(response, "input[name=price_4x]")["value"] == typed
    assert catalog.image_prices(image) == {"8x": 900}
    assert not ImageForSale.objects.exists()


def test_the_panel_shows_the_sales_figures(admin_client, image, make_job):
    paid = timezone.now()
    make_job("completed", image=image, amount_cents=2900, upscale_cost_cents=16, paid_at=paid)
    make_job(
        "refunded",
        image=image,
        amount_cents=5900,
        upscale_cost_cents=64,
        refund_amount_cents=5900,
        paid_at=paid,
    )
    make_job("awaiting_payment", image=image, amount_cents=2900)  # not paid: not counted
    for _ in range(7):
        ImageClick.objects.create(image_ref=image.pk, page_ref=1)

    response = admin_client.get(edit_url(image))

    figures = {
        dd["data-figure"]: dd.get_text(strip=True) for dd in select(response, "#smi-sales dd")
    }
    # Net revenue 29.00 + 59.00 − 59.00 refunded; margin: that less 0.80 of upscaling.
    assert figures == {
        "clicks": "7",
        "orders": "2",
        "revenue-usd": "$29.00",
        "margin-usd": "$28.20",
    }


# --- who may do what -------------------------------------------------------------------------


def test_an_editor_switches_the_sale_but_neither_sets_prices_nor_sees_revenue(editor_client, image):
    page = editor_client.get(edit_url(image))

    assert page.status_code == 200
    panel = one(page, "section#smi-sales")
    assert one(panel, "input[name=for_sale]")
    assert not select(panel, "input[name^=price_]")
    assert "Only users who may change the shop's settings" in text(panel, "form > p.help")
    assert rows(page)["4x"]["price"] == "$0.50 cost plus markup"
    assert not select(panel, "[data-figure]")

    response = editor_client.post(sales_url(image), {"for_sale": "on", "price_4x": "1.00"})

    assert response.status_code == 302
    assert ImageForSale.objects.filter(image=image).exists()
    assert catalog.image_prices(image) == {}  # not theirs to set: ignored


def test_the_price_needs_the_settings_permission(client, editor, image):
    group = Group.objects.create(name="Shop settings")
    group.permissions.add(
        Permission.objects.get(
            content_type__app_label="wagtail_smi", codename="change_smisitesettings"
        )
    )
    editor.groups.add(group)
    client.force_login(editor)

    client.post(sales_url(image), {"price_4x": "12.50", "price_8x": ""})

    assert catalog.image_prices(image) == {"4x": 1250}


def test_a_user_who_may_not_change_the_image_is_refused(viewer_client, image):
    response = viewer_client.post(sales_url(image), {"for_sale": "on", "price_4x": "1"})

    # Wagtail answers a refusal in the admin by sending the user to the dashboard.
    assert response.status_code == 302 and response["Location"] == reverse("wagtailadmin_home")
    assert not ImageForSale.objects.exists() and not ImagePrice.objects.exists()


def test_the_panel_form_only_accepts_posts(admin_client, image):
    assert admin_client.get(sales_url(image)).status_code == 405


def test_an_unknown_image_is_a_404(admin_client):
    assert admin_client.post(reverse("wagtail_smi_image_sales", args=(999999,))).status_code == 404


def test_the_margin_is_worked_out_in_minor_units(admin_client, image):
    admin_client.post(sales_url(image), {"price_4x": "0.1", "price_8x": ""})

    assert catalog.image_prices(image) == {"4x": 10}
    assert rows(admin_client.get(edit_url(image)))["4x"]["margin"] == "\u2212$0.06"


def test_an_image_sold_by_a_block_reads_as_for_sale_with_the_switch_off(
    admin_client, image, root_page
):
    publish_gallery(root_page, [sellable(image)])

    page = admin_client.get(edit_url(image))

    assert text(page, ".smi-image-sale-summary dd") == "For sale"
    assert not one(page, "#smi-sales input[name=for_sale]").has_attr("checked")
    assert "A sellable image block also offers it" in text(page, ".smi-image-sales__switch")
    assert "Shown on 1 live page." in text(page, ".smi-image-sales__switch")
