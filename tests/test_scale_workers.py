"""Two ``qcluster`` processes on one queue, as a shop with several worker machines runs
them: every order is processed exactly once (one upscale, one stored file, one email),
with the Redis broker and with the ORM broker, even when each task is delivered twice.

The workers run the demo's settings in processes of their own, on this test's PostgreSQL
database, with originals and delivered files in buckets of the local S3 server (nothing
on a disk they would have to share) and emails written to a folder.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection
from django.utils import timezone
from django_q.models import Task

from tests.moto_support import ACCESS_KEY, REGION, SECRET_KEY
from wagtail_smi.models import JobEvent, PurchaseJob
from wagtail_smi.queue import PROCESS_TASK

ROOT = Path(__file__).resolve().parent.parent
ORDERS = 8
DELIVERIES = 2  # every task is enqueued twice, as a replayed payment webhook would

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ENQUEUE = """
from wagtail_smi import queue
for job_id in {job_ids!r} * {deliveries}:
    queue.enqueue_processing(job_id)
"""


def database_url() -> str:
    db = connection.settings_dict
    password = f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
    return (
        f"postgres://{quote(db['USER'] or 'postgres', safe='')}{password}"
        f"@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGINT)  # qcluster finishes what it holds and stops
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture
def workers(s3, tmp_path):
    """Starts two qcluster processes for a broker; yields (env, log files)."""
    started: list[subprocess.Popen] = []
    logs: list[Path] = []

    def start(broker: str) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("SMI_", "DJANGO_", "DATABASE_URL", "AWS_"))
        }
        env.update(
            DJANGO_SETTINGS_MODULE="demo_site.settings",
            DJANGO_DEBUG="1",
            DJANGO_CONN_MAX_AGE="60",
            DATABASE_URL=database_url(),
            SMI_DEMO_VAR_DIR=str(tmp_path),
            SMI_EMAIL_DIR=str(tmp_path / "mail"),
            SMI_PUBLIC_BASE_URL="http://127.0.0.1:9",
            SMI_UPSCALER="local",
            SMI_PAYMENT_BACKEND="dummy",
            SMI_QUEUE_BROKER=broker,
            # A queue of its own: nothing else using this Redis takes these tasks.
            SMI_QUEUE_NAME=f"smi-test-{uuid.uuid4().hex[:10]}",
            REDIS_URL="redis://127.0.0.1:6379/0",
            SMI_S3_ENDPOINT_URL=s3.endpoint,
            SMI_S3_REGION=REGION,
            SMI_S3_BUCKET=s3.private,
            SMI_S3_MEDIA_BUCKET=s3.media,
            AWS_ACCESS_KEY_ID=ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        )
        for number in (1, 2):
            log = tmp_path / f"worker-{number}.log"
            logs.append(log)
            started.append(
                subprocess.Popen(
                    [sys.executable, "manage.py", "qcluster"],
                    cwd=ROOT,
                    env=env,
                    stdout=log.open("wb"),
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        deadline = time.monotonic() + 120
        while not all("running." in log.read_text(errors="replace") for log in logs):
            dead = [p for p in started if p.poll() is not None]
            assert not dead and time.monotonic() < deadline, tails(logs)
            time.sleep(0.5)
        return env

    try:
        yield start, logs
    finally:
        for process in started:
            stop(process)


def tails(logs: list[Path]) -> str:
    return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}" for log in logs)


def emails_to(folder: Path) -> dict[str, int]:
    """How many messages the file backend wrote to each address."""
    counts: dict[str, int] = {}
    for path in folder.glob("*.log"):
        for address in re.findall(r"^To: (\S+)$", path.read_text(errors="replace"), re.M):
            counts[address] = counts.get(address, 0) + 1
    return counts


@pytest.mark.parametrize("broker", ["orm", pytest.param("redis", marks=pytest.mark.redis)])
def test_two_workers_on_one_queue_process_each_order_exactly_once(
    broker, workers, s3, make_job, make_image, tmp_path
):
    start, logs = workers
    jobs = [
        make_job(
            "paid",
            image=make_image(120, 100, title=f"Order {number}"),
            paid_at=timezone.now(),
            email=f"buyer{number}@example.com",
            payment_provider="dummy",
        )
        for number in range(ORDERS)
    ]
    env = start(broker)

    enqueued = subprocess.run(
        [
            sys.executable, "manage.py", "shell", "-c",
            ENQUEUE.format(job_ids=[str(job.pk) for job in jobs], deliveries=DELIVERIES),
        ],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert enqueued.returncode == 0, enqueued.stderr

    # Done when the workers have recorded a result for every task handed out.
    deadline = time.monotonic() + 240
    while Task.objects.filter(func=PROCESS_TASK).count() < ORDERS * DELIVERIES:
        assert time.monotonic() < deadline, tails(logs)
        time.sleep(0.5)

    failed = list(Task.objects.filter(func=PROCESS_TASK, success=False).values("result"))
    assert failed == [], failed
    sent = emails_to(tmp_path / "mail")
    for number, job in enumerate(jobs):
        job.refresh_from_db()
        assert job.status == "completed", (job.pk, job.status, job.last_error)
        moves = JobEvent.objects.filter(job=job, kind="transition")
        assert moves.filter(to_status="processing").count() == 1
        assert moves.filter(to_status="completed").count() == 1
        assert s3.keys(s3.private, prefix=f"wagtail_smi/{job.pk}/") == [job.result_path]
        assert sent.get(f"buyer{number}@example.com") == 1, sent
    assert len(s3.keys(s3.private)) == ORDERS
    assert PurchaseJob.objects.filter(status="completed").count() == ORDERS

    # Both processes took tasks from the queue.
    processed = [
        log.read_text(errors="replace").count(f"Processed '{PROCESS_TASK}'") for log in logs
    ]
    assert sum(processed) == ORDERS * DELIVERIES and all(processed), processed
