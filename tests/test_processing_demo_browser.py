"""The whole demo, black-box: its own web server and a real ``qcluster`` worker process
(ORM broker, local upscaler, dummy payments), driven by Chromium from the gallery to the
downloaded file.

Nothing here shares the test database: the demo runs in subprocesses on its own SQLite
file in a temporary folder, exactly as ``make demo`` runs it.
"""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from PIL import Image

from tests.browser import DESKTOP

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGINT)  # qcluster and runserver stop cleanly on Ctrl-C
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture
def demo_upscaler() -> str:
    """The demo's ``SMI_UPSCALER``; a module reusing ``demo`` can override it."""
    return "local"


@pytest.fixture
def demo(tmp_path, demo_upscaler):
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SMI_", "DJANGO_", "DATABASE_URL"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="demo_site.settings",
        DJANGO_DEBUG="1",
        SMI_DEMO_VAR_DIR=str(tmp_path),
        SMI_PUBLIC_BASE_URL=base,
        SMI_RATE_LIMITS="0",
        SMI_UPSCALER=demo_upscaler,
        SMI_PAYMENT_BACKEND="dummy",
        SMI_QUEUE_BROKER="orm",
    )

    def manage(*args: str, **kwargs) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            stdout=kwargs.pop("stdout", subprocess.DEVNULL),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **kwargs,
        )

    for command in (["migrate", "--noinput"], ["smi_demo_content"], ["smi_schedules"]):
        assert manage(*command).wait(180) == 0, command
    worker_log = (tmp_path / "worker.log").open("wb")
    worker = manage("qcluster", stdout=worker_log)
    web = manage("runserver", f"127.0.0.1:{port}", "--noreload")
    try:
        for _ in range(150):
            try:
                requests.get(base + "/", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        yield base, tmp_path
    finally:
        _stop(web)
        _stop(worker)
        worker_log.close()


def test_buying_4x_on_the_demo_delivers_a_file_four_times_the_original(demo, chromium):
    base, folder = demo
    context = chromium.new_context(viewport=DESKTOP, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        page.goto(base + "/gallery/")
        button = page.locator(".smi-get-button").first
        width, height = (
            int(button.get_attribute("data-width")),
            int(button.get_attribute("data-height")),
        )
        button.click()
        dialog = page.locator("dialog.smi-dialog")
        dialog.locator("input[name=email]").fill("buyer@example.com")
        dialog.locator("button[type=submit]").click()
        page.wait_for_url(re.compile(r"/smi/dummy-checkout/"))
        page.locator("button[value=pay]").click()

        page.wait_for_url(re.compile(r"/smi/orders/[0-9a-f-]{36}/\?key="))
        # The worker process picks the job up; the page follows it by polling.
        page.locator(".smi-stages li[data-stage=ready][aria-current=step]").wait_for(timeout=60_000)
        with page.expect_download() as info:
            page.locator(".smi-download a").click()
        saved = folder / "downloaded"
        info.value.save_as(saved)
    finally:
        context.close()

    with Image.open(io.BytesIO(saved.read_bytes())) as delivered:
        assert delivered.size == (4 * width, 4 * height)
    assert "process_job" in (folder / "worker.log").read_text()
    assert any((folder / "mail").glob("*.log"))  # the download email, in the demo mailbox
