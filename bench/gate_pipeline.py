"""The pipeline rows of the gating bench (run by ``bench/run.py``, not on its own).

Real ``qcluster`` processes on the bench's throwaway database, with the broker the
environment names (``SMI_QUEUE_BROKER``: ``orm`` or ``redis``, on a queue name of its own):

- **webhook → submission**: the fake Upsampler (``tests/upsampler_server.py``) runs in this
  process and the cluster submits to it. One order at a time is marked paid here, as the
  payment webhook does (``operations.mark_paid``: the transition, then the task enqueued
  on commit), and the time until the fake Upsampler has the submission is taken; p50 and
  p90 over the orders.
- **pipeline throughput**: a cluster with the local upscaler (a tiny original, so the
  pipeline's own work dominates: claim, upscale, licence metadata, storage, token, email).
  A round enqueues N paid orders and times them until all N are ``completed``, against N
  django-q2 no-op tasks on the same broker and cluster until their N results are saved, in
  interleaved rounds (A B, B A, ...).

Arguments: rounds, orders per round, the output JSON file. ``noop`` is the baseline task,
which is why this module does nothing at import.
"""

from __future__ import annotations

import io
import json
import logging
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LATENCY_ORDERS = 15


def noop(*args) -> None:
    """The baseline task: the queue's own cost and nothing else."""


def setup() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.gate_settings")
    import django

    django.setup()
    logging.getLogger("django-q").setLevel(logging.WARNING)  # one line per enqueued task


def start_cluster(env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "qcluster"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_cluster(cluster: subprocess.Popen) -> None:
    cluster.terminate()
    try:
        cluster.wait(timeout=60)
    except subprocess.TimeoutExpired:
        cluster.kill()
        cluster.wait()


def wait(condition, *, seconds: float, what: str, step: float = 0.002) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(step)


def noop_round(count: int) -> float:
    """Tasks per second for ``count`` no-op tasks, enqueued to results saved."""
    from django_q.models import Task
    from django_q.tasks import async_task

    group = f"bench-noop-{uuid.uuid4().hex}"
    start = time.perf_counter()
    for _ in range(count):
        async_task("bench.gate_pipeline.noop", group=group)
    wait(
        lambda: Task.objects.filter(group=group).count() >= count,
        seconds=300,
        what="the no-op tasks",
        step=0.01,
    )
    return count / (time.perf_counter() - start)


def make_orders(image, status: str, count: int) -> list:
    from django.utils import timezone
    from wagtail.models import Site

    from wagtail_smi.models import PurchaseJob

    site = Site.objects.get(is_default_site=True)
    paid = status == "paid"
    # One at a time: ``save()`` fills in the keys and secrets an order carries.
    return [
        PurchaseJob.objects.create(
            site=site,
            image=image,
            image_ref=image.pk,
            image_title=image.title,
            page_ref=0,
            resolution="4x",
            factor=4,
            original_width=image.width,
            original_height=image.height,
            output_width=image.width * 4,
            output_height=image.height * 4,
            amount_cents=50,
            currency="usd",
            status=status,
            paid_at=timezone.now() if paid else None,
            email="bench@example.com",
            payment_provider="dummy",
        )
        for _ in range(count)
    ]


def pipeline_round(image, count: int) -> float:
    """Orders per second for ``count`` paid orders, enqueued to delivered."""
    from wagtail_smi import queue
    from wagtail_smi.models import PurchaseJob

    jobs = make_orders(image, "paid", count)
    ids = [job.pk for job in jobs]
    start = time.perf_counter()
    for job_id in ids:
        queue.enqueue_processing(job_id)
    wait(
        lambda: PurchaseJob.objects.filter(pk__in=ids, status="completed").count() >= count,
        seconds=600,
        what="the orders to be delivered",
        step=0.01,
    )
    return count / (time.perf_counter() - start)


def small_image():
    from django.core.files.images import ImageFile
    from wagtail.images import get_image_model

    from tests.conftest import make_image_file

    image = get_image_model()(title="Pipeline bench")
    image.file = ImageFile(io.BytesIO(make_image_file(32, 24)), name="pipeline-bench.jpg")
    image.save()
    return image


def latency(env: dict, image, orders: int) -> list[float]:
    """Seconds from ``mark_paid`` to the submission reaching the fake Upsampler."""
    from tests.upsampler_server import FakeUpsampler
    from wagtail_smi.operations import mark_paid

    with FakeUpsampler(api_key="bench") as upsampler:
        upsampler.pending_polls = None  # the orders stay with the upscaler meanwhile
        cluster_env = {
            **env,
            "SMI_UPSCALER": "upsampler",
            "SMI_UPSAMPLER_API_KEY": "bench",
            "SMI_UPSAMPLER_API_BASE": upsampler.api_base,
        }
        cluster = start_cluster(cluster_env)
        try:
            samples = []
            jobs = make_orders(image, "awaiting_payment", orders + 2)
            for i, job in enumerate(jobs):
                before = len(upsampler.submits)
                start = time.perf_counter()
                mark_paid(job.pk, provider="dummy", reference=f"bench-{job.pk}")
                wait(
                    lambda before=before: len(upsampler.submits) > before,
                    seconds=120,
                    what="the submission",
                )
                if i >= 2:  # the first two warm the workers (imports, connections)
                    samples.append(time.perf_counter() - start)
                time.sleep(0.05)
        finally:
            stop_cluster(cluster)
    return samples


def main(rounds: int, count: int, out: Path) -> None:
    setup()
    from django.conf import settings
    from django.db import connection

    from wagtail_smi import queue

    env = {**os.environ, "SMI_UPSCALER": "local", "SMI_ALLOW_PRIVATE_URLS": "1"}
    env.pop("SMI_BENCH_FILE", None)
    image = small_image()
    broker = "redis" if "redis" in settings.Q_CLUSTER else "orm"
    samples = latency(env, image, LATENCY_ORDERS if count >= 20 else 6)
    print(
        f"pipeline ({broker}): submission p50 {statistics.median(samples) * 1000:.0f} ms",
        file=sys.stderr,
    )

    cluster = start_cluster(env)
    try:
        # Warm: both workers import the pipeline and open their connections.
        pipeline_round(image, 4)
        noop_round(4)
        targets, baselines = [], []
        for i in range(rounds):
            pair = [lambda: pipeline_round(image, count), lambda: noop_round(count)]
            first, second = (pair[0], pair[1]) if i % 2 == 0 else (pair[1], pair[0])
            a, b = first(), second()
            target, baseline = (a, b) if i % 2 == 0 else (b, a)
            targets.append(target)
            baselines.append(baseline)
    finally:
        stop_cluster(cluster)
        if broker == "redis":
            from django_q.brokers import get_broker

            get_broker().delete_queue()
    connection.close()
    out.write_text(
        json.dumps(
            {
                "broker": broker,
                "queue": settings.Q_CLUSTER["name"],
                "poll": settings.Q_CLUSTER.get("poll"),
                "workers": settings.Q_CLUSTER["workers"],
                "latency_ms": [s * 1000 for s in samples],
                "targets": targets,
                "baselines": baselines,
                "task": queue.PROCESS_TASK,
            }
        )
    )


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]))
