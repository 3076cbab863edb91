"""``manage.py smi_check``: every order and stored file that breaks one of the shop's
invariants (``wagtail_smi.invariants``), private storage included.

    manage.py smi_check                 a table for people
    manage.py smi_check --json          {"count": n, "violations": [...]} for programs
                                        (also ``--format json``)
    manage.py smi_check --no-files      the database only (no storage listing)

Exits with status 1 when anything is found, so CI, a deploy script or monitoring can act
on it; 0 for a healthy shop; 2 when the check itself could not run (the database or the
private storage unreachable).
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from ... import invariants

COLUMNS = ("kind", "order", "since", "what")


class Command(BaseCommand):
    help = (
        "List the orders and stored files that break an invariant (late paid orders, "
        "deliveries without a file, refunds without an id or over the amount paid, double "
        "submissions, unowned files); exit 1 when there are any."
    )

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=["table", "json"], default="table")
        parser.add_argument(
            "--json",
            action="store_const",
            const="json",
            dest="format",
            help="Same as --format json.",
        )
        parser.add_argument(
            "--no-files",
            action="store_true",
            help="Check the database only, without listing private storage.",
        )

    def handle(self, *args, **options):
        try:
            found = invariants.find_violations(files=not options["no_files"])
        except Exception as exc:  # said plainly, with the exit code monitoring expects
            raise CommandError(
                f"The check could not run: {exc.__class__.__name__}: {exc}", returncode=2
            ) from exc
        if options["format"] == "json":
            self.stdout.write(
                json.dumps(
                    {"count": len(found), "violations": [v.as_dict() for v in found]},
                    indent=2,
                )
            )
        else:
            self.write_table(found)
        if found:
            raise CommandError(f"{len(found)} invariant violation(s).", returncode=1)

    def write_table(self, found) -> None:
        if not found:
            self.stdout.write(self.style.SUCCESS("No invariant violations."))
            return
        rows = [
            (
                v.kind,
                str(v.job_id) if v.job_id else "-",
                f"{v.since:%Y-%m-%d %H:%M}" if v.since else "-",
                v.message,
            )
            for v in found
        ]
        widths = [max(len(COLUMNS[i]), *(len(row[i]) for row in rows)) for i in range(3)]
        for row in [COLUMNS, *rows]:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
            self.stdout.write("  ".join([*cells, row[3]]))
