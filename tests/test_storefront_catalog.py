"""What is for sale where: listings follow publish, unpublish, delete, and the site-wide flag."""

import pytest

from tests.storefront_support import plain, publish_gallery, republish, rich_text_with, sellable
from wagtail_smi import catalog
from wagtail_smi.models import ImageForSale, SaleListing

pytestmark = pytest.mark.django_db


def test_a_sellable_block_puts_its_image_on_sale_on_that_page(make_image, root_page):
    image = make_image(1000, 1000)
    page = publish_gallery(root_page, [sellable(image)])

    offer = catalog.sale_offer(image.pk, page.pk)

    assert offer is not None
    assert offer.image.pk == image.pk and offer.page.pk == page.pk
    assert offer.site.is_default_site
    assert offer.resolutions == ()


def test_a_block_restriction_limits_the_offered_resolutions(make_image, root_page):
    image = make_image(800, 600)
    page = publish_gallery(root_page, [sellable(image, resolutions=["8x"])])

    assert catalog.sale_offer(image.pk, page.pk).resolutions == ("8x",)


def test_an_image_on_another_page_is_not_for_sale_here(make_image, root_page):
    image, other = make_image(), make_image(title="Other")
    page = publish_gallery(root_page, [sellable(image)])
    publish_gallery(root_page, [sellable(other)], slug="elsewhere")

    assert catalog.sale_offer(other.pk, page.pk) is None


def test_a_block_with_for_sale_off_offers_nothing(make_image, root_page):
    image = make_image()
    page = publish_gallery(root_page, [sellable(image, for_sale=False)])

    assert catalog.sale_offer(image.pk, page.pk) is None


def test_plain_and_rich_text_images_sell_only_with_the_site_wide_flag(make_image, root_page):
    in_block, in_text = make_image(title="Block"), make_image(title="Text")
    page = publish_gallery(root_page, [plain(in_block), rich_text_with(in_text)])
    assert SaleListing.objects.filter(page=page, via_block=False).count() == 2
    assert catalog.sale_offer(in_block.pk, page.pk) is None
    assert catalog.sale_offer(in_text.pk, page.pk) is None

    ImageForSale.objects.create(image=in_text)

    assert catalog.sale_offer(in_text.pk, page.pk) is not None
    assert catalog.sale_offer(in_block.pk, page.pk) is None


def test_unpublishing_takes_the_page_images_off_sale(make_image, root_page):
    image = make_image()
    page = publish_gallery(root_page, [sellable(image)])

    page.unpublish()

    assert catalog.sale_offer(image.pk, page.pk) is None
    assert not SaleListing.objects.filter(page=page).exists()


def test_republishing_without_the_image_removes_it_from_sale(make_image, root_page):
    kept, dropped = make_image(title="Kept"), make_image(title="Dropped")
    page = publish_gallery(root_page, [sellable(kept), sellable(dropped)])

    republish(page, [sellable(kept)])

    assert catalog.sale_offer(kept.pk, page.pk) is not None
    assert catalog.sale_offer(dropped.pk, page.pk) is None


def test_a_draft_does_not_change_what_is_on_sale(make_image, root_page):
    published, drafted = make_image(title="Live"), make_image(title="Draft")
    page = publish_gallery(root_page, [sellable(published)])

    page.body = [sellable(drafted)]
    page.save_revision()  # not published

    assert catalog.sale_offer(published.pk, page.pk) is not None
    assert catalog.sale_offer(drafted.pk, page.pk) is None


def test_deleting_the_page_deletes_its_listings(make_image, root_page):
    image = make_image()
    page = publish_gallery(root_page, [sellable(image)])
    page_id = page.pk

    page.delete()

    assert not SaleListing.objects.filter(page_id=page_id).exists()


def test_rebuilding_restores_listings_made_before_the_signals(make_image, root_page):
    image = make_image()
    page = publish_gallery(root_page, [sellable(image)])
    SaleListing.objects.all().delete()

    catalog.rebuild_all_listings()

    assert catalog.sale_offer(image.pk, page.pk) is not None


def test_the_same_image_in_two_blocks_unites_their_restrictions(make_image, root_page):
    image = make_image()
    page = publish_gallery(
        root_page, [sellable(image, resolutions=["4x"]), sellable(image, resolutions=["8x"])]
    )

    assert set(catalog.sale_offer(image.pk, page.pk).resolutions) == {"4x", "8x"}


def test_a_sale_offer_is_two_queries_whatever_the_page_size(
    make_image, root_page, django_assert_num_queries
):
    images = [make_image(title=f"Image {i}") for i in range(30)]
    small = publish_gallery(root_page, [sellable(images[0])], slug="small")
    big = publish_gallery(root_page, [sellable(i) for i in images], slug="big")
    catalog.sale_offer(images[0].pk, small.pk)  # warm: site root paths, settings row

    with django_assert_num_queries(2):
        assert catalog.sale_offer(images[0].pk, small.pk) is not None
    with django_assert_num_queries(2):
        assert catalog.sale_offer(images[-1].pk, big.pk) is not None


def test_rebuild_command_restores_lost_listings(root_page, make_image):
    from io import StringIO

    from django.core.management import call_command

    image = make_image(800, 600, title="Rebuilt")
    page = publish_gallery(root_page, [sellable(image)])
    SaleListing.objects.all().delete()
    assert catalog.sale_offer(image.pk, page.pk) is None

    out = StringIO()
    call_command("smi_rebuild_listings", stdout=out)

    assert catalog.sale_offer(image.pk, page.pk) is not None
    assert "listings" in out.getvalue()
