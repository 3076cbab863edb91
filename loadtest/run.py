"""Load and generated hostile input against a live shop (``make load``, and CI).

    python loadtest/run.py --stack postgres-redis --fuzz --load
    python loadtest/run.py --stack sqlite-orm --fuzz

Starts the shop (``loadtest/stack.py``: gunicorn with 2 workers, the queue's workers, the
local Stripe and Upsampler), then:

``--fuzz``  schemathesis, with the shop's own OpenAPI document (``/smi/v1/openapi.json``):
            generated valid and invalid requests to every operation; no answer may be a
            5xx and every answer must match the document.
``--load``  locust, headless: ``--users`` clients (200) for at most ``--run-time`` seconds
            and ``--max-requests`` requests (``loadtest/locustfile.py``); then waits for
            the queue to settle and checks the outcome: ``smi_check`` finds nothing, no 5xx
            (429s are the rate limits working), no order submitted to the upscaler twice,
            no payment refunded twice.

Each writes its figures as JSON into ``--results`` (default ``$SMI_CI_RESULTS``):
``schemathesis-<stack>.json`` and ``load-<stack>.json``, which ``.ci/summary.py`` tabulates.
Exits non-zero when any check fails. Everything runs on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from http.cookies import SimpleCookie
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtest.stack import BIN, ROOT, STACKS, LiveShop, double_refunds  # noqa: E402

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "unsupported_method",
    ]
)


def csrf_pair(base_url: str) -> tuple[str, str]:
    """A CSRF token and its cookie, as the modal gets them."""
    request = urllib.request.Request(base_url + "/smi/v1/csrf")
    with urllib.request.urlopen(request, timeout=10) as answer:
        token = json.load(answer)["csrf_token"]
        cookie = SimpleCookie(answer.headers.get("Set-Cookie", ""))
    name = next(iter(cookie))
    return token, f"{name}={cookie[name].value}"


def run_fuzz(shop: LiveShop, results: Path, *, examples: int, seconds: int) -> dict:
    token, cookie = csrf_pair(shop.base_url)
    report = shop.log_dir / f"{shop.stack}-schemathesis.json"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SCHEMATHESIS_HOOKS": "loadtest.fuzz_hooks",
        "SMI_FUZZ_OFFERS": json.dumps(shop.offers),
    }
    command = [
        str(BIN / "st"),
        "run",
        f"{shop.base_url}/smi/v1/openapi.json",
        f"--url={shop.base_url}",
        f"--checks={CHECKS}",
        f"--max-examples={examples}",
        f"--max-time={seconds}",
        "--workers=2",
        "--seed=14",
        "--request-timeout=30",
        "--header",
        f"X-CSRFToken: {token}",
        "--header",
        f"Cookie: {cookie}",
        "--report=json",
        f"--report-json-path={report}",
    ]
    print(f"\n--- schemathesis on {shop.stack} ---", flush=True)
    done = subprocess.run(command, cwd=ROOT, env=env, timeout=seconds + 300)
    figures = schemathesis_figures(report)
    figures["exit_code"] = done.returncode
    # Every 5xx gunicorn answered, schemathesis' own check aside.
    figures["server_errors"] = shop.server_errors()
    figures["failures"] += figures["server_errors"]
    if done.returncode != 0 and figures["failures"] == 0:
        figures["failures"] = 1  # it failed in a way the report does not count
    (results / f"schemathesis-{shop.stack}.json").write_text(json.dumps(figures, indent=2))
    return figures


def schemathesis_figures(report: Path) -> dict:
    """Cases generated and failures found, from schemathesis' JSON report."""
    if not report.exists():
        return {"cases": 0, "failures": 1, "error": "no report"}
    data = json.loads(report.read_text())
    cases = data.get("test_cases") or {}
    return {
        "cases": cases.get("generated", 0),
        "failures": cases.get("unique_failures", 0) + len(data.get("errors") or []),
        "operations": (data.get("operations") or {}).get("tested", 0),
        "warnings": sorted(k for k, v in (data.get("warnings") or {}).items() if v),
        "report": str(report),
    }


def run_load(shop: LiveShop, results: Path, *, users: int, seconds: int, max_requests: int):
    stats = shop.log_dir / f"{shop.stack}-locust.json"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SMI_LOAD_STRIPE": shop.stripe.base_url,
        "SMI_LOAD_OFFERS": json.dumps(shop.offers),
        "SMI_LOAD_MAX_REQUESTS": str(max_requests),
        "SMI_LOAD_STATS": str(stats),
    }
    command = [
        str(BIN / "locust"),
        "--locustfile=loadtest/locustfile.py",
        "--headless",
        f"--host={shop.base_url}",
        f"--users={users}",
        f"--spawn-rate={max(users // 4, 1)}",
        f"--run-time={seconds}s",
        "--stop-timeout=10",
        "--only-summary",
        "--loglevel=WARNING",
    ]
    print(f"\n--- locust on {shop.stack}: {users} users, {seconds} s ---", flush=True)
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, env=env, timeout=seconds + 300)
    elapsed = time.monotonic() - started
    load = json.loads(stats.read_text()) if stats.exists() else {}
    print("\nWaiting for the queue to settle...", flush=True)
    jobs = shop.wait_for_settled(120)
    check = shop.manage("smi_check", "--format", "json")
    try:
        violations = json.loads(check.stdout)["count"]
    except (ValueError, KeyError):
        violations = -1
    submitted_twice = sorted(o for o, n in shop.upsampler.submissions_per_job().items() if n > 1)
    refunded_twice = double_refunds(shop.stripe)
    statuses = load.get("statuses", {})
    server_errors = sum(n for s, n in statuses.items() if s.isdigit() and int(s) >= 500)
    figures = {
        "requests": load.get("requests", 0),
        "failures": load.get("failures", 0) + (0 if done.returncode in (0, 1) else 1),
        "non_429_5xx": max(server_errors, shop.server_errors()),
        "violations": (
            (violations if violations >= 0 else 1) + len(submitted_twice) + len(refunded_twice)
        ),
        # Paid orders still on their way when the wait ended (a slow queue, not a fault).
        "unsettled": sum(jobs.get(s, 0) for s in ("paid", "processing")),
        "rate_limited": int(statuses.get("429", 0)),
        "smi_check": violations,
        "smi_check_output": check.stdout[-2000:] if check.returncode else "",
        "double_submissions": submitted_twice,
        "double_refunds": refunded_twice,
        "jobs": jobs,
        "upscaler_submissions": len(shop.upsampler.submits),
        "stripe_refunds": len(shop.stripe.refunds),
        "users": users,
        "seconds": round(elapsed, 1),
        **{k: load.get(k) for k in ("rps", "median_ms", "p95_ms", "statuses", "outcomes")},
        "errors": load.get("errors", []),
    }
    (results / f"load-{shop.stack}.json").write_text(json.dumps(figures, indent=2))
    return figures


def ok_load(figures: dict) -> bool:
    return not (figures["failures"] or figures["non_429_5xx"] or figures["violations"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", choices=STACKS, required=True)
    parser.add_argument("--fuzz", action="store_true", help="run schemathesis")
    parser.add_argument("--load", action="store_true", help="run the locust load test")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--run-time", type=int, default=40, help="seconds of load, at most")
    parser.add_argument("--max-requests", type=int, default=15000)
    parser.add_argument("--examples", type=int, default=60, help="schemathesis, per operation")
    parser.add_argument("--fuzz-time", type=int, default=20, help="schemathesis, seconds")
    parser.add_argument("--results", default=os.environ.get("SMI_CI_RESULTS") or "")
    args = parser.parse_args()
    if not (args.fuzz or args.load):
        parser.error("say --fuzz, --load or both")
    results = Path(args.results or tempfile.mkdtemp(prefix="smi-results-"))
    results.mkdir(parents=True, exist_ok=True)
    ok = True
    started = time.monotonic()
    with LiveShop(args.stack, log_dir=results / "logs") as shop:
        print(
            f"Shop on {shop.base_url} ({args.stack}) up in {time.monotonic() - started:.0f} s,"
            f" logs in {shop.log_dir}",
            flush=True,
        )
        if args.fuzz:
            fuzz = run_fuzz(shop, results, examples=args.examples, seconds=args.fuzz_time)
            print(json.dumps({k: fuzz[k] for k in ("cases", "failures")}), flush=True)
            ok &= fuzz["failures"] == 0
        if args.load:
            load = run_load(
                shop,
                results,
                users=args.users,
                seconds=args.run_time,
                max_requests=args.max_requests,
            )
            print(json.dumps(load, indent=2), flush=True)
            ok &= ok_load(load)
    print(f"Results in {results}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
