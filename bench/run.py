"""Gating storefront benchmark (``make bench``): a live server, ratios, goals.

The demo site runs under gunicorn (2 sync workers) on a throwaway PostgreSQL database
(``--db sqlite`` for SQLite), with bench-only baselines mounted next to its routes
(``bench/gate_urls.py``). Each target is measured against its baseline in the same run,
in interleaved rounds whose order alternates (A B, B A, ...), so drift of a loaded machine
falls on both. Each round gives a ratio; a row reports the medians, the median ratio and a
95 % t-interval over the per-round ratios, and meets its goal when the median ratio does.

Rows (goals from issue 15):

- price endpoint throughput against a bare Django JSON view (4 keep-alive connections);
- track-click throughput against the same view;
- a page with 24 sellable images against the same page with 24 plain image blocks, warm:
  median latency ratio, and equal query counts;
- a 20 MB download, 20 concurrent clients, against a bare ``FileResponse`` of the file;
- price request queries at 1, 24 and 200 images on the page (flat);
- the admin reports on generated orders and clicks (``bench/gate_reports.py``);
- the pipeline (``bench/gate_pipeline.py``), on real ``qcluster`` processes with the ORM
  broker, then the Redis broker (a queue name of its own): webhook → upscaler submission
  p50 against the fake Upsampler, and paid orders delivered per second (local upscaler)
  against django-q2 no-op tasks on the same broker and cluster;
- the local upscaler's peak memory (peak RSS of a fresh process, ``bench/upscale_memory.py``)
  for a 192 MP output against the raw RGB output bitmap (width × height × 3 bytes: the
  original is a JPEG, so the output is RGB; Pillow itself holds 4 bytes a pixel).

The last line is exactly ``bench: N of M goals met``; the exit status is 1 when a goal is
missed. ``--quick`` is a short smoke run (two rounds of one second).
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
# Two-sided 95 % quantiles of Student's t for 1..10 degrees of freedom (1.96 beyond).
T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228]

# Rows this bench does not measure yet: printed as "not measured", counted as missed.
NOT_MEASURED: list[tuple[str, str]] = []
# Webhook → submission goals per broker, in milliseconds.
SUBMISSION_GOALS_MS = {"orm": 1000, "redis": 100}
REDIS_URL = "redis://127.0.0.1:6379/0"
REPORTS = [
    ("revenue", "revenue report, all time, vs COUNT(*)"),
    ("items", "images and pages report, all time, vs COUNT(*)"),
    ("funnel", "funnel report, all time, vs COUNT(*)"),
]


class BenchError(RuntimeError):
    pass


# -- HTTP load ------------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection, reopened when the server closes it."""

    def __init__(self, port: int, headers: dict[str, str]):
        self.port = port
        self.headers = headers
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None) -> int:
        """Send, read the whole answer (discarded), return its size in bytes."""
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            try:
                self.conn.request(method, path, body=body, headers=self.headers)
                response = self.conn.getresponse()
                size = 0
                while chunk := response.read(1 << 20):
                    size += len(chunk)
            except (http.client.RemoteDisconnected, ConnectionError):
                self.close()
                if attempt:
                    raise
                continue
            if response.will_close:
                self.close()
            if response.status != 200:
                raise BenchError(f"{method} {path}: HTTP {response.status}")
            return size
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@dataclass
class Target:
    method: str
    path: str
    body: bytes | None = None


def throughput(
    port: int, headers: dict, target: Target, *, connections: int, seconds: float
) -> float:
    """Requests per second with ``connections`` clients looping for ``seconds``."""
    counts = [0] * connections
    errors: list[BaseException] = []
    start = time.perf_counter()
    deadline = start + seconds

    def loop(slot: int) -> None:
        conn = Connection(port, headers)
        try:
            while time.perf_counter() < deadline:
                conn.request(target.method, target.path, target.body)
                counts[slot] += 1
        except BaseException as exc:  # reported by the caller
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise BenchError(str(errors[0]))
    return sum(counts) / (time.perf_counter() - start)


def transfer(port: int, headers: dict, target: Target, *, clients: int, each: int) -> float:
    """Bytes per second with ``clients`` concurrent clients fetching ``each`` times."""
    received = [0] * clients
    errors: list[BaseException] = []

    def loop(slot: int) -> None:
        conn = Connection(port, headers)
        try:
            for _ in range(each):
                received[slot] += conn.request(target.method, target.path)
        except BaseException as exc:  # reported by the caller
            errors.append(exc)
        finally:
            conn.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise BenchError(str(errors[0]))
    return sum(received) / (time.perf_counter() - start)


def latency(port: int, headers: dict, target: Target, *, requests: int) -> float:
    """Median seconds per request, one connection, one request at a time."""
    conn = Connection(port, headers)
    samples = []
    try:
        for _ in range(requests):
            start = time.perf_counter()
            conn.request(target.method, target.path, target.body)
            samples.append(time.perf_counter() - start)
    finally:
        conn.close()
    return statistics.median(samples)


# -- Rows -----------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    goal: str
    unit: str = ""
    targets: list[float] = field(default_factory=list)
    baselines: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    met: bool = False
    note: str = ""

    def interval(self) -> tuple[float, float]:
        n = len(self.ratios)
        if n < 2:
            return (math.nan, math.nan)
        mean = statistics.fmean(self.ratios)
        t = T95[n - 2] if n - 2 < len(T95) else 1.96
        half = t * statistics.stdev(self.ratios) / math.sqrt(n)
        return (mean - half, mean + half)

    def measured(self) -> str:
        if not self.ratios:
            return self.note or "not measured"
        low, high = self.interval()
        return (
            f"{statistics.median(self.targets):.1f} vs {statistics.median(self.baselines):.1f}"
            f" {self.unit}; {statistics.median(self.ratios):.2f}× "
            f"(95 % CI {low:.2f}-{high:.2f}, {len(self.ratios)} rounds)"
        )


def interleaved(
    rounds: int, target: Callable[[], float], baseline: Callable[[], float]
) -> tuple[list[float], list[float]]:
    """Target and baseline alternately, the order swapped every round (A B, B A, ...)."""
    targets, baselines = [], []
    for i in range(rounds):
        if i % 2 == 0:
            targets.append(target())
            baselines.append(baseline())
        else:
            baselines.append(baseline())
            targets.append(target())
    return targets, baselines


def ratio_row(
    name: str,
    goal: str,
    unit: str,
    pairs: tuple[list[float], list[float]],
    *,
    at_least: float | None = None,
    at_most: float | None = None,
) -> Row:
    targets, baselines = pairs
    row = Row(name, goal, unit, targets, baselines)
    row.ratios = [t / b for t, b in zip(targets, baselines, strict=True)]
    ratio = statistics.median(row.ratios)
    row.met = (at_least is None or ratio >= at_least) and (at_most is None or ratio <= at_most)
    return row


# -- Environment ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pg_admin(sql: str) -> None:
    import psycopg  # only for --db postgresql

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{cpu}, {os.cpu_count()} CPUs, load {load}, Python {platform.python_version()}"


def wait_for(port: int, proc: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"gunicorn exited with status {proc.returncode}")
        try:
            Connection(port, {}).request("GET", "/bench/plain-json")
            return
        except (OSError, BenchError):
            time.sleep(0.3)
    raise BenchError("gunicorn did not answer in time")


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def csrf_headers(port: int) -> dict[str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/smi/v1/csrf")
    response = conn.getresponse()
    token = json.loads(response.read())["csrf_token"]
    cookie = response.getheader("Set-Cookie", "").split(";", 1)[0]
    conn.close()
    return {
        "Content-Type": "application/json",
        "Cookie": cookie,
        "X-CSRFToken": token,
        "User-Agent": "wagtail-smi-bench",
    }


# -- Main -----------------------------------------------------------------------------------


def measure(port: int, data: dict, args) -> list[Row]:
    quick = args.quick
    rounds = args.rounds or (2 if quick else 5)
    seconds = 1.0 if quick else 3.0
    page_requests = 10 if quick else 40
    downloads = 1 if quick else 3  # per client and round
    headers = csrf_headers(port)
    bare = Target("POST", "/bench/plain-json", b"{}")
    prices = Target("POST", "/smi/v1/calculate-all-prices", json.dumps(data["price_body"]).encode())
    click = Target("POST", "/smi/v1/track-click", json.dumps(data["price_body"]).encode())
    sellable = Target("GET", data["sellable_url"])
    plain = Target("GET", data["plain_url"])
    download = Target("GET", data["download_url"])
    plain_file = Target("GET", "/bench/plain-file")

    # Warm both workers: caches, renditions, templates, connections.
    for target in (bare, prices, click, sellable, plain):
        throughput(port, headers, target, connections=4, seconds=0.5)
    transfer(port, headers, download, clients=2, each=1)
    transfer(port, headers, plain_file, clients=2, each=1)

    def rps(target: Target) -> Callable[[], float]:
        return lambda: throughput(port, headers, target, connections=4, seconds=seconds)

    def ms(target: Target) -> Callable[[], float]:
        return lambda: latency(port, headers, target, requests=page_requests) * 1000

    def mbps(target: Target) -> Callable[[], float]:
        return lambda: transfer(port, headers, target, clients=20, each=downloads) / 1e6

    rows = []
    print("price endpoint ...", file=sys.stderr)
    rows.append(
        ratio_row(
            "price endpoint throughput vs bare JSON view",
            "≥ 0.80×",
            "req/s",
            interleaved(rounds, rps(prices), rps(bare)),
            at_least=0.80,
        )
    )
    print("track-click ...", file=sys.stderr)
    rows.append(
        ratio_row(
            "track-click throughput vs bare JSON view",
            "≥ 0.70×",
            "req/s",
            interleaved(rounds, rps(click), rps(bare)),
            at_least=0.70,
        )
    )
    print("pages ...", file=sys.stderr)
    rows.append(
        ratio_row(
            "24 sellable vs 24 plain images, warm (latency)",
            "≤ 1.10×",
            "ms",
            interleaved(rounds, ms(sellable), ms(plain)),
            at_most=1.10,
        )
    )
    pq = data["page_queries"]
    rows.append(
        Row(
            "24 sellable vs 24 plain images, warm (queries)",
            "equal",
            met=pq["sellable"] <= pq["plain"],
            note=f"{pq['sellable']} vs {pq['plain']} queries",
        )
    )
    print("downloads ...", file=sys.stderr)
    rows.append(
        ratio_row(
            "download 20 MB, 20 concurrent, vs bare FileResponse",
            "≥ 0.90×",
            "MB/s",
            interleaved(rounds, mbps(download), mbps(plain_file)),
            at_least=0.90,
        )
    )
    counts = data["price_queries"]
    cold = {counts[size]["cold"] for size in counts}
    warm = {counts[size]["warm"] for size in counts}
    rows.append(
        Row(
            "price request queries at 1, 24, 200 images",
            "flat",
            met=len(cold) == 1 and len(warm) == 1,
            note="cold "
            + "/".join(str(counts[s]["cold"]) for s in counts)
            + ", warm "
            + "/".join(str(counts[s]["warm"]) for s in counts),
        )
    )
    return rows


def report_rows(env: dict, workdir: Path, args) -> list[Row]:
    """The admin reports on generated orders and clicks (PostgreSQL only)."""
    orders, clicks = (10_000, 100_000) if args.quick else (1_000_000, 10_000_000)
    scale = f"{orders:,} orders / {clicks:,} clicks".replace(",", " ")
    if args.db != "postgresql":
        return [
            Row(f"{name} ({scale})", "≤ 3×", note="not measured on SQLite (counts as missed)")
            for _key, name in REPORTS
        ]
    print(f"reports: generating {scale} ...", file=sys.stderr)
    out = workdir / "reports.json"
    rounds = args.rounds or (2 if args.quick else 3)
    command = [sys.executable, str(ROOT / "bench" / "gate_reports.py")]
    command += [str(orders), str(clicks), str(rounds), str(out)]
    if subprocess.run(command, env=env, cwd=ROOT).returncode:
        return [
            Row(f"{name} ({scale})", "≤ 3×", note="failed (error above; counts as missed)")
            for _key, name in REPORTS
        ]
    found = json.loads(out.read_text())
    print(f"reports: data generated in {found['generated_seconds']:.0f} s", file=sys.stderr)
    return [
        ratio_row(
            f"{name} ({scale})",
            "≤ 3×",
            "ms",
            (found[key]["targets"], found[key]["baselines"]),
            at_most=3.0,
        )
        for key, name in REPORTS
    ]


def redis_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


def pipeline_rows(env: dict, workdir: Path, args) -> list[Row]:
    """Webhook → submission and pipeline throughput, per broker, on real clusters."""
    rounds = args.rounds or (2 if args.quick else 5)
    orders = 10 if args.quick else 40
    rows = []
    for broker, label in (("orm", "ORM"), ("redis", "Redis")):
        latency_name = f"webhook → upscaler submission p50 ({label} broker)"
        goal_ms = SUBMISSION_GOALS_MS[broker]
        latency_goal = f"≤ {goal_ms // 1000} s" if goal_ms >= 1000 else f"≤ {goal_ms} ms"
        throughput_name = f"pipeline throughput vs django-q2 no-op ({label} broker)"
        if broker == "redis" and not redis_reachable():
            note = "not measured: no Redis at 127.0.0.1:6379 (counts as missed)"
            rows += [
                Row(latency_name, latency_goal, note=note),
                Row(throughput_name, "≥ 0.80×", note=note),
            ]
            continue
        print(f"pipeline, {broker} broker ...", file=sys.stderr)
        out = workdir / f"pipeline-{broker}.json"
        broker_env = {
            **env,
            "SMI_QUEUE_BROKER": broker,
            "SMI_QUEUE_NAME": f"smi-bench-{os.getpid()}-{broker}",
            "REDIS_URL": REDIS_URL,
        }
        command = [sys.executable, str(ROOT / "bench" / "gate_pipeline.py")]
        command += [str(rounds), str(orders), str(out)]
        if subprocess.run(command, env=broker_env, cwd=ROOT).returncode:
            note = "failed (error above; counts as missed)"
            rows += [
                Row(latency_name, latency_goal, note=note),
                Row(throughput_name, "≥ 0.80×", note=note),
            ]
            continue
        found = json.loads(out.read_text())
        samples = found["latency_ms"]
        p50 = statistics.median(samples)
        p90 = sorted(samples)[max(math.ceil(len(samples) * 0.9) - 1, 0)]
        rows.append(
            Row(
                latency_name,
                latency_goal,
                met=p50 <= goal_ms,
                note=f"{p50:.0f} ms (p90 {p90:.0f} ms, {len(samples)} orders, "
                f"{found['workers']} worker{'s' if found['workers'] != 1 else ''}"
                + (f", poll {found['poll']} s)" if broker == "orm" else ")"),
            )
        )
        rows.append(
            ratio_row(
                f"{throughput_name}, {orders} orders",
                "≥ 0.80×",
                "/s",
                (found["targets"], found["baselines"]),
                at_least=0.80,
            )
        )
    return rows


def memory_row() -> Row:
    """Peak RSS (``ru_maxrss``, the kernel's VmHWM) of a fresh process upscaling a
    2000×1500 JPEG 8x, to 192 MP."""
    # bench/ is this script's own folder, so its sibling imports as a top-level module.
    from upscale_memory import measure as measure_memory

    width, height, factor = 2000, 1500, 8
    pixels = width * height * factor * factor
    name = f"local upscaler peak memory, {pixels / 1e6:.0f} MP, vs raw RGB bitmap"
    print(f"upscaler memory, {pixels / 1e6:.0f} MP ...", file=sys.stderr)
    try:
        found = measure_memory("strips", width, height, factor, "JPEG")
    except (subprocess.CalledProcessError, ValueError) as exc:
        return Row(name, "≤ 2×", note=f"failed ({exc}; counts as missed)")
    raw_mib = pixels * 3 / (1024 * 1024)
    peak = found["after_mb"]
    return Row(
        name,
        "≤ 2×",
        met=peak / raw_mib <= 2.0,
        note=f"{peak:.0f} vs {raw_mib:.0f} MiB; {peak / raw_mib:.2f}× (one fresh process)",
    )


def run(args) -> int:
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="smi-bench-"))
    database = f"smi_bench_{os.getpid()}"
    if args.db == "postgresql":
        pg_admin(f'CREATE DATABASE "{database}"')
        url = f"postgresql://postgres@127.0.0.1:5432/{database}"
    else:
        url = f"sqlite:///{workdir / 'db.sqlite3'}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.gate_settings",
        "DJANGO_DEBUG": "1",
        "DATABASE_URL": url,
        "SMI_DEMO_VAR_DIR": str(workdir),
        "SMI_MEDIA_ROOT": str(workdir / "media"),
        "SMI_PRIVATE_ROOT": str(workdir / "private"),
        "SMI_RATE_LIMITS": "0",
        "SMI_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    server = None
    try:
        print("building content ...", file=sys.stderr)
        data_file = workdir / "data.json"
        subprocess.run(
            [sys.executable, str(ROOT / "bench" / "gate_data.py"), str(data_file)],
            env=env,
            cwd=ROOT,
            check=True,
        )
        data = json.loads(data_file.read_text())
        env["SMI_BENCH_FILE"] = data["download_file"]
        port = free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "demo_site.wsgi:application",
                "--workers",
                "2",
                "--bind",
                f"127.0.0.1:{port}",
                "--log-level",
                "warning",
                "--timeout",
                "120",
            ],
            env=env,
            cwd=ROOT,
        )
        wait_for(port, server)
        rows = measure(port, data, args)
        stop(server)
        server = None
        rows += report_rows(env, workdir, args)
        rows += pipeline_rows(env, workdir, args)
        rows.append(memory_row())
        for name, goal in NOT_MEASURED:
            rows.append(Row(name, goal, note="not measured (counts as missed)"))
    finally:
        if server is not None:
            stop(server)
        if args.db == "postgresql":
            pg_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        shutil.rmtree(workdir, ignore_errors=True)

    met = sum(row.met for row in rows)
    print(f"wagtail-smi gating bench · {args.db} · gunicorn, 2 sync workers")
    print(f"machine: {machine()}")
    print(f"wall time: {time.monotonic() - started:.0f} s")
    width = max(len(row.name) for row in rows)
    print(f"| {'Row':{width}} | {'Goal':26} | Measured | Met |")
    print(f"|{'-' * (width + 2)}|{'-' * 28}|---|---|")
    for row in rows:
        mark = "yes" if row.met else "no"
        print(f"| {row.name:{width}} | {row.goal:26} | {row.measured()} | {mark} |")
    print(f"bench: {met} of {len(rows)} goals met")
    return 0 if met == len(rows) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--quick", action="store_true", help="short smoke run (2 rounds of 1 s)")
    parser.add_argument("--rounds", type=int, default=0, help="rounds per row (default 5)")
    args = parser.parse_args()
    try:
        return run(args)
    except (BenchError, OSError, subprocess.CalledProcessError) as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        print("bench: 0 of 0 goals met")
        return 2


if __name__ == "__main__":
    sys.exit(main())
