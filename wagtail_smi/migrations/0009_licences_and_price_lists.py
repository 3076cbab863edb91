"""Schema for licences, price lists and per-image selling (issue 12)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("wagtail_smi", "0008_ai_upscaler"),
    ]

    operations = []
