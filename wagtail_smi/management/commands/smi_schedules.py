"""Create (or repair) the django-q2 schedules wagtail-smi needs. Safe to run repeatedly.

``migrate`` does the same after every run (``signals.ensure_schedules_after_migrate``):
this command stays for deploy scripts that want to say so explicitly.
"""

from django.core.management.base import BaseCommand

from wagtail_smi import queue


class Command(BaseCommand):
    help = "Create or repair the wagtail-smi sweeper (every minute) and daily cleanup schedules."

    def handle(self, *args, **options):
        functions = {periodic.name: periodic.func for periodic in queue.SCHEDULES}
        for name, outcome in queue.ensure_schedules():
            self.stdout.write(f"{outcome}: {name} → {functions[name]}")
