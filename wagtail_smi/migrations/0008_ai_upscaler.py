"""Schema for the self-hosted AI upscaler (issue 16)."""

import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("wagtail_smi", "0007_shop_admin"),
    ]

    operations = [
        migrations.AddField(
            model_name="purchasejob",
            name="progress",
            field=models.PositiveSmallIntegerField(
                default=0,
                validators=[django.core.validators.MaxValueValidator(100)],
                verbose_name="upscaling progress (%)",
            ),
        ),
    ]
