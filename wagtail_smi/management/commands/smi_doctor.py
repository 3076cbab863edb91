"""Say what is wrong with this wagtail-smi site, for people, deploy scripts and monitoring.

Prints every configuration and health problem (payment and upscaler keys, the public base
URL, schedules, the worker's heartbeat, private storage, the email backend) with a hint,
and exits with status 1 when any of them is an error: an order would fail, or nothing
would move.
"""

from django.core import checks
from django.core.management.base import BaseCommand, CommandError

from wagtail_smi.checks import doctor_findings


class Command(BaseCommand):
    help = (
        "Check wagtail-smi's configuration and health (keys, public URL, schedules, worker, "
        "storage, email); exit 1 on errors."
    )
    # The findings include the system checks' own; no need to run them twice.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument(
            "--no-worker",
            action="store_true",
            help="Leave out the worker's heartbeat (a deploy that checks before starting "
            "the workers).",
        )

    def handle(self, *args, **options):
        findings = doctor_findings(worker=not options["no_worker"])
        errors = [f for f in findings if f.level >= checks.ERROR]
        for finding in sorted(findings, key=lambda f: -f.level):
            serious = finding.level >= checks.ERROR
            label = "ERROR" if serious else "WARNING"
            style = self.style.ERROR if serious else self.style.WARNING
            self.stdout.write(style(f"{label} {finding.id}: {finding.msg}"))
            if finding.hint:
                self.stdout.write(f"    {finding.hint}")
        if errors:
            raise CommandError(
                f"{len(errors)} error(s), {len(findings) - len(errors)} warning(s).", returncode=1
            )
        summary = f"{len(findings)} warning(s), no errors." if findings else "No problems found."
        self.stdout.write(self.style.SUCCESS(summary))
