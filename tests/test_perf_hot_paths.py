"""Hot paths without database work (issue 15): the price endpoint and click tracking.

Warm, neither touches the database; every change that shapes an offer is seen on the next
request; buffered clicks reach the table, and the reports, exactly.
"""

import json
import threading
from datetime import UTC, datetime

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from wagtail.models import Collection

from tests.storefront_support import publish_gallery, rich_text_with, sellable
from wagtail_smi import analytics, catalog, click_buffer, offer_cache, operations
from wagtail_smi.models import ImageClick, ImageForSale, SmiSiteSettings
from wagtail_smi.operations.clicks import flush_clicks
from wagtail_smi.operations.maintenance import sweep

pytestmark = pytest.mark.django_db

PRICES = "/smi/v1/calculate-all-prices"
CLICK = "/smi/v1/track-click"


def post_json(client, url, data):
    return client.post(url, json.dumps(data), content_type="application/json")


def prices(client, image, page):
    return post_json(client, PRICES, {"image_id": image.pk, "page_id": page.pk})


def click(client, image, page):
    return post_json(client, CLICK, {"image_id": image.pk, "page_id": page.pk})


@pytest.fixture(autouse=True)
def configured_site(site):
    """A site whose settings were saved once (the first request would create them, and
    that change makes the cached offers stale once)."""
    return SmiSiteSettings.for_site(site)


@pytest.fixture
def buffered():
    with override_settings(WAGTAIL_SMI={**settings.WAGTAIL_SMI, "BUFFER_CLICKS": True}):
        yield


# --- prices -------------------------------------------------------------------------------


def test_a_warm_price_request_makes_no_database_query(client, offer):
    image, page = offer
    cold = prices(client, image, page)

    with CaptureQueriesContext(connection) as queries:
        warm = prices(client, image, page)

    assert len(queries) == 0, [q["sql"] for q in queries]
    assert warm.status_code == cold.status_code == 200
    assert warm.json() == cold.json()
    assert warm["Cache-Control"] == cold["Cache-Control"]


def test_a_warm_refusal_makes_no_database_query_either(client, make_image, root_page):
    image = make_image(60, 40)  # too small to sell: a 422 that says why
    page = publish_gallery(root_page, [sellable(image)])
    cold = prices(client, image, page)
    assert cold.status_code == 422

    with CaptureQueriesContext(connection) as queries:
        warm = prices(client, image, page)

    assert len(queries) == 0, [q["sql"] for q in queries]
    assert warm.status_code == 422 and warm.json() == cold.json()


# One test per kind of change: the warm answer is never served after it.


def test_republishing_a_page_without_the_image_ends_its_offer(client, offer):
    image, page = offer
    assert prices(client, image, page).status_code == 200

    page.body = []
    page.save_revision().publish()

    assert prices(client, image, page).status_code == 404


def test_unpublishing_a_page_ends_its_offer(client, offer):
    image, page = offer
    assert prices(client, image, page).status_code == 200

    page.unpublish()

    assert prices(client, image, page).status_code == 404


def test_deleting_a_page_ends_its_offer(client, offer):
    image, page = offer
    assert prices(client, image, page).status_code == 200

    page.delete()

    assert prices(client, image, page).status_code == 404


def test_saved_site_settings_are_seen_at_once(client, offer):
    image, page = offer
    assert prices(client, image, page).json()["pricing"]["8x"]["available"] is True
    settings_row = SmiSiteSettings.for_site(page.get_site())
    settings_row.max_output_megapixels = 10
    settings_row.save()

    assert prices(client, image, page).json()["pricing"]["8x"]["available"] is False

    settings_row.enabled = False
    settings_row.save()

    assert prices(client, image, page).status_code == 404


def test_a_changed_image_is_priced_anew(client, offer):
    image, page = offer
    assert prices(client, image, page).json()["image"]["title"] == "Aurora"

    image.title = "Borealis"
    image.save()

    assert prices(client, image, page).json()["image"]["title"] == "Borealis"


def test_a_deleted_image_is_no_longer_offered(client, offer):
    image, page = offer
    assert prices(client, image, page).status_code == 200

    image_id = image.pk
    image.delete()

    answer = post_json(client, PRICES, {"image_id": image_id, "page_id": page.pk})
    assert answer.status_code in (400, 404) and "error" in answer.json()


def test_an_images_own_price_is_seen_at_once(client, offer):
    image, page = offer
    before = prices(client, image, page).json()["pricing"]["8x"]["price_cents"]

    catalog.set_image_prices(image, {"8x": before + 1234})

    assert prices(client, image, page).json()["pricing"]["8x"]["price_cents"] == before + 1234

    catalog.set_image_prices(image, {"8x": None})

    assert prices(client, image, page).json()["pricing"]["8x"]["price_cents"] == before


def test_putting_an_image_on_sale_site_wide_is_seen_at_once(client, make_image, root_page):
    image = make_image(1000, 800)
    page = publish_gallery(root_page, [rich_text_with(image)])
    assert prices(client, image, page).status_code == 404

    on_sale = ImageForSale.objects.create(image=image)

    assert prices(client, image, page).status_code == 200

    on_sale.delete()

    assert prices(client, image, page).status_code == 404


def test_putting_images_on_sale_in_bulk_is_seen_at_once(
    client, admin_client, make_image, root_page
):
    image = make_image(1000, 800)
    page = publish_gallery(root_page, [rich_text_with(image)])
    assert prices(client, image, page).status_code == 404  # cached: not for sale
    url = reverse("wagtail_bulk_action", args=("wagtailimages", "image", "smi_put_on_sale"))

    admin_client.post(f"{url}?id={image.pk}&next=/admin/images/")  # bulk_create: no signal

    assert ImageForSale.objects.filter(image=image).exists()
    assert prices(client, image, page).status_code == 200


def test_the_csrf_route_answers_other_methods_with_the_json_405(client):
    for method in ("post", "put", "delete", "trace"):
        response = getattr(client, method)("/smi/v1/csrf")
        assert response.status_code == 405, method
        assert response["Allow"] == "GET, HEAD"
        assert response.json()["error"] == "method_not_allowed"
    assert client.get("/smi/v1/csrf").status_code == 200


def collection_priced(site, collection, cents):
    settings_row = SmiSiteSettings.for_site(site)
    settings_row.collection_prices = [
        ("collection_price", {"collection": str(collection.pk), "resolution": "8x", "price": cents})
    ]
    settings_row.save()


def test_a_collection_moved_under_a_priced_one_is_priced_anew(client, offer):
    image, page = offer
    root = Collection.get_first_root_node()
    priced = root.add_child(name="Priced")
    unpriced = root.add_child(name="Unpriced")
    image.collection = unpriced
    image.save()
    collection_priced(page.get_site(), priced, 4550)
    assert prices(client, image, page).json()["pricing"]["8x"]["price_cents"] != 4550

    unpriced.move(priced, pos="sorted-child")  # as the admin does: move, then save
    unpriced.refresh_from_db()
    unpriced.save()

    assert prices(client, image, page).json()["pricing"]["8x"]["price_cents"] == 4550


def test_overriding_the_package_settings_makes_cached_offers_stale(offer):
    before = offer_cache.version()

    with override_settings(WAGTAIL_SMI={**settings.WAGTAIL_SMI, "ALLOW_PRIVATE_URLS": True}):
        during = offer_cache.version()

    assert before < during < offer_cache.version()


# --- clicks -------------------------------------------------------------------------------


def test_a_warm_click_makes_no_database_query(client, offer, buffered):
    image, page = offer
    assert click(client, image, page).json() == {"tracked": True}

    with CaptureQueriesContext(connection) as queries:
        answer = click(client, image, page)

    assert len(queries) == 0, [q["sql"] for q in queries]
    assert answer.json() == {"tracked": True}
    assert ImageClick.objects.count() == 0  # buffered, not written


def test_a_flush_makes_the_table_exact(client, offer, buffered, make_image, root_page):
    image, page = offer
    other = make_image(800, 600)
    other_page = publish_gallery(root_page, [sellable(other)], slug="other")
    for _ in range(3):
        click(client, image, page)
    click(client, other, other_page)

    assert flush_clicks() == 4
    assert flush_clicks() == 0  # nothing twice

    site_id = page.get_site().pk
    rows = sorted(ImageClick.objects.values_list("image_ref", "page_ref", "site_ref"))
    assert rows == sorted([(image.pk, page.pk, site_id)] * 3 + [(other.pk, other_page.pk, site_id)])


def test_flushed_clicks_keep_the_minute_they_were_made(offer, buffered):
    image, page = offer
    made = datetime(2026, 3, 1, 23, 59, 30, tzinfo=UTC)

    click_buffer.add(image.pk, page.pk, None, now=made)
    flush_clicks()

    assert ImageClick.objects.get().created_at == made.replace(second=0)


def test_concurrent_clicks_are_counted_exactly(offer, buffered):
    image, page = offer
    ref = catalog.selling_offer_ref(image.pk, page.pk)
    threads, per_thread = 8, 50
    start = threading.Barrier(threads)

    def clicking():
        start.wait()
        for _ in range(per_thread):
            operations.record_click(ref)

    workers = [threading.Thread(target=clicking) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert flush_clicks() == threads * per_thread
    assert ImageClick.objects.filter(image_ref=image.pk).count() == threads * per_thread


def test_a_failed_flush_leaves_the_clicks_buffered(offer, buffered):
    image, page = offer
    click_buffer.add(image.pk, page.pk, None)
    click_buffer.add(-1, page.pk, None)  # refused by the table: the whole flush fails

    with pytest.raises(IntegrityError):
        flush_clicks()

    assert ImageClick.objects.count() == 0
    bad = [key for key in cache.get(click_buffer.STATE)["pending"] if ":-1:" in key]
    cache.delete_many(bad)  # the bad counter goes; the good one is still there
    assert flush_clicks() == 1
    assert ImageClick.objects.get().image_ref == image.pk


def test_the_sweeper_writes_buffered_clicks(client, offer, buffered):
    image, page = offer
    click(client, image, page)

    sweep()

    assert ImageClick.objects.count() == 1


def test_reports_count_buffered_clicks_as_written_ones(client, offer, buffered):
    image, page = offer
    for _ in range(5):
        click(client, image, page)
    period = analytics.resolve_period("today")

    buffered_funnel = analytics.funnel(period).clicks
    buffered_items = {row.ref: row.clicks for row in analytics.items(period).rows}

    with override_settings(WAGTAIL_SMI={**settings.WAGTAIL_SMI, "BUFFER_CLICKS": False}):
        for _ in range(5):
            click(client, image, page)
    assert buffered_funnel == 5 and buffered_items == {image.pk: 5}
    assert analytics.funnel(period).clicks == 10
    assert {row.ref: row.clicks for row in analytics.items(period).rows} == {image.pk: 10}


def test_without_a_cache_that_counts_clicks_are_written_at_once(offer, buffered):
    image, page = offer
    dummy = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}

    with override_settings(CACHES=dummy):
        assert operations.record_click(catalog.sale_offer(image.pk, page.pk))

    assert ImageClick.objects.get().image_ref == image.pk
