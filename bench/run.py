"""Storefront benchmark (``make bench``): the price endpoint and page rendering.

Absolute times depend on the machine, so each number is reported as a ratio against a
baseline measured in the same run, on the same database:

- ``calculate-all-prices`` against a plain Django JSON view (same middleware stack);
- a page of 24 sellable images against the same page with 24 plain image blocks,
  with Wagtail's rendition cache warm (the usual case) and cold.

Query counts are reported too. Runs on a throwaway SQLite database (or DATABASE_URL).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
os.environ["SMI_RATE_LIMITS"] = "0"

import django  # noqa: E402

django.setup()

from django.core.cache import caches  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402

ROUNDS = int(os.environ.get("SMI_BENCH_ROUNDS", "200"))
PAGE_ROUNDS = int(os.environ.get("SMI_BENCH_PAGE_ROUNDS", "40"))


def timed(fn, rounds: int) -> float:
    """Median seconds per call (after one warm-up call)."""
    fn()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def queries(fn) -> int:
    with CaptureQueriesContext(connection) as captured:
        fn()
    return len(captured)


def build_content():
    import io

    from django.core.files.images import ImageFile
    from wagtail.images import get_image_model
    from wagtail.models import Site

    from tests.conftest import make_image_file
    from tests.storefront_support import plain, publish_gallery, sellable

    Image = get_image_model()
    images = []
    for i in range(24):
        image = Image(title=f"Bench {i}")
        image.file = ImageFile(io.BytesIO(make_image_file(1200, 800)), name=f"bench-{i}.jpg")
        image.save()
        images.append(image)
    root = Site.objects.get(is_default_site=True).root_page
    sellable_page = publish_gallery(root, [sellable(i) for i in images], slug="bench-sellable")
    plain_page = publish_gallery(root, [plain(i) for i in images], slug="bench-plain")
    return images, sellable_page, plain_page


def main() -> int:
    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        with override_settings(ROOT_URLCONF="bench.urls", DEBUG=False):
            return run()
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


def run() -> int:
    images, sellable_page, plain_page = build_content()
    client = Client()
    body = json.dumps({"image_id": images[-1].pk, "page_id": sellable_page.pk})

    def prices():
        response = client.post(
            "/smi/v1/calculate-all-prices", body, content_type="application/json"
        )
        assert response.status_code == 200, response.content

    def baseline_json():
        assert (
            client.post("/bench/plain-json", body, content_type="application/json").status_code
            == 200
        )

    def page(url):
        def get():
            assert client.get(url).status_code == 200

        return get

    def cold(fn):
        def run_cold():
            caches["default"].clear()
            fn()

        return run_cold

    results = []
    t_base, t_prices = timed(baseline_json, ROUNDS), timed(prices, ROUNDS)
    results.append(
        (
            "calculate-all-prices vs plain JSON view",
            t_prices,
            t_base,
            queries(prices),
            queries(baseline_json),
        )
    )
    sell, base = page(sellable_page.url), page(plain_page.url)
    results.append(
        (
            "24 sellable vs 24 plain images (warm)",
            timed(sell, PAGE_ROUNDS),
            timed(base, PAGE_ROUNDS),
            queries(sell),
            queries(base),
        )
    )
    results.append(
        (
            "24 sellable vs 24 plain images (cold cache)",
            timed(cold(sell), PAGE_ROUNDS),
            timed(cold(base), PAGE_ROUNDS),
            queries(cold(sell)),
            queries(cold(base)),
        )
    )

    print(
        f"wagtail-smi storefront benchmark · {connection.vendor} · medians of {ROUNDS}/{PAGE_ROUNDS} runs"
    )
    print(f"{'measure':48} {'ms':>8} {'base ms':>8} {'ratio':>6} {'queries':>8} {'base q':>7}")
    for name, t, b, q, bq in results:
        print(f"{name:48} {t * 1000:8.2f} {b * 1000:8.2f} {t / b:6.2f} {q:8d} {bq:7d}")
    failed = [name for name, _t, _b, q, bq in results[1:] if q > bq]
    if failed:
        print("FAIL: more queries than the baseline:", ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
