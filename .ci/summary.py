"""One table of CI's reliability figures, from the JSON files its steps wrote.

    python .ci/summary.py [DIR]        (DIR defaults to $SMI_CI_RESULTS)

Each producer writes ``<kind>-<stack>.json`` into DIR: ``faults`` ({"injected", "survived"},
the fault tests), ``load`` ({"requests", "failures", "non_429_5xx", "violations"},
``loadtest/run.py --load``) and ``schemathesis`` ({"cases", "failures"}, ``--fuzz``).
Rows are the figures, columns the stacks; a figure nobody wrote says "not run". Exits 1
when any count of things that went wrong is above 0 (or a fault was not survived).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

STACKS = ("sqlite-orm", "postgres-redis")
# (file kind, key, row label, counts things that went wrong)
ROWS = [
    ("faults", "injected", "faults injected", False),
    ("faults", "survived", "faults survived", False),
    ("load", "requests", "load: requests sent", False),
    ("load", "failures", "load: requests failed", True),
    ("load", "non_429_5xx", "load: 5xx answers", True),
    ("load", "violations", "load: invariant violations", True),
    ("schemathesis", "cases", "schemathesis: cases", False),
    ("schemathesis", "failures", "schemathesis: failures", True),
]
NOT_RUN = "not run"


def read(folder: Path, kind: str, stack: str) -> dict | None:
    path = folder / f"{kind}-{stack}.json"
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return {"unreadable": True}
    return data if isinstance(data, dict) else {"unreadable": True}


def table(folder: Path) -> tuple[list[list[str]], list[str]]:
    """The table's rows (label first) and what went wrong."""
    rows, problems = [], []
    for kind, key, label, bad_when_positive in ROWS:
        row = [label]
        for stack in STACKS:
            data = read(folder, kind, stack)
            if data is None:
                row.append(NOT_RUN)
                continue
            value = data.get(key)
            if not isinstance(value, int) or isinstance(value, bool):
                row.append("unreadable")
                problems.append(f"{kind}-{stack}.json has no count {key!r}")
                continue
            row.append(str(value))
            if bad_when_positive and value > 0:
                problems.append(f"{label} on {stack}: {value}")
        rows.append(row)
    for stack in STACKS:
        faults = read(folder, "faults", stack)
        if faults and faults.get("survived") != faults.get("injected"):
            problems.append(
                f"faults on {stack}: {faults.get('survived')} of {faults.get('injected')} survived"
            )
    return rows, problems


def render(rows: list[list[str]]) -> str:
    header = ["", *STACKS]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "-+-".join("-" * w for w in widths)

    def cells(row):
        return " | ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )

    return "\n".join([cells(header), line, *(cells(r) for r in rows)])


def main(argv: list[str]) -> int:
    folder = Path(argv[1] if len(argv) > 1 else os.environ.get("SMI_CI_RESULTS", ""))
    if not str(folder) or not folder.is_dir():
        print("No results folder: pass one, or set SMI_CI_RESULTS.", file=sys.stderr)
        return 2
    rows, problems = table(folder)
    print(render(rows))
    if problems:
        print("\nFAILED: " + "; ".join(problems))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
