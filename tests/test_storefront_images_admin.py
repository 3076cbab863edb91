"""The image library: bulk put on / take off sale, the filter and badges, rich-text buttons."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.urls import reverse
from wagtail.models import Collection, GroupCollectionPermission

from tests.storefront_support import publish_gallery, rich_text_with
from wagtail_smi import catalog
from wagtail_smi.models import ImageForSale

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    user = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")
    client.force_login(user)
    return client, user


def bulk_url(action, images):
    ids = "&".join(f"id={image.pk}" for image in images)
    return reverse("wagtail_bulk_action", args=("wagtailimages", "image", action)) + f"?{ids}&next=/admin/images/"


def test_putting_images_on_sale_in_bulk(admin_client, make_image):
    client, user = admin_client
    first, second, other = make_image(title="One"), make_image(title="Two"), make_image(title="Three")
    ImageForSale.objects.create(image=second)  # already on sale: stays, no error

    confirm = client.get(bulk_url("smi_put_on_sale", [first, second]))
    response = client.post(bulk_url("smi_put_on_sale", [first, second]))

    assert confirm.status_code == 200 and "Put these images on sale" in confirm.content.decode()
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
        group=group, collection=Collection.get_first_root_node(),
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

    everything = client.get("/admin/images/").content.decode()
    only = client.get("/admin/images/?smi_for_sale=1").content.decode()
    listed = client.get("/admin/images/?smi_for_sale=1&layout=list").content.decode()

    assert "Seller" in everything and "Keeper" in everything
    assert everything.count("smi-sale-badge") == 1
    assert 'name="smi_for_sale"' in everything  # the filter is offered
    assert "Seller" in only and "Keeper" not in only
    assert "smi-sale-badge" in listed and "Keeper" not in listed


def test_the_chooser_can_show_only_images_on_sale_with_their_badge(admin_client, make_image):
    client, _user = admin_client
    on_sale = make_image(title="Seller")
    make_image(title="Keeper")
    ImageForSale.objects.create(image=on_sale)

    response = client.get("/admin/images/chooser/results/?smi_for_sale=1&layout=list")

    html = response.content.decode()
    assert response.status_code == 200
    assert "Seller" in html and "Keeper" not in html
    assert "smi-sale-badge" in html


def test_a_rich_text_image_on_sale_gets_the_button(client, make_image, root_page):
    image = make_image(900, 600, title="Lighthouse")
    ImageForSale.objects.create(image=image)
    page = publish_gallery(root_page, [rich_text_with(image)])

    html = client.get(page.url).content.decode()

    assert re.search(r'<img[^>]+class="richtext-image full-width"', html)  # Wagtail's format
    assert f'href="/smi/buy/{image.pk}/?page={page.pk}"' in html
    assert 'data-width="900"' in html
    assert catalog.sale_offer(image.pk, page.pk) is not None
    assert "modal.js" in html


def test_a_rich_text_image_not_on_sale_renders_as_usual(client, make_image, root_page):
    image = make_image(900, 600)
    page = publish_gallery(root_page, [rich_text_with(image)])

    html = client.get(page.url).content.decode()

    assert re.search(r'<img[^>]+class="richtext-image full-width"', html)
    assert "smi-get-button" not in html
