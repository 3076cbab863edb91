"""How sellable images render: the button's markup, renditions only, assets once, queries."""

import json
import re

import pytest
from django.core.cache import caches
from django.db import connection
from django.template import engines
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from tests.html_support import one, parse, select
from tests.storefront_support import plain, publish_gallery, sellable
from wagtail_smi.models import SmiSiteSettings

pytestmark = pytest.mark.django_db


def buttons(html) -> list:
    return select(html, "a.smi-get-button")


def modal_scripts(html) -> list:
    return [
        s
        for s in select(html, "script[src]")
        if s["src"].endswith("/wagtail_smi/storefront/modal.js")
    ]


def test_a_sellable_image_renders_a_rendition_and_the_button(client, make_image, root_page):
    image = make_image(1000, 800, title="Aurora")
    page = publish_gallery(root_page, [sellable(image, caption="Northern lights")])

    response = client.get(page.url)

    figure = one(response, "figure.smi-image")
    [button] = buttons(figure)
    assert button["href"] == f"/smi/buy/{image.pk}/?page={page.pk}"
    assert (button["data-image-id"], button["data-page-id"]) == (str(image.pk), str(page.pk))
    assert (button["data-width"], button["data-height"]) == ("1000", "800")
    assert re.fullmatch(r"/media/images/[^\"]+\.width-800\.jpg", button["data-src"])
    assert button.get_text() == "Buy high-res"
    assert one(figure, "figcaption").get_text() == "Northern lights"
    widths = {candidate.split()[-1] for candidate in one(figure, "img")["srcset"].split(",")}
    assert {"400w", "800w"} <= widths
    assert "original_images" not in response.content.decode()  # anywhere, attributes included


def test_the_button_text_comes_from_the_site_setting(client, make_image, root_page, site):
    image = make_image()
    page = publish_gallery(root_page, [sellable(image)])
    settings_row = SmiSiteSettings.for_site(site)
    settings_row.button_text = "Get it in print quality"
    settings_row.save()

    [button] = buttons(client.get(page.url))

    assert button.get_text() == "Get it in print quality"


def test_no_button_when_selling_is_switched_off(client, make_image, root_page, site):
    image = make_image()
    page = publish_gallery(root_page, [sellable(image)])
    settings_row = SmiSiteSettings.for_site(site)
    settings_row.enabled = False
    settings_row.save()

    doc = parse(client.get(page.url))

    assert buttons(doc) == []
    assert modal_scripts(doc) == [] and select(doc, "#smi-config") == []
    assert ".width-800." in one(doc, "figure.smi-image img")["src"]  # the image itself still shows


def test_no_button_on_a_block_not_for_sale(client, make_image, root_page):
    image = make_image()
    page = publish_gallery(root_page, [sellable(image, for_sale=False)])

    assert buttons(client.get(page.url)) == []


def test_the_modal_assets_are_included_once_per_page(client, make_image, root_page):
    images = [make_image(title=f"Image {i}") for i in range(3)]
    page = publish_gallery(root_page, [sellable(i) for i in images])

    doc = parse(client.get(page.url))

    assert len(buttons(doc)) == 3
    assert len(modal_scripts(doc)) == 1
    config = json.loads(one(doc, "script#smi-config[type='application/json']").string)
    assert config["endpoints"]["prices"] == "/smi/v1/calculate-all-prices"
    assert config["strings"]["rateLimited"] == "Too many requests, try again in a minute."


def _render_queries(client, url) -> int:
    client.get(url)  # renditions created, caches warm
    with CaptureQueriesContext(connection) as warm:
        assert client.get(url).status_code == 200
    caches["default"].clear()  # rendition cache cold, renditions in the database
    with CaptureQueriesContext(connection) as cold:
        assert client.get(url).status_code == 200
    return len(warm), len(cold)


def test_24_sellable_images_cost_no_more_queries_than_24_plain_image_blocks(
    client, make_image, root_page
):
    images = [make_image(640, 480, title=f"Image {i}") for i in range(24)]
    sellable_page = publish_gallery(root_page, [sellable(i) for i in images], slug="sellable")
    plain_page = publish_gallery(root_page, [plain(i) for i in images], slug="plain")

    sellable_warm, sellable_cold = _render_queries(client, sellable_page.url)
    plain_warm, plain_cold = _render_queries(client, plain_page.url)

    assert sellable_warm <= plain_warm
    assert sellable_cold <= plain_cold
    # And the count does not grow with the number of images.
    few_page = publish_gallery(root_page, [sellable(i) for i in images[:2]], slug="few")
    few_warm, few_cold = _render_queries(client, few_page.url)
    assert sellable_warm == few_warm


def test_the_template_tag_renders_the_same_button(make_image, root_page):
    image = make_image(1200, 900)
    page = publish_gallery(root_page, [sellable(image)])
    request = RequestFactory().get("/")
    template = engines["django"].from_string(
        "{% load smi_tags %}{% smi_assets %}{% sellable_image image page caption='Hi' %}"
        "{% sellable_image image page %}"
    )

    html = template.render({"image": image, "page": page, "request": request})

    assert len(buttons(html)) == 2
    assert buttons(html)[0]["href"] == f"/smi/buy/{image.pk}/?page={page.pk}"
    assert len(modal_scripts(html)) == 1
    assert [
        figcaption.get_text() for figcaption in select(html, "figure.smi-image figcaption")
    ] == ["Hi"]
