"""Create (or update) the django-q2 schedules wagtail-smi needs. Safe to run repeatedly."""

from django.core.management.base import BaseCommand
from django.utils import timezone
from django_q.models import Schedule

SCHEDULES = [
    # name, function, type, minutes (for MINUTES schedules)
    ("wagtail_smi sweeper", "wagtail_smi.tasks.sweep", Schedule.MINUTES, 1),
    ("wagtail_smi cleanup", "wagtail_smi.tasks.cleanup", Schedule.DAILY, None),
]


class Command(BaseCommand):
    help = "Create the wagtail-smi sweeper (every minute) and daily cleanup schedules."

    def handle(self, *args, **options):
        for name, func, schedule_type, minutes in SCHEDULES:
            schedule, created = Schedule.objects.update_or_create(
                name=name,
                defaults={
                    "func": func,
                    "schedule_type": schedule_type,
                    "minutes": minutes,
                    "repeats": -1,
                },
            )
            if created:
                schedule.next_run = timezone.now()
                schedule.save(update_fields=["next_run"])
            self.stdout.write(f"{'created' if created else 'up to date'}: {name} → {func}")
