"""Run wagtail-smi's sweeper once: restart lost jobs, poll due ones, retry refunds."""

from django.core.management.base import BaseCommand

from wagtail_smi.operations import sweep


class Command(BaseCommand):
    help = "Re-enqueue paid jobs never started, poll due processing jobs, retry refunds."

    def handle(self, *args, **options):
        for key, value in sweep().items():
            self.stdout.write(f"{key}: {value}")
