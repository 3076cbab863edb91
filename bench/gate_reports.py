"""Report rows of the gating bench (run by ``bench/run.py`` on PostgreSQL, not on its own).

Fills the throwaway database with orders and clicks made by ``generate_series`` (in date
order over the past year, spread over the bench's 24 images and a customer per ten
orders), builds the reports' daily rollups as the sweeper would on its first run
(``analytics.refresh_rollups``; timed apart), then times the admin reports' queries
against ``SELECT COUNT(*)`` on the same tables, in interleaved rounds (order swapped each
round). Arguments: orders, clicks, rounds, output JSON file.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.gate_settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

from wagtail_smi import analytics  # noqa: E402
from wagtail_smi.models import (  # noqa: E402
    ImageClick,
    JobStatus,
    PurchaseJob,
    ReportCustomer,
    ReportItemCustomer,
    ReportRollup,
)

SPAN = "(now() - interval '365 days') + g * (interval '365 days' / {n})"


def fill(model, template_pk, count: int, overrides: dict[str, str]) -> None:
    """Copy one row ``count`` times in SQL, with ``overrides`` (column → SQL over ``g``);
    unique columns become NULL or a per-row value."""
    table = model._meta.db_table
    columns, values = [], []
    for f in model._meta.concrete_fields:
        column = f.column
        if f.primary_key and column not in overrides:
            continue  # serial
        columns.append(connection.ops.quote_name(column))
        if column in overrides:
            values.append(overrides[column])
        elif f.unique:
            values.append("NULL" if f.null else f"'bench-{column}-' || g")
        else:
            values.append(f"t.{connection.ops.quote_name(column)}")
    pk = connection.ops.quote_name(model._meta.pk.column)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) "
            f"SELECT {', '.join(values)} FROM {table} t, generate_series(1, {count}) g "
            f"WHERE t.{pk} = %s ORDER BY g",
            [template_pk],
        )
        cursor.execute(f"ANALYZE {table}")


def generate(orders: int, clicks: int) -> None:
    job = PurchaseJob.objects.get(status=JobStatus.COMPLETED)
    at = SPAN.format(n=orders)
    fill(
        PurchaseJob,
        job.pk,
        orders,
        {
            "id": "gen_random_uuid()",
            "status": f"CASE WHEN mod(g, 10) = 0 THEN '{JobStatus.ABANDONED}' "
            f"WHEN mod(g, 20) = 1 THEN '{JobStatus.REFUNDED}' ELSE '{JobStatus.COMPLETED}' END",
            "image_ref": "t.image_ref + mod(g, 24)",
            "amount_cents": "100 + (mod(g, 7)) * 50",
            "refund_amount_cents": "CASE WHEN mod(g, 20) = 1 THEN 100 + (mod(g, 7)) * 50 ELSE 0 END",
            "email": "'c' || (g / 10) || '@example.com'",
            "created_at": at,
            "updated_at": at,
            "paid_at": f"CASE WHEN mod(g, 10) = 0 THEN NULL ELSE {at} END",
            "completed_at": f"CASE WHEN mod(g, 10) = 0 THEN NULL ELSE {at} END",
            "abandoned_at": f"CASE WHEN mod(g, 10) = 0 THEN {at} END",
            "refunded_at": f"CASE WHEN mod(g, 20) = 1 THEN {at} END",
            "download_limit": "NULL",
        },
    )
    click = ImageClick.objects.create(image_ref=job.image_ref, page_ref=job.page_ref)
    fill(
        ImageClick,
        click.pk,
        clicks,
        {"image_ref": "t.image_ref + mod(g, 24)", "created_at": SPAN.format(n=clicks)},
    )


def count(*models) -> None:
    with connection.cursor() as cursor:
        for model in models:
            cursor.execute(f"SELECT COUNT(*) FROM {model._meta.db_table}")
            cursor.fetchone()


def revenue(period) -> None:
    analytics.series(period, analytics.default_granularity(period))
    analytics.compare(period)
    for name in analytics.BREAKDOWNS:
        analytics.breakdown(period, name)


def items(period) -> None:
    analytics.items(period, "image")
    analytics.items(period, "page")


def funnel(period) -> None:
    analytics.funnel(period)
    analytics.funnel_resolutions(period)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def main(orders: int, clicks: int, rounds: int, out: Path) -> None:
    start = time.perf_counter()
    generate(orders, clicks)
    generated = time.perf_counter() - start
    with connection.cursor() as cursor:
        # A bulk load outruns autovacuum: summarise the new BRIN ranges as it would.
        cursor.execute("SELECT brin_summarize_new_values('smi_click_created_brin')")
    start = time.perf_counter()
    days = analytics.refresh_rollups()
    rolled_up = time.perf_counter() - start
    with connection.cursor() as cursor:
        for model in (ReportRollup, ReportCustomer, ReportItemCustomer):
            cursor.execute(f"ANALYZE {model._meta.db_table}")
    print(f"reports: {days} days rolled up in {rolled_up:.1f} s", file=sys.stderr)
    period = analytics.resolve_period("all")
    rows = {
        "revenue": (lambda: revenue(period), lambda: count(PurchaseJob)),
        "items": (lambda: items(period), lambda: count(PurchaseJob, ImageClick)),
        "funnel": (lambda: funnel(period), lambda: count(PurchaseJob, ImageClick)),
    }
    results = {}
    for key, (target, baseline) in rows.items():
        target(), baseline()  # warm
        targets, baselines = [], []
        for i in range(rounds):
            if i % 2 == 0:
                targets.append(timed(target))
                baselines.append(timed(baseline))
            else:
                baselines.append(timed(baseline))
                targets.append(timed(target))
        results[key] = {"targets": targets, "baselines": baselines}
    results["generated_seconds"] = generated
    results["rollup_seconds"] = rolled_up
    out.write_text(json.dumps(results))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
