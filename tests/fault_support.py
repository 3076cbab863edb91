"""Support for the fault tests (``tests/test_faults_*.py``, marker ``faults``).

- Counting: every fault test run is a fault injected, every one that passed a fault
  survived. With ``SMI_CI_RESULTS`` set to a folder, the session writes
  ``faults-<stack>.json`` there (``{"injected": n, "survived": m}``), the stack being
  ``postgres-redis`` when ``DATABASE_URL`` is PostgreSQL and ``sqlite-orm`` otherwise.
- ``shop_storage``: a private storage of the test's own, so the closing invariant check
  sees only the files this test stored.
- ``assert_shop_is_consistent()``: the closing check of every fault test,
  ``invariants.find_violations(files=True)``, seen from after every delivery has had time
  to commit (a stray file of any age counts).
- ``Shop``: the demo site in subprocesses of its own (``manage.py`` commands and a
  ``qcluster`` worker that can be killed with SIGKILL and started again), on its own SQLite
  file, or on a PostgreSQL database of its own with the Redis broker on the
  ``postgres-redis`` stack.

Registered for the whole suite in ``tests/conftest.py`` (``pytest_plugins``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

ROOT = Path(__file__).resolve().parent.parent
MARKER = "faults"


def stack() -> str:
    url = os.environ.get("DATABASE_URL", "")
    return "postgres-redis" if url.startswith(("postgres://", "postgresql://")) else "sqlite-orm"


# Counting -------------------------------------------------------------------------------------

_counts = {"injected": 0, "survived": 0}


def pytest_runtest_logreport(report):
    if MARKER not in report.keywords:
        return
    if report.when == "call" or (report.when == "setup" and report.failed):
        _counts["injected"] += 1
        _counts["survived"] += int(report.when == "call" and report.passed)


def pytest_sessionfinish(session):
    folder = os.environ.get("SMI_CI_RESULTS", "").strip()
    if not folder or not _counts["injected"]:
        return
    path = Path(folder) / f"faults-{stack()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(_counts)) + "\n")


# In-process fault tests -------------------------------------------------------------------------


@pytest.fixture
def shop_storage(settings, tmp_path):
    """Private storage in a folder of this test's own (``location`` for the test to break)."""
    location = tmp_path / "private"
    location.mkdir()
    settings.STORAGES = {
        **settings.STORAGES,
        "smi_private": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(location)},
        },
    }
    return location


def stored_files(location: Path) -> list[Path]:
    return sorted(p for p in location.rglob("*") if p.is_file())


def assert_shop_is_consistent() -> None:
    """No invariant broken, the storage included (``invariants.find_violations``)."""
    from wagtail_smi import invariants  # imported late: Django is set up by then

    later = timezone.now() + invariants.GRACE + timedelta(minutes=1)
    found = invariants.find_violations(later, files=True)
    assert found == [], [v.as_dict() for v in found]


#: Only the "download ready" email carries a download link.
DOWNLOAD_LINK = "/smi/download/"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# The demo site in subprocesses --------------------------------------------------------------

NEW_ORDER = """
import io, sys
from PIL import Image
from django.core.files.images import ImageFile
from wagtail.images import get_image_model
from wagtail.models import Site
from wagtail_smi.models import PurchaseJob

data = io.BytesIO()
Image.new("RGB", (60, 40), (10, 120, 200)).save(data, "JPEG")
image = get_image_model()(title="Fault")
image.file = ImageFile(io.BytesIO(data.getvalue()), name="fault.jpg")
image.save()
site = Site.objects.get(is_default_site=True)
page = site.root_page
job = PurchaseJob.objects.create(
    site=site, image=image, image_ref=image.pk, image_title=image.title, page=page,
    page_ref=page.pk, page_title=page.title, resolution="4x", factor=4,
    original_width=60, original_height=40, output_width=240, output_height=160,
    amount_cents=50, currency="usd", email="buyer@example.com", payment_provider="dummy",
)
"""
PAID_ORDER = (
    NEW_ORDER
    + """
from wagtail_smi.operations import mark_paid
mark_paid(job.pk, provider="dummy", reference="fault")
print(job.pk)
"""
)
# An order at Stripe's checkout (the shop's payment backend is Stripe).
CHECKOUT_ORDER = (
    NEW_ORDER
    + """
from wagtail_smi.payments import get_payment_provider
from wagtail_smi.workflow import update_job
session = get_payment_provider().create_checkout(
    job, success_url="https://shop.example/ok", cancel_url="https://shop.example/"
)
update_job(job, checkout_session_id=session.session_id, checkout_url=session.url,
           payment_provider="stripe")
print(job.pk, session.session_id)
"""
)
# What a webhook may have changed, as JSON.
ORDER_STATE = """
import json
from django_q.brokers import get_broker
from wagtail_smi.models import JobEvent, ProcessedWebhookEvent, PurchaseJob
job = PurchaseJob.objects.get(pk=JOB_ID)
print(json.dumps({
    "status": job.status,
    "paid_at": str(job.paid_at or ""),
    "processed_events": ProcessedWebhookEvent.objects.count(),
    "events": list(JobEvent.objects.filter(job=job).values_list("code", flat=True)),
    "queued": get_broker().queue_size(),
}))
"""


class Shop:
    """The demo site run as a shop runs it: ``manage.py`` in subprocesses, a ``qcluster``
    worker of its own, files in its own folder, and mail written to files."""

    def __init__(self, folder: Path, env: dict[str, str]):
        self.folder = folder
        self.env = env
        self.worker: subprocess.Popen | None = None
        self.worker_log = folder / "worker.log"
        self.web: subprocess.Popen | None = None
        self.web_url = ""

    @property
    def private(self) -> Path:
        return self.folder / "private"

    @property
    def mailbox(self) -> Path:
        return self.folder / "mail"

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"manage.py {' '.join(args)}: {done.stdout}\n{done.stderr}")
        return done

    def shell(self, code: str) -> str:
        return self.manage("shell", "-c", code).stdout.strip()

    def paid_order(self) -> str:
        """A paid order, its processing task handed to the queue; returns its id."""
        return self.shell(PAID_ORDER).splitlines()[-1]

    def checkout_order(self) -> tuple[str, str]:
        """An order waiting at Stripe's checkout: (its id, the Checkout Session id)."""
        job_id, session_id = self.shell(CHECKOUT_ORDER).splitlines()[-1].split()
        return job_id, session_id

    def order_state(self, job_id: str) -> dict:
        code = ORDER_STATE.replace("JOB_ID", repr(job_id))
        return json.loads(self.shell(code).splitlines()[-1])

    def job(self, job_id: str) -> dict:
        code = (
            "import json\n"
            "from wagtail_smi.models import PurchaseJob\n"
            f"job = PurchaseJob.objects.filter(pk={job_id!r}).values().first()\n"
            "print(json.dumps(job, default=str))\n"
        )
        return json.loads(self.shell(code).splitlines()[-1])

    def start_worker(self) -> None:
        with self.worker_log.open("ab") as log:
            self.worker = subprocess.Popen(
                [sys.executable, "manage.py", "qcluster"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill_worker(self) -> None:
        """SIGKILL to the cluster and every worker process it forked: no clean-up runs."""
        assert self.worker is not None
        os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait(30)
        self.worker = None

    def stop_worker(self) -> None:
        if self.worker is None or self.worker.poll() is not None:
            self.worker = None
            return
        os.killpg(self.worker.pid, signal.SIGINT)  # qcluster stops cleanly on Ctrl-C
        try:
            self.worker.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.worker.pid, signal.SIGKILL)
            self.worker.wait()
        self.worker = None

    def start_web(self) -> str:
        """gunicorn with two worker processes, as in production; returns its base URL."""
        port = free_port()
        with (self.folder / "web.log").open("ab") as log:
            self.web = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "demo_site.wsgi:application",
                 "--bind", f"127.0.0.1:{port}", "--workers", "2", "--timeout", "60"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.web_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return self.web_url
            except OSError:
                if time.monotonic() > deadline or self.web.poll() is not None:
                    raise AssertionError((self.folder / "web.log").read_text()) from None
                time.sleep(0.3)

    def stop_web(self) -> None:
        if self.web is not None and self.web.poll() is None:
            os.killpg(self.web.pid, signal.SIGTERM)
            try:
                self.web.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.web.pid, signal.SIGKILL)
                self.web.wait()
        self.web = None

    def wait_for(self, job_id: str, condition, what: str, seconds: float = 180) -> dict:
        deadline = time.monotonic() + seconds
        while True:
            job = self.job(job_id)
            if condition(job):
                return job
            if time.monotonic() > deadline:
                log = self.worker_log.read_text(errors="replace")[-3000:]
                raise AssertionError(f"{what} did not happen: {job}\n{log}")
            time.sleep(1)

    def files(self) -> list[Path]:
        return stored_files(self.private)

    def mails_to(self, address: str, containing: str = "") -> list[str]:
        """The messages written to ``address`` (that contain ``containing``)."""
        found = []
        for path in sorted(self.mailbox.glob("*.log")) if self.mailbox.exists() else []:
            # The file backend writes every message of a connection to one file.
            for message in path.read_text(errors="replace").split("-" * 79):
                if f"To: {address}" in message and containing in message:
                    found.append(message)
        return found

    def assert_consistent(self) -> None:
        """The closing invariant check, run by the shop itself: ``smi_check`` calls
        ``invariants.find_violations(files=True)`` and exits 0 only when it finds none."""
        done = self.manage("smi_check", "--json", check=False)
        report = json.loads(done.stdout or "{}")
        assert (done.returncode, report.get("count")) == (0, 0), done.stdout + done.stderr


def _postgres_database(url: str):
    """A database of the shop's own on the server ``url`` names: (its URL, drop)."""
    import psycopg

    name = f"smi_faults_{uuid.uuid4().hex[:12]}"
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return url.rsplit("/", 1)[0] + "/" + name, drop


def _forget_queue(name: str) -> None:
    """Remove what the shop's Redis queue left behind (tasks never taken, its stats)."""
    import redis  # only on the postgres-redis stack

    server = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    for key in server.scan_iter(match=f"*{name}*"):
        server.delete(key)


@pytest.fixture
def make_shop(tmp_path):
    """Build a migrated ``Shop`` with extra environment variables (the fake services'
    addresses); its worker is stopped and its database dropped afterwards."""
    shops: list[Shop] = []
    cleanups = []

    def factory(**extra_env: str) -> Shop:
        folder = tmp_path / f"shop{len(shops)}"
        folder.mkdir()
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("SMI_", "DJANGO_", "DATABASE_URL", "REDIS_URL"))
        }
        env.update(
            DJANGO_SETTINGS_MODULE="tests.fault_settings",
            DJANGO_DEBUG="1",
            SMI_DEMO_VAR_DIR=str(folder),
            SMI_EMAIL_DIR=str(folder / "mail"),
            SMI_PUBLIC_BASE_URL="http://127.0.0.1:9",
            SMI_RATE_LIMITS="0",
            SMI_PAYMENT_BACKEND="dummy",
            SMI_QUEUE_BROKER="orm",
        )
        if stack() == "postgres-redis":
            url, drop = _postgres_database(os.environ["DATABASE_URL"])
            cleanups.append(drop)
            env.update(DATABASE_URL=url, SMI_QUEUE_BROKER="redis")
            env["REDIS_URL"] = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
            env["SMI_FAULTS_QUEUE"] = f"wagtail_smi_faults_{uuid.uuid4().hex[:8]}"
            cleanups.append(lambda queue=env["SMI_FAULTS_QUEUE"]: _forget_queue(queue))
        env.update(extra_env)
        shop = Shop(folder, env)
        shops.append(shop)
        shop.manage("migrate", "--noinput")
        return shop

    yield factory
    for shop in shops:
        shop.stop_worker()
        shop.stop_web()
    for cleanup in cleanups:
        cleanup()
