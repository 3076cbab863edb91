"""Acceptance: a site migrated WITHOUT ``smi_schedules`` polls a held Upsampler job to
completion with a real ``qcluster`` process, and no callback ever arrives.

The site runs in subprocesses on its own SQLite file (the demo's settings, as ``make demo``
runs them, with the Upsampler backend pointed at the local fake); the fake holds the job
for its first poll and finishes it for the second. django-q2's scheduler looks every 30
seconds, so this takes a minute or two.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.upsampler_server import FakeUpsampler

ROOT = Path(__file__).resolve().parent.parent

PAID_ORDER = """
import io
from PIL import Image
from django.core.files.images import ImageFile
from wagtail.images import get_image_model
from wagtail.models import Site
from wagtail_smi.models import PurchaseJob
from wagtail_smi.operations import mark_paid

data = io.BytesIO()
Image.new("RGB", (120, 100), (10, 120, 200)).save(data, "JPEG")
image = get_image_model()(title="Held")
image.file = ImageFile(io.BytesIO(data.getvalue()), name="held.jpg")
image.save()
site = Site.objects.get(is_default_site=True)
page = site.root_page
job = PurchaseJob.objects.create(
    site=site, image=image, image_ref=image.pk, image_title=image.title, page=page,
    page_ref=page.pk, page_title=page.title, resolution="4x", factor=4,
    original_width=120, original_height=100, output_width=480, output_height=400,
    amount_cents=50, currency="usd", email="buyer@example.com", payment_provider="dummy",
)
mark_paid(job.pk, provider="dummy", reference="held")
print(job.pk)
"""


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGINT)  # qcluster stops cleanly on Ctrl-C
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture
def site(tmp_path):
    with FakeUpsampler(api_key="k") as upsampler:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("SMI_", "DJANGO_", "DATABASE_URL"))
        }
        env.update(
            DJANGO_SETTINGS_MODULE="demo_site.settings",
            DJANGO_DEBUG="1",
            SMI_DEMO_VAR_DIR=str(tmp_path),
            SMI_PUBLIC_BASE_URL="http://127.0.0.1:9",
            SMI_RATE_LIMITS="0",
            SMI_PAYMENT_BACKEND="dummy",
            SMI_QUEUE_BROKER="orm",
            SMI_UPSCALER="upsampler",
            SMI_UPSAMPLER_API_KEY="k",
            SMI_UPSAMPLER_API_BASE=upsampler.api_base,
            SMI_ALLOW_PRIVATE_URLS="1",
        )

        def manage(*args: str, **kwargs) -> subprocess.CompletedProcess:
            return subprocess.run(
                [sys.executable, "manage.py", *args],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=240,
                **kwargs,
            )

        yield manage, env, upsampler, tmp_path


def query(db: Path, sql: str, *params) -> list[tuple]:
    with sqlite3.connect(db, timeout=20) as connection:
        return connection.execute(sql, params).fetchall()


def test_a_site_that_never_ran_smi_schedules_polls_a_held_job_to_completion(site):
    manage, env, upsampler, folder = site
    db = folder / "db.sqlite3"
    assert manage("migrate", "--noinput").returncode == 0  # and nothing else

    schedules = dict(query(db, "SELECT name, func FROM django_q_schedule"))
    assert schedules == {
        "wagtail_smi sweeper": "wagtail_smi.tasks.sweep",
        "wagtail_smi cleanup": "wagtail_smi.tasks.cleanup",
    }
    # The doctor, as a deploy script runs it: this site's public URL cannot serve Upsampler.
    doctor = manage("smi_doctor", "--no-worker")
    assert doctor.returncode == 1
    assert "wagtail_smi.W005" in doctor.stdout

    upsampler.pending_polls = 1  # the first poll finds it in progress
    upsampler.result_size = (480, 400)
    created = manage("shell", "-c", PAID_ORDER)
    assert created.returncode == 0, created.stderr
    job_id = created.stdout.strip().splitlines()[-1]

    log_path = folder / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            status = ""
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline and status != "completed":
                time.sleep(2)
                rows = query(
                    db,
                    "SELECT status FROM wagtail_smi_purchasejob WHERE id = ?",
                    job_id.replace("-", ""),
                )
                status = rows[0][0] if rows else ""
        finally:
            _stop(worker)
    worker_log = log_path.read_text(errors="replace")

    assert status == "completed", worker_log[-3000:]
    assert len(upsampler.submits) == 1
    assert len(upsampler.status_calls) >= 2  # held, then done
    assert upsampler.sent_callbacks == []  # no callback: polling alone did it
    # The job's own schedule polled it; the sweeper ran and left its heartbeat.
    assert f"from schedule [wagtail_smi job {job_id}]" in worker_log
    assert query(db, "SELECT name FROM wagtail_smi_heartbeat") == [("sweeper",)]
    assert not query(
        db, "SELECT name FROM django_q_schedule WHERE name LIKE ?", "wagtail_smi job %"
    )
