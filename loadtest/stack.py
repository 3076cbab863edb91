"""A live shop on this machine, the way a growing shop runs it, for the load test and fuzzing.

``LiveShop`` starts, on loopback only: a fresh database (a throwaway PostgreSQL database,
or a SQLite file), migrated and seeded with sellable images; the local Stripe and
Upsampler servers of the test suite (``tests/stripe_server.py``, ``tests/upsampler_server.py``)
in this process; gunicorn (2 workers, threads) with the demo site's settings; and the
queue's workers (two ``qcluster`` processes on PostgreSQL + Redis, one on SQLite + the ORM
broker, as the demo's settings advise). Everything is stopped, and the database dropped,
when the ``with`` block ends.

Stacks: ``postgres-redis`` (``SMI_LOAD_PG_URL``, default the CI server's ``postgres``
database URL, used to create and drop the throwaway one; Redis at ``SMI_LOAD_REDIS_URL``,
default ``redis://127.0.0.1:6379``, databases 13 and 14) and ``sqlite-orm``.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import stripe_server  # noqa: E402
from tests.upsampler_server import FakeUpsampler  # noqa: E402

STACKS = ("sqlite-orm", "postgres-redis")
WEBHOOK_SECRET = "whsec_load_0123456789abcdef"
STRIPE_KEY = "sk_test_wagtail_smi_load"
UPSAMPLER_KEY = "k_load"
#: Every seeded image has this size, so the fake Upsampler knows the size of each result.
ORIGINAL_SIZE = (160, 120)
#: One Upsampler job in this many fails (chosen by its id): those orders are refunded.
FAIL_ONE_IN = 8
BIN = Path(sys.executable).parent

SEED = f"""
import io, json
from PIL import Image
from django.core.files.images import ImageFile
from wagtail.images import get_image_model
from wagtail.models import Site
from tests.storefront_support import publish_gallery, sellable

root = Site.objects.get(is_default_site=True).root_page
offers = []
for number, colour in enumerate([(200, 60, 40), (40, 120, 200), (90, 170, 60)]):
    data = io.BytesIO()
    Image.new("RGB", {ORIGINAL_SIZE!r}, colour).save(data, "JPEG")
    image = get_image_model()(title=f"Load test {{number}}")
    image.file = ImageFile(io.BytesIO(data.getvalue()), name=f"load-{{number}}.jpg")
    image.save()
    page = publish_gallery(root, [sellable(image)], slug=f"load-{{number}}", title=f"Load {{number}}")
    offers.append([image.pk, page.pk])
print(json.dumps(offers))
"""

SETTLED = """
import json
from collections import Counter
from wagtail_smi.models import PurchaseJob
print(json.dumps(Counter(PurchaseJob.objects.values_list("status", flat=True))))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LoadUpsampler(FakeUpsampler):
    """The fake Upsampler, answering each job with a result of the size it should have
    (``ORIGINAL_SIZE`` times the job's factor) and failing one job in ``FAIL_ONE_IN``."""

    def __init__(self, **kwargs):
        self._results: dict[tuple[int, int], bytes] = {}
        super().__init__(**kwargs)
        self.callbacks = True

    def fails(self, job_id: str) -> bool:
        return int(job_id, 16) % FAIL_ONE_IN == 0

    def _status_payload(self, job_id: str) -> dict:
        if self.fails(job_id):
            return {"id": job_id, "status": "FAILED", "error": "Image could not be processed"}
        return super()._status_payload(job_id)

    def _status_payload_final(self, job_id: str) -> dict:
        if self.fails(job_id):
            return {"id": job_id, "status": "FAILED", "error": "Image could not be processed"}
        return super()._status_payload_final(job_id)

    def result_png(self, job_id: str) -> bytes:
        factor = int((self.jobs[job_id].get("input") or {}).get("upscaleFactor") or 1)
        size = (ORIGINAL_SIZE[0] * factor, ORIGINAL_SIZE[1] * factor)
        with self._lock:
            if size not in self._results:
                buffer = io.BytesIO()
                Image.new("RGB", size, (30, 90, 160)).save(buffer, format="PNG")
                self._results[size] = buffer.getvalue()
            return self._results[size]

    def _handler_class(self):
        base, fake = super()._handler_class(), self

        class Handler(base):
            def do_GET(self):  # noqa: N802
                job_id = self.path.removeprefix("/files/").split(".")[0]
                if not self.path.startswith("/files/") or job_id not in fake.jobs:
                    return super().do_GET()
                self._record()
                body = fake.result_png(job_id)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return None

        return Handler

    def submissions_per_job(self) -> dict[str, int]:
        """How many times each order was submitted (its id is in the callback URL)."""
        counts: dict[str, int] = {}
        for _method, _path, _headers, body in self.submits:
            webhook = (body or {}).get("webhook", "") if isinstance(body, dict) else ""
            parts = webhook.rstrip("/").split("/")
            order = parts[-2] if len(parts) >= 2 else webhook
            counts[order] = counts.get(order, 0) + 1
        return counts


def double_refunds(fake: stripe_server.FakeStripe) -> list[str]:
    """PaymentIntents the shop tried to refund more than once (refund requests under more
    than one idempotency key), or that were refunded more than once or beyond the amount."""
    keys: dict[str, set] = {}
    refunded: dict[str, list[int]] = {}
    with fake.lock:
        for request in fake.requests:
            if request["method"] == "POST" and request["path"] == "/v1/refunds":
                target = request["params"].get("payment_intent") or request["params"].get("charge")
                keys.setdefault(target, set()).add(request["idempotency_key"])
        for refund in fake.refunds.values():
            if refund.get("status") != "failed":
                refunded.setdefault(refund["payment_intent"], []).append(refund["amount"])
        paid = {pi: intent["amount"] for pi, intent in fake.payment_intents.items()}
    twice = {target for target, used in keys.items() if len(used) > 1}
    twice |= {
        pi for pi, amounts in refunded.items() if len(amounts) > 1 or sum(amounts) > paid.get(pi, 0)
    }
    return sorted(twice)


class LiveShop:
    def __init__(self, stack: str, *, log_dir: Path, rate_limits: bool = True, workers: int = 2):
        if stack not in STACKS:
            raise ValueError(f"stack must be one of {STACKS}, not {stack!r}")
        self.stack, self.rate_limits, self.workers = stack, rate_limits, workers
        self.log_dir = log_dir
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.folder = Path(tempfile.mkdtemp(prefix=f"smi-{stack}-"))
        self.processes: list[subprocess.Popen] = []
        self.database_name = f"smi_load_{secrets.token_hex(4)}"
        self.offers: list[list[int]] = []

    # Setting up ----------------------------------------------------------------------

    def admin_database_url(self) -> str:
        return os.environ.get("SMI_LOAD_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")

    def environment(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("SMI_", "DJANGO_", "DATABASE_URL", "REDIS_URL"))
        }
        env.update(
            DJANGO_SETTINGS_MODULE="demo_site.settings",
            DJANGO_SECRET_KEY=secrets.token_urlsafe(40),
            DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
            DJANGO_CONN_MAX_AGE="60",
            PYTHONPATH=str(ROOT),
            SMI_DEMO_VAR_DIR=str(self.folder),
            SMI_LOG_LEVEL="WARNING",
            SMI_PUBLIC_BASE_URL=self.base_url,
            SMI_RATE_LIMITS="1" if self.rate_limits else "0",
            # The load test's clients come through one trusted proxy, each with its address.
            SMI_TRUSTED_PROXIES="1",
            SMI_PAYMENT_BACKEND="stripe",
            SMI_STRIPE_SECRET_KEY=STRIPE_KEY,
            SMI_STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
            SMI_STRIPE_API_BASE=self.stripe.base_url,
            SMI_UPSCALER="upsampler",
            SMI_UPSAMPLER_API_KEY=UPSAMPLER_KEY,
            SMI_UPSAMPLER_API_BASE=self.upsampler.api_base,
            SMI_ALLOW_PRIVATE_URLS="1",
        )
        if self.stack == "postgres-redis":
            redis = os.environ.get("SMI_LOAD_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
            admin = self.admin_database_url()
            env.update(
                DATABASE_URL=admin.rsplit("/", 1)[0] + "/" + self.database_name,
                SMI_QUEUE_BROKER="redis",
                REDIS_URL=f"{redis}/13",
                SMI_CACHE_URL=f"{redis}/14",
            )
        else:
            env.update(SMI_QUEUE_BROKER="orm")
        return env

    def manage(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "python"), "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def must(self, *args: str) -> str:
        done = self.manage(*args)
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {args[0]} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def start(self, name: str, *command: str) -> subprocess.Popen:
        log = (self.log_dir / f"{self.stack}-{name}.log").open("wb")
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def create_database(self) -> None:
        if self.stack != "postgres-redis":
            return
        import psycopg  # the postgres extra; only this stack needs it

        with psycopg.connect(self.admin_database_url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{self.database_name}"')
        import redis  # the redis extra; only this stack needs it

        for url in (self.env["REDIS_URL"], self.env["SMI_CACHE_URL"]):
            redis.Redis.from_url(url).flushdb()

    def drop_database(self) -> None:
        if self.stack != "postgres-redis":
            return
        import psycopg

        with psycopg.connect(self.admin_database_url(), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{self.database_name}" WITH (FORCE)')

    def wait_until_up(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.base_url + "/smi/v1/openapi.json", timeout=5):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.3)
        raise RuntimeError(f"gunicorn did not answer on {self.base_url} within {seconds} s")

    def __enter__(self) -> LiveShop:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.stripe_server, _thread = stripe_server.start(
            stripe_server.FakeStripe(webhook_secret=WEBHOOK_SECRET, api_key=STRIPE_KEY)
        )
        self.stripe = self.stripe_server.fake
        self.upsampler = LoadUpsampler(api_key=UPSAMPLER_KEY).__enter__()
        self.env = self.environment()
        try:
            self.create_database()
            self.must("migrate", "--noinput")
            self.offers = json.loads(self.must("shell", "-c", SEED).strip().splitlines()[-1])
            self.start(
                "gunicorn",
                str(BIN / "gunicorn"),
                "demo_site.wsgi:application",
                f"--bind=127.0.0.1:{self.port}",
                f"--workers={self.workers}",
                "--worker-class=gthread",
                "--threads=4",
                "--timeout=60",
                # Longer than any client stays idle between two requests (as a proxy's
                # upstream keep-alive is): otherwise a request sent just as gunicorn closes
                # an idle connection is reset, which says nothing about the shop.
                "--keep-alive=75",
                "--access-logfile",
                str(self.log_dir / f"{self.stack}-access.log"),
                "--access-logformat",
                "smi-access %(s)s %(m)s %(U)s",
                "--no-control-socket",
            )
            clusters = 2 if self.stack == "postgres-redis" else 1
            for number in range(clusters):
                self.start(f"qcluster-{number}", str(BIN / "python"), "manage.py", "qcluster")
            self.wait_until_up()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    # Afterwards -----------------------------------------------------------------------

    def job_counts(self) -> dict[str, int]:
        return json.loads(self.must("shell", "-c", SETTLED).strip().splitlines()[-1])

    def wait_for_settled(self, seconds: float) -> dict[str, int]:
        """Wait (bounded) until no paid order is still on its way; the last counts."""
        deadline = time.monotonic() + seconds
        counts = self.job_counts()
        while time.monotonic() < deadline and (counts.get("paid") or counts.get("processing")):
            time.sleep(3)
            counts = self.job_counts()
        return counts

    def server_errors(self) -> int:
        """5xx answers in gunicorn's access log (every client's, not only the load tool's)."""
        log = self.log_dir / f"{self.stack}-access.log"
        if not log.exists():
            return 0
        answers = re.findall(r"^smi-access (\d{3}) ", log.read_text(errors="replace"), re.M)
        return sum(1 for status in answers if status.startswith("5"))

    def __exit__(self, *exc) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.upsampler.__exit__(None, None, None)
        self.stripe_server.shutdown()
        self.stripe_server.server_close()
        try:
            self.drop_database()
        except Exception as error:  # noqa: BLE001 - say so, the run's result stands
            print(f"Could not drop {self.database_name}: {error}", file=sys.stderr)
        shutil.rmtree(self.folder, ignore_errors=True)
