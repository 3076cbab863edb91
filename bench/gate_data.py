"""Content and query counts for the gating bench (run by ``bench/run.py``, not on its own).

Migrates the throwaway database named by ``DATABASE_URL``, publishes the pages and the
delivered order the bench requests, counts the queries of the price request and of the
pages in-process (counts, not timings), and writes what the load phase needs as JSON to
the file given as the only argument.
"""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.gate_settings")

import django  # noqa: E402

django.setup()

from django.core.cache import caches  # noqa: E402
from django.core.files.base import ContentFile  # noqa: E402
from django.core.files.images import ImageFile  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402
from wagtail.images import get_image_model  # noqa: E402
from wagtail.models import Site  # noqa: E402

from tests.conftest import make_image_file  # noqa: E402
from tests.storefront_support import plain, publish_gallery, sellable  # noqa: E402
from wagtail_smi import storage  # noqa: E402
from wagtail_smi.models import PurchaseJob  # noqa: E402
from wagtail_smi.operations import delivery as delivery_ops  # noqa: E402

DOWNLOAD_BYTES = 20 * 1024 * 1024


def make_images(count: int, width: int, height: int, prefix: str) -> list:
    Image = get_image_model()
    images = []
    for i in range(count):
        image = Image(title=f"{prefix} {i}")
        data = make_image_file(width, height)
        image.file = ImageFile(io.BytesIO(data), name=f"{prefix.lower()}-{i}.jpg")
        image.save()
        images.append(image)
    return images


def count_queries(fn) -> int:
    with CaptureQueriesContext(connection) as captured:
        fn()
    return len(captured)


def delivered_order(image, page) -> tuple[str, str]:
    """A completed order with a 20 MB file, unlimited downloads: (token, file path)."""
    job = PurchaseJob.objects.create(
        site=Site.objects.get(is_default_site=True),
        image=image,
        image_ref=image.pk,
        image_title=image.title,
        page=page,
        page_ref=page.pk,
        page_title=page.title,
        resolution="4x",
        factor=4,
        original_width=image.width,
        original_height=image.height,
        output_width=image.width * 4,
        output_height=image.height * 4,
        amount_cents=50,
        currency="usd",
        status="processing",
        paid_at=timezone.now(),
        email="bench@example.com",
    )
    payload = os.urandom(DOWNLOAD_BYTES)
    name = storage.private_storage().save(f"wagtail_smi/{job.pk}/bench.png", ContentFile(payload))
    token, token_values = delivery_ops.token_fields(job)
    values = {
        "status": "completed",
        "result_path": name,
        "result_size_bytes": DOWNLOAD_BYTES,
        "result_content_type": "image/png",
        **token_values,
        "download_limit": None,
    }
    for key, value in values.items():
        setattr(job, key, value)
    job.save()
    return token, storage.private_storage().path(name)


def main(out: Path) -> None:
    call_command("migrate", verbosity=0, interactive=False)
    root = Site.objects.get(is_default_site=True).root_page
    images = make_images(24, 1200, 800, "Bench")
    sellable_page = publish_gallery(root, [sellable(i) for i in images], slug="bench-sellable")
    plain_page = publish_gallery(root, [plain(i) for i in images], slug="bench-plain")
    one_page = publish_gallery(root, [sellable(images[0])], slug="bench-one", title="One")
    many = images + make_images(176, 150, 120, "Many")
    many_page = publish_gallery(root, [sellable(i) for i in many], slug="bench-200", title="Many")
    token, file_path = delivered_order(images[0], sellable_page)

    client = Client()
    cache = caches["default"]

    def price(image, page):
        body = json.dumps({"image_id": image.pk, "page_id": page.pk})

        def post():
            response = client.post(
                "/smi/v1/calculate-all-prices", body, content_type="application/json"
            )
            assert response.status_code == 200, response.content

        return post

    def get(url):
        def fetch():
            response = client.get(url)
            assert response.status_code == 200, response.status_code

        return fetch

    price_queries = {}
    for size, image, page in (
        (1, images[0], one_page),
        (24, images[-1], sellable_page),
        (200, many[-1], many_page),
    ):
        cache.clear()
        cold = count_queries(price(image, page))
        warm = count_queries(price(image, page))
        price_queries[size] = {"cold": cold, "warm": warm}
    page_queries = {}
    for key, page in (("sellable", sellable_page), ("plain", plain_page)):
        get(page.url)()  # renditions made and caches warm
        page_queries[key] = count_queries(get(page.url))

    out.write_text(
        json.dumps(
            {
                "price_body": {"image_id": images[-1].pk, "page_id": sellable_page.pk},
                "sellable_url": sellable_page.url,
                "plain_url": plain_page.url,
                "download_url": f"/smi/download/{token}",
                "download_file": file_path,
                "download_bytes": DOWNLOAD_BYTES,
                "price_queries": price_queries,
                "page_queries": page_queries,
            }
        )
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
