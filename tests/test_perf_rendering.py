"""What a page of sellable images costs to render, counted (queries, templates, URL work),
never timed: the same queries as a page of plain image blocks, one template per block,
renditions and their URLs worked out once, the purchase URL reversed once per request, and
the storefront settings cached under the offer cache's version."""

import pytest
from django.core.cache import caches
from django.core.files.storage import FileSystemStorage
from django.db import connection
from django.test.utils import CaptureQueriesContext
from wagtail.images.models import Filter

from tests.html_support import parse, select
from tests.storefront_support import plain, publish_gallery, rich_text_with, sellable
from wagtail_smi import links, offer_cache
from wagtail_smi.models import ImageForSale, SmiSiteSettings

pytestmark = pytest.mark.django_db

BLOCK_TEMPLATE = "wagtail_smi/blocks/sellable_image.html"


@pytest.fixture
def gallery(make_image, root_page):
    """24 images, shown once as sellable image blocks and once as plain image blocks."""
    images = [make_image(1200, 800, title=f"Image {i}") for i in range(24)]
    return {
        "images": images,
        "sellable": publish_gallery(root_page, [sellable(i) for i in images], slug="sellable"),
        "plain": publish_gallery(root_page, [plain(i) for i in images], slug="plain"),
    }


def queries(client, url) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def warm_queries(client, url) -> int:
    client.get(url)  # renditions made, settings and rendition caches filled
    return queries(client, url)


def cold_queries(client, url) -> int:
    """Renditions exist in the database, but no cache holds them (a restart, a new worker)."""
    client.get(url)
    caches["default"].clear()
    return queries(client, url)


def test_24_sellable_images_cost_the_same_queries_as_24_plain_image_blocks(client, gallery):
    sellable_warm = warm_queries(client, gallery["sellable"].url)
    plain_warm = warm_queries(client, gallery["plain"].url)

    assert len(select(client.get(gallery["sellable"].url), "a.smi-get-button")) == 24
    assert sellable_warm == plain_warm


def test_a_cold_cache_costs_a_bounded_number_of_queries_whatever_the_number_of_images(
    client, gallery, root_page
):
    few_page = publish_gallery(root_page, [sellable(i) for i in gallery["images"][:2]], slug="few")

    sellable_cold = cold_queries(client, gallery["sellable"].url)
    plain_cold = cold_queries(client, gallery["plain"].url)
    few_cold = cold_queries(client, few_page.url)

    # The plain blocks read each image's rendition on its own; the sellable ones together.
    assert sellable_cold < plain_cold
    assert sellable_cold == few_cold


def test_each_block_renders_one_template(client, gallery):
    client.get(gallery["sellable"].url)

    response = client.get(gallery["sellable"].url)

    names = [template.name for template in response.templates]
    assert names.count(BLOCK_TEMPLATE) == 24
    # Besides the modal's assets, once per page: no include per block.
    assert [name for name in names if name.startswith("wagtail_smi/storefront/")] == [
        "wagtail_smi/storefront/assets.html"
    ]


def test_each_rendition_url_is_built_once_per_render(client, gallery, monkeypatch):
    client.get(gallery["sellable"].url)
    built = []
    storage_url = FileSystemStorage.url

    def counting_url(storage, name):
        if name.startswith("images/"):  # the static files' URLs are not this test's
            built.append(name)
        return storage_url(storage, name)

    monkeypatch.setattr(FileSystemStorage, "url", counting_url)

    doc = parse(client.get(gallery["sellable"].url))

    # Three widths per image (the srcset), the fallback reused for src and data-src.
    assert len(built) == len(set(built)) == 3 * 24
    for figure in select(doc, "figure.smi-image"):
        [img] = select(figure, "img")
        [button] = select(figure, "a.smi-get-button")
        assert button["data-src"] == img["src"]
        assert f"{img['src']} 800w" in img["srcset"]


def test_the_purchase_url_is_reversed_once_per_request(client, gallery, monkeypatch):
    client.get(gallery["sellable"].url)
    reversed_names = []
    reverse = links.reverse

    def counting_reverse(viewname, *args, **kwargs):
        reversed_names.append(viewname)
        return reverse(viewname, *args, **kwargs)

    monkeypatch.setattr(links, "reverse", counting_reverse)

    hrefs = [a["href"] for a in select(client.get(gallery["sellable"].url), "a.smi-get-button")]

    assert reversed_names == ["wagtail_smi:purchase_page"]
    assert hrefs == [
        f"/smi/buy/{image.pk}/?page={gallery['sellable'].pk}" for image in gallery["images"]
    ]


def test_rendition_filters_are_parsed_once_per_process(client, gallery, monkeypatch):
    client.get(gallery["sellable"].url)
    parsed = []
    init = Filter.__init__

    def counting_init(self, *args, **kwargs):
        parsed.append(self)
        init(self, *args, **kwargs)

    monkeypatch.setattr(Filter, "__init__", counting_init)

    client.get(gallery["sellable"].url)

    assert parsed == []


def test_cached_settings_follow_the_offer_cache_version(client, gallery, site):
    url = gallery["sellable"].url
    client.get(url)
    assert queries(client, url) == warm_queries(client, gallery["plain"].url)
    # Another process changes the row: no signal reaches this one, only the shared
    # version it bumps.
    SmiSiteSettings.objects.filter(site=site).update(button_text="Order a print file")
    assert select(client.get(url), "a.smi-get-button")[0].get_text() == "Buy high-res"

    offer_cache.invalidate_now()

    assert select(client.get(url), "a.smi-get-button")[0].get_text() == "Order a print file"


def test_rich_text_and_blocks_render_the_same_button(client, make_image, root_page):
    image = make_image(1200, 800, title="Harbour")
    ImageForSale.objects.create(image=image)
    page = publish_gallery(root_page, [sellable(image, caption="Harbour"), rich_text_with(image)])

    doc = parse(client.get(page.url))

    [from_block] = select(doc, "figure.smi-image a.smi-get-button")
    [from_rich_text] = select(doc, ".smi-rich-image a.smi-get-button")
    assert from_block.attrs == from_rich_text.attrs
    assert from_block.get_text() == from_rich_text.get_text() == "Buy high-res"
