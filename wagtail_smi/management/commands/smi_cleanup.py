"""Run wagtail-smi's daily cleanup now: expired files, unpaid checkouts, temporary files."""

from django.core.management.base import BaseCommand

from wagtail_smi.operations import cleanup


class Command(BaseCommand):
    help = "Delete expired delivered files, abandon old unpaid checkouts, remove temp files."

    def handle(self, *args, **options):
        counts = cleanup()
        for key, value in counts.items():
            self.stdout.write(f"{key.replace('_', ' ')}: {value}")
