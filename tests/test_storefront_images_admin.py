"""The image library: bulk put on / take off sale, the filter and badges, rich-text buttons."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db.models import Q
from django.urls import reverse
from wagtail.models import Collection, GroupCollectionPermission

from demo_site.home.models import GalleryPage
from tests.html_support import one, parse, select, text
from tests.storefront_support import plain, publish_gallery, rich_text_with, sellable
from wagtail_smi import catalog
from wagtail_smi.models import ImageForSale, SaleListing

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    user = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")
    client.force_login(user)
    return client, user


def listed_images(response) -> dict[str, bool]:
    """Each image in an admin listing (grid or list layout): its title, and whether it
    carries the "For sale" badge."""
    doc = parse(response)
    rows = select(doc, "a.image-choice figure") or select(doc, "td.title-with-filename")
    return {
        text(row.select_one("figcaption") or row.select_one(".title-wrapper a")): bool(
            row.select(".smi-sale-badge")
        )
        for row in rows
    }


def bulk_url(action, images):
    ids = "&".join(f"id={image.pk}" for image in images)
    return (
        reverse("wagtail_bulk_action", args=("wagtailimages", "image", action))
        + f"?{ids}&next=/admin/images/"
    )


def test_putting_images_on_sale_in_bulk(admin_client, make_image):
    client, user = admin_client
    first, second, other = (
        make_image(title="One"),
        make_image(title="Two"),
        make_image(title="Three"),
    )
    ImageForSale.objects.create(image=second)  # already on sale: stays, no error

    confirm = client.get(bulk_url("smi_put_on_sale", [first, second]))
    response = client.post(bulk_url("smi_put_on_sale", [first, second]))

    assert confirm.status_code == 200
    assert "Put these images on sale" in text(confirm, ".nice-padding > p")
    assert [item.get_text() for item in select(confirm, ".nice-padding > ul li a")] == [
        "One",
        "Two",
    ]
    assert response.status_code == 302
    assert set(ImageForSale.objects.values_list("image_id", flat=True)) == {first.pk, second.pk}
    assert ImageForSale.objects.get(image=first).created_by == user
    assert not ImageForSale.objects.filter(image=other).exists()


def test_taking_images_off_sale_in_bulk(admin_client, make_image):
    client, _user = admin_client
    first, second = make_image(title="One"), make_image(title="Two")
    ImageForSale.objects.create(image=first)
    ImageForSale.objects.create(image=second)

    client.post(bulk_url("smi_take_off_sale", [first]))

    assert list(ImageForSale.objects.values_list("image_id", flat=True)) == [second.pk]


def test_an_editor_without_change_permission_cannot_put_images_on_sale(client, make_image):
    image = make_image()
    group = Group.objects.create(name="Viewers")
    group.permissions.add(Permission.objects.get(codename="access_admin"))
    GroupCollectionPermission.objects.create(
        group=group,
        collection=Collection.get_first_root_node(),
        permission=Permission.objects.get(codename="choose_image"),
    )
    user = get_user_model().objects.create_user("viewer", password="pw")
    user.groups.add(group)
    client.force_login(user)

    client.post(bulk_url("smi_put_on_sale", [image]))

    assert not ImageForSale.objects.exists()


def test_the_listing_filters_and_badges_images_on_sale(admin_client, make_image):
    client, _user = admin_client
    on_sale = make_image(title="Seller")
    make_image(title="Keeper")
    ImageForSale.objects.create(image=on_sale)

    everything = client.get("/admin/images/")
    only = client.get("/admin/images/?smi_for_sale=1")
    listed = client.get("/admin/images/?smi_for_sale=1&layout=list")

    assert listed_images(everything) == {"Seller": True, "Keeper": False}
    assert len(select(everything, ".smi-sale-badge")) == 1
    choices = [option["value"] for option in select(everything, "select[name=smi_for_sale] option")]
    assert choices == ["", "1", "0"]  # the filter is offered
    assert listed_images(only) == {"Seller": True}
    assert listed_images(listed) == {"Seller": True}


def test_the_chooser_can_show_only_images_on_sale_with_their_badge(admin_client, make_image):
    client, _user = admin_client
    on_sale = make_image(title="Seller")
    make_image(title="Keeper")
    ImageForSale.objects.create(image=on_sale)

    response = client.get("/admin/images/chooser/results/?smi_for_sale=1&layout=list")

    assert response.status_code == 200
    assert listed_images(response) == {"Seller": True}


def test_a_rich_text_image_on_sale_gets_the_button(client, make_image, root_page):
    image = make_image(900, 600, title="Lighthouse")
    ImageForSale.objects.create(image=image)
    page = publish_gallery(root_page, [rich_text_with(image)])

    doc = parse(client.get(page.url))

    one(doc, "img.richtext-image.full-width")  # Wagtail's format
    button = one(doc, "a.smi-get-button")
    assert (button["href"], button["data-width"]) == (f"/smi/buy/{image.pk}/?page={page.pk}", "900")
    assert catalog.sale_offer(image.pk, page.pk) is not None
    assert [s["src"] for s in select(doc, "script[src]") if s["src"].endswith("/modal.js")]


def test_a_rich_text_image_not_on_sale_renders_as_usual(client, make_image, root_page):
    image = make_image(900, 600)
    page = publish_gallery(root_page, [rich_text_with(image)])

    doc = parse(client.get(page.url))

    one(doc, "img.richtext-image.full-width")
    assert select(doc, ".smi-get-button") == []


# --- one meaning of "for sale" -------------------------------------------------------------


def sold_through_listings() -> set[int]:
    """Every image a buyer can buy somewhere, as the catalogue answers it: a listing on a
    live page that a for-sale block made, or of an image on sale site-wide."""
    return set(
        SaleListing.objects.filter(page__live=True)
        .filter(Q(via_block=True) | Q(image__smi_for_sale__isnull=False))
        .values_list("image_id", flat=True)
    )


@pytest.fixture
def library(make_image, root_page):
    """Images sold every way there is, and shown every way that does not sell them."""
    images = {
        name: make_image(900, 600, title=name)
        for name in (
            "Block",
            "Rich text on sale",
            "Plain block on sale",
            "Rich text only",
            "Plain block only",
            "Block not for sale",
            "Draft block",
            "Unused",
        )
    }
    ImageForSale.objects.create(image=images["Rich text on sale"])
    ImageForSale.objects.create(image=images["Plain block on sale"])
    publish_gallery(
        root_page,
        [
            sellable(images["Block"]),
            rich_text_with(images["Rich text on sale"]),
            plain(images["Plain block on sale"]),
            rich_text_with(images["Rich text only"]),
            plain(images["Plain block only"]),
            sellable(images["Block not for sale"], for_sale=False),
        ],
    )
    draft = publish_gallery(root_page, [sellable(images["Draft block"])], slug="draft")
    draft.unpublish()
    return images


SOLD = {"Block", "Rich text on sale", "Plain block on sale"}


def test_the_badge_and_the_filter_count_every_way_an_image_is_sold(admin_client, library):
    client, _user = admin_client
    sold_ids = {image.pk for name, image in library.items() if name in SOLD}
    assert sold_through_listings() == sold_ids  # what the catalogue sells

    grid = listed_images(client.get("/admin/images/"))
    table = listed_images(client.get("/admin/images/?layout=list"))
    only = listed_images(client.get("/admin/images/?smi_for_sale=1"))
    others = listed_images(client.get("/admin/images/?smi_for_sale=0"))

    assert {title for title, badged in grid.items() if badged} == SOLD
    assert table == grid
    assert set(only) == SOLD and all(only.values())
    assert set(others) == set(library) - SOLD and not any(others.values())


def test_the_badge_follows_publishing(admin_client, library, root_page):
    client, _user = admin_client
    GalleryPage.objects.get(slug="gallery-test").unpublish()

    badged = {t for t, b in listed_images(client.get("/admin/images/")).items() if b}

    # Still on sale site-wide (the editor's switch), though on no live page for now.
    assert badged == {"Rich text on sale", "Plain block on sale"}
    assert sold_through_listings() == set()


@pytest.mark.parametrize("layout", ["grid", "list"])
def test_the_chooser_shows_the_badge_in_both_layouts(admin_client, library, layout):
    client, _user = admin_client

    everything = client.get(f"/admin/images/chooser/results/?layout={layout}")
    only = client.get(f"/admin/images/chooser/results/?layout={layout}&smi_for_sale=1")

    assert {title for title, badged in chooser_images(everything).items() if badged} == SOLD
    assert chooser_images(only) == dict.fromkeys(SOLD, True)


def chooser_images(response) -> dict[str, bool]:
    """The chooser's results, grid (``a.image-choice``) or list layout."""
    doc = parse(response)
    found = {}
    for choice in select(doc, "a.image-choice"):
        title = choice.select_one("h3") or choice.select_one(".title-wrapper a")
        found[text(title) if title else choice["title"]] = bool(choice.select(".smi-sale-badge"))
    if found:
        return found
    return listed_images(response)
