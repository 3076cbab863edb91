"""Refresh the storefront screenshots in docs/screenshots: modal-desktop.png, modal-phone.png.

Run from the repository root, with the test dependencies installed (Playwright) and
Debian's Chromium (``SMI_CHROMIUM``, default /usr/bin/chromium)::

    .venv/bin/python bench/screenshots.py                # a throwaway demo, PNGs into docs/
    .venv/bin/python bench/screenshots.py --base-url http://127.0.0.1:8000   # `make demo`
    .venv/bin/python bench/screenshots.py --out /tmp/shots

Without ``--base-url`` the script builds the demo in a temporary folder, exactly as
``make demo`` does (its own SQLite file, demo content, dummy payments, DEBUG on so media is
served), starts ``runserver`` on a free port, takes the pictures and stops it again.
Nothing is written outside that folder except the PNGs. The screenshots show the modal
opened on the gallery's second image, so the pictures in the README stay comparable.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "docs" / "screenshots"
sys.path.insert(0, str(ROOT))

# The browser tests' Chromium: Debian's, headless and offline.
from tests.browser import CHROMIUM, CHROMIUM_ARGS, DESKTOP, PHONE  # noqa: E402

SHOTS = [
    ("modal-desktop.png", {"viewport": DESKTOP}),
    (
        "modal-phone.png",
        {"viewport": PHONE, "is_mobile": True, "has_touch": True, "device_scale_factor": 2},
    ),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urlopen(url, timeout=2).close()
            return
        except URLError:
            if time.monotonic() > deadline:
                raise SystemExit(f"The demo did not answer at {url}") from None
            time.sleep(0.3)


@contextmanager
def throwaway_demo():
    """The demo site on a free port, on its own database in a temporary folder."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="smi-screenshots-") as folder:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SMI_", "DJANGO_", "DATABASE_URL"))
        }
        env.update(
            DJANGO_SETTINGS_MODULE="demo_site.settings",
            DJANGO_DEBUG="1",
            SMI_DEMO_VAR_DIR=folder,
            SMI_PUBLIC_BASE_URL=base,
            SMI_RATE_LIMITS="0",
            SMI_UPSCALER="local",
            SMI_PAYMENT_BACKEND="dummy",
        )

        def manage(*args: str) -> subprocess.Popen:
            return subprocess.Popen(
                [sys.executable, "manage.py", *args],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        for command in (["migrate", "--noinput"], ["smi_demo_content"]):
            if manage(*command).wait(300) != 0:
                raise SystemExit(f"manage.py {' '.join(command)} failed")
        web = manage("runserver", f"127.0.0.1:{port}", "--noreload")
        try:
            wait_until_up(base + "/")
            yield base
        finally:
            os.killpg(web.pid, signal.SIGINT)
            try:
                web.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(web.pid, signal.SIGKILL)
                web.wait()


def take(base: str, out: Path) -> list[Path]:
    """Open the modal on the gallery at each size and save the picture."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    written = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            for name, options in SHOTS:
                context = browser.new_context(**options)
                page = context.new_page()
                page.set_default_timeout(20_000)
                page.goto(base.rstrip("/") + "/gallery/")
                page.locator(".smi-get-button").nth(1).click()
                page.locator("dialog.smi-dialog .smi-option").first.wait_for()
                page.wait_for_load_state("networkidle")
                page.screenshot(path=str(out / name))
                written.append(out / name)
                context.close()
        finally:
            browser.close()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--base-url", help="a demo already running (e.g. `make demo`) instead of a throwaway one"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=SCREENSHOTS,
        help="where to write the PNGs (default: docs/screenshots)",
    )
    args = parser.parse_args(argv)
    if not os.path.exists(CHROMIUM):
        raise SystemExit(f"Chromium not found at {CHROMIUM}: install it or set SMI_CHROMIUM")
    if args.base_url:
        written = take(args.base_url, args.out)
    else:
        with throwaway_demo() as base:
            written = take(base, args.out)
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
