"""Schema for the self-hosted AI upscaler (issue 16)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("wagtail_smi", "0007_shop_admin"),
    ]

    operations = []
