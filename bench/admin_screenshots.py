"""Refresh the admin screenshots in docs/screenshots: the orders list, an order that needs
attention, the revenue report with its comparison (light and dark), the funnel, an order's
timeline after a partial refund, the customers report and the dashboard.

Run from the repository root, with the test dependencies installed (Playwright) and
Debian's Chromium (``SMI_CHROMIUM``, default /usr/bin/chromium)::

    .venv/bin/python bench/admin_screenshots.py
    .venv/bin/python bench/admin_screenshots.py --out /tmp/shots

The demo is built in a temporary folder as ``make demo`` builds it (its own SQLite file,
demo content, the sample orders of ``smi_demo_orders``, dummy payments, DEBUG on so media
is served), ``runserver`` is started on a free port, and the pictures are taken as the demo
admin. The partial refund is made through the refund page in the browser, as a shop owner
would. Nothing is written outside that folder except the PNGs.
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

from tests.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

VIEWPORT = {"width": 1280, "height": 1300}
ADMIN = ("admin", "smi-demo-admin")  # the demo's own account (smi_demo_content)


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
    """The demo site with its sample orders, on a free port, in a temporary folder."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="smi-admin-screenshots-") as folder:
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

        for command in (["migrate", "--noinput"], ["smi_demo_content"], ["smi_demo_orders"]):
            if manage(*command).wait(300) != 0:
                raise SystemExit(f"manage.py {' '.join(command)} failed")
        web = manage("runserver", f"127.0.0.1:{port}", "--noreload")
        try:
            wait_until_up(base + "/")
            os.environ.update(env)  # this process reads the same database for ids
            yield base
        finally:
            os.killpg(web.pid, signal.SIGINT)
            try:
                web.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(web.pid, signal.SIGKILL)
                web.wait()


def an_order_that_needs_attention() -> str:
    from wagtail_smi.models import PurchaseJob  # after an_order_to_refund set Django up

    return str(PurchaseJob.objects.filter(status="needs_attention").order_by("-paid_at")[0].pk)


def an_order_to_refund() -> tuple[str, str]:
    """A delivered demo order, as the admin would pick it from the list, and a third of
    its price (in dollars) to give back."""
    import django  # noqa: PLC0415  (configured only once the demo's settings are in place)

    django.setup()
    from wagtail_smi.models import PurchaseJob  # the app registry is ready only now

    job = (
        PurchaseJob.objects.filter(status="completed", currency="usd")
        .order_by("-amount_cents", "-paid_at")
        .first()
    )
    return str(job.pk), f"{job.paid_amount_cents // 3 / 100:.2f}"


def take(base: str, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    written = []
    order, amount = an_order_to_refund()
    stuck = an_order_that_needs_attention()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            for scheme in ("light", "dark"):
                context = browser.new_context(viewport=VIEWPORT, color_scheme=scheme)
                page = context.new_page()
                page.set_default_timeout(20_000)
                page.goto(f"{base}/admin/login/")
                page.fill("input[name=username]", ADMIN[0])
                page.fill("input[name=password]", ADMIN[1])
                page.click("button[type=submit]")
                page.wait_for_url(f"{base}/admin/")

                def shot(name: str, url: str, *, page=page) -> None:
                    page.goto(base + url)
                    page.wait_for_load_state("networkidle")
                    page.screenshot(path=str(out / name), full_page=True)
                    written.append(out / name)

                if scheme == "dark":
                    shot("admin-report-revenue-dark.png", "/admin/smi/reports/revenue/")
                    context.close()
                    continue
                shot("admin-orders.png", "/admin/smi/orders/")
                shot("admin-order.png", f"/admin/smi/orders/inspect/{stuck}/")
                shot("admin-report-revenue.png", "/admin/smi/reports/revenue/")
                shot("admin-report-funnel.png", "/admin/smi/reports/funnel/")
                shot("admin-report-customers.png", "/admin/smi/reports/customers/")
                # A partial refund, made as a shop owner makes it, then the order's timeline.
                page.goto(f"{base}/admin/smi/orders/refund/{order}/")
                page.fill("input[name=amount]", amount)
                page.fill("input[name=reason]", "A colour cast in one corner")
                page.click("form.smi-confirm__form button[type=submit]")
                page.wait_for_url(f"{base}/admin/smi/orders/inspect/{order}/")
                page.wait_for_load_state("networkidle")
                page.screenshot(path=str(out / "admin-order-timeline.png"), full_page=True)
                written.append(out / "admin-order-timeline.png")
                shot("admin-dashboard.png", "/admin/")
                context.close()
        finally:
            browser.close()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=SCREENSHOTS,
        help="where to write the PNGs (default: docs/screenshots)",
    )
    args = parser.parse_args(argv)
    with throwaway_demo() as base:
        for path in take(base, args.out):
            print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
