"""Refresh the storefront screenshots in docs/screenshots: the modal (modal-desktop.png,
modal-phone.png), an order page on a phone (order-phone.png), an expired download link's
page (expired-link.png) and the receipt email (receipt-email.png).

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

The orders are made by the real operations (checkout, payment, processing with the local
upscaler, emails through the demo's file backend), in a child process with the demo's
settings (``--prepare-orders``); with ``--base-url`` that child uses the environment this
script runs in, so run it like ``make demo`` (``DJANGO_DEBUG=1``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "docs" / "screenshots"
sys.path.insert(0, str(ROOT))

# The browser tests' Chromium: Debian's, headless and offline.
from tests.browser import CHROMIUM, CHROMIUM_ARGS, DESKTOP, PHONE  # noqa: E402

PHONE_OPTIONS = {"viewport": PHONE, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}
SHOTS = [
    ("modal-desktop.png", {"viewport": DESKTOP}),
    ("modal-phone.png", PHONE_OPTIONS),
]
ORDER_SHOT = ("order-phone.png", PHONE_OPTIONS)
EXPIRED_SHOT = ("expired-link.png", {"viewport": DESKTOP})
EMAIL_SHOT = ("receipt-email.png", {"viewport": {"width": 720, "height": 300}})
# The customer of the pictured orders: their emails are found by this address.
CUSTOMER = "jane.doe@example.com"
ORDERED_IMAGE = "City lights"


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
        orders = prepare_orders(env)
        web = manage("runserver", f"127.0.0.1:{port}", "--noreload")
        try:
            wait_until_up(base + "/")
            yield base, orders
        finally:
            os.killpg(web.pid, signal.SIGINT)
            try:
                web.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(web.pid, signal.SIGKILL)
                web.wait()


def prepare_orders(env: dict | None = None) -> dict:
    """Run ``--prepare-orders`` in a child process with the demo's settings."""
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--prepare-orders"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"Preparing the orders failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def make_orders() -> dict:
    """Two delivered orders of a demo image, made by the real operations:
    one ready (its page), one whose link has expired (its emailed link); and the HTML of
    the receipt email (the "download ready" email where no receipt is sent)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_site.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.db import transaction
    from django.utils import timezone

    from demo_site.mailbox import _messages, _part
    from wagtail_smi import catalog, links, operations, tokens
    from wagtail_smi.models import PurchaseJob, SaleListing
    from wagtail_smi.payments.dummy import DummyProvider

    # A portrait image: its order page must still show the status and the button first.
    listing = SaleListing.objects.filter(
        via_block=True, image__title__startswith=ORDERED_IMAGE
    ).first()
    offer = catalog.sale_offer(listing.image_id, listing.page_id)

    def delivered() -> PurchaseJob:
        job = operations.start_checkout(offer=offer, resolution_key="4x", email=CUSTOMER)
        with transaction.atomic():  # the receipt goes out on commit, as after a payment
            operations.mark_paid(
                job.pk,
                provider=DummyProvider.name,
                payment_intent_id=DummyProvider.payment_intent_id(job),
            )
        for _attempt in range(5):  # the local upscaler, here rather than in a worker
            operations.process_job(job.pk)
            job.refresh_from_db()
            if job.state.final:
                break
        return job

    ready = delivered()
    expired = delivered()
    token, digest = tokens.new_download_token()
    PurchaseJob.objects.filter(pk=expired.pk).update(
        token_hash=digest, token_expires_at=timezone.now() - timedelta(hours=3)
    )
    sent = [m for m in _messages(Path(settings.EMAIL_FILE_PATH)) if CUSTOMER in m["to"]]
    html = [_part(m["message"], "html") for m in reversed(sent)]  # oldest first
    receipt = next((h for h in html if "/smi/download/" not in h), html[0] if html else "")
    return {
        "order": links.order_path(ready),
        "expired": links.download_url(token).split("/smi/", 1)[1],
        "email_html": receipt,
    }


def take(base: str, out: Path, orders: dict) -> list[Path]:
    """Open the modal on the gallery at each size, then the order pages and the email,
    and save the pictures."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    base = base.rstrip("/")
    written = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )

        def shoot(name: str, options: dict, show, *, full_page: bool = False) -> None:
            context = browser.new_context(**options)
            page = context.new_page()
            page.set_default_timeout(20_000)
            show(page)
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(out / name), full_page=full_page)
            written.append(out / name)
            context.close()

        def modal(page) -> None:
            page.goto(base + "/gallery/")
            page.locator(".smi-get-button").nth(1).click()
            page.locator("dialog.smi-dialog .smi-option").first.wait_for()

        try:
            for name, options in SHOTS:
                shoot(name, options, modal)
            shoot(*ORDER_SHOT, lambda page: page.goto(base + orders["order"]))
            shoot(*EXPIRED_SHOT, lambda page: page.goto(f"{base}/smi/{orders['expired']}"))
            if orders.get("email_html"):
                show_email = lambda page: page.set_content(orders["email_html"])  # noqa: E731
                shoot(*EMAIL_SHOT, show_email, full_page=True)
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
    parser.add_argument("--prepare-orders", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.prepare_orders:
        print(json.dumps(make_orders()))
        return 0
    if not os.path.exists(CHROMIUM):
        raise SystemExit(f"Chromium not found at {CHROMIUM}: install it or set SMI_CHROMIUM")
    if args.base_url:
        written = take(args.base_url, args.out, prepare_orders())
    else:
        with throwaway_demo() as (base, orders):
            written = take(base, args.out, orders)
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
