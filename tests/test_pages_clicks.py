"""Honest clicks: the modal's POST counts, a no-JavaScript purchase page counts once per
client and image within half an hour, known crawlers never count, and the button's link
asks crawlers not to follow it."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.html_support import one
from tests.storefront_support import publish_gallery, rich_text_with, sellable
from wagtail_smi import links
from wagtail_smi.models import ImageClick, ImageForSale
from wagtail_smi.operations.clicks import is_crawler

pytestmark = pytest.mark.django_db

GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
BINGBOT = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
SAFARI_PHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


def visitor(user_agent: str = FIREFOX, address: str = "198.51.100.20") -> Client:
    return Client(HTTP_USER_AGENT=user_agent, REMOTE_ADDR=address)


def buy_page(offer) -> str:
    image, page = offer
    return links.purchase_path(image.pk, page.pk)


def test_three_googlebot_visits_of_the_purchase_page_are_no_click(offer):
    bot = visitor(GOOGLEBOT)

    answers = [bot.get(buy_page(offer)) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 200]  # the page itself is served
    assert ImageClick.objects.count() == 0


@pytest.mark.parametrize("user_agent", [GOOGLEBOT, BINGBOT, "curl/8.5.0"])
def test_a_crawlers_track_click_is_answered_but_not_counted(offer, user_agent):
    image, page = offer

    response = visitor(user_agent).post(
        "/smi/v1/track-click",
        {"image_id": image.pk, "page_id": page.pk},
        content_type="application/json",
    )

    assert response.status_code == 200 and response.json() == {"tracked": True}
    assert ImageClick.objects.count() == 0


def test_the_no_js_page_counts_one_click_per_client_and_image(offer, make_image, root_page):
    first, second = visitor(address="198.51.100.1"), visitor(SAFARI_PHONE, "198.51.100.2")
    for _ in range(3):  # reloads, back button
        first.get(buy_page(offer))
    second.get(buy_page(offer))
    other_image = make_image(800, 600, title="Harbour")
    other_page = publish_gallery(root_page, [sellable(other_image)], slug="harbour")
    first.get(links.purchase_path(other_image.pk, other_page.pk))

    clicks = sorted(ImageClick.objects.values_list("image_ref", flat=True))
    image, _page = offer
    assert clicks == sorted([image.pk, image.pk, other_image.pk])


def test_posting_the_no_js_form_is_not_another_click(offer):
    person = visitor()
    person.get(buy_page(offer))

    person.post(buy_page(offer), {"resolution": "nope"})

    assert ImageClick.objects.count() == 1


def test_every_modal_click_counts(offer):
    image, page = offer
    person = visitor()

    for _ in range(2):
        person.post(
            "/smi/v1/track-click",
            {"image_id": image.pk, "page_id": page.pk},
            content_type="application/json",
        )

    assert ImageClick.objects.count() == 2


def test_the_buttons_link_is_nofollow(client, make_image, root_page, site):
    image = make_image(1000, 800, title="Dunes")
    ImageForSale.objects.create(image=image)
    page = publish_gallery(root_page, [sellable(image), rich_text_with(image)], slug="dunes")

    response = client.get(page.url)

    buttons = one(response, "body").select("a.smi-get-button")
    assert len(buttons) == 2  # the block's and the rich text image's
    assert {tuple(a["rel"]) for a in buttons} == {("nofollow",)}


@pytest.mark.parametrize(
    "user_agent, crawler",
    [
        (GOOGLEBOT, True),
        (BINGBOT, True),
        ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", True),
        ("Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", True),
        ("python-requests/2.32.3", True),
        (FIREFOX, False),
        (SAFARI_PHONE, False),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/126.0.0.0 Safari/537.36",
            False,
        ),
        ("", False),
    ],
)
def test_crawlers_are_known_by_a_maintained_list(user_agent, crawler):
    assert is_crawler(user_agent) is crawler
