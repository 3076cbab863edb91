"""Schema for customer emails, schedules and the sweeper's heartbeat, duplicate checkouts, what can be sold (issue 11)."""

import django.core.validators
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

EVENT_CODES = [
    ("checkout_started", "Checkout started"),
    ("checkout_reused", "Checkout reused"),
    ("payment_received", "Payment received"),
    ("discount_applied", "Promotion code"),
    ("payment_not_applied", "Payment not applied"),
    ("payment_failed", "Payment failed"),
    ("checkout_abandoned", "Checkout abandoned"),
    ("processing_started", "Processing started"),
    ("submitted", "Submitted to the upscaler"),
    ("submission_unconfirmed", "Submission unconfirmed"),
    ("callback_ignored", "Callback ignored"),
    ("attempt_failed", "Attempt failed"),
    ("delivered", "Delivered"),
    ("processing_failed", "Processing failed"),
    ("needs_attention", "Needs attention"),
    ("refund_started", "Refund started"),
    ("refunded", "Refunded"),
    ("partial_refund", "Partial refund"),
    ("refund_refused", "Refund refused"),
    ("retried", "Retried"),
    ("redelivered", "Redelivered"),
    ("link_resent", "Download link resent"),
    ("access_revoked", "Download revoked"),
    ("resolved_delivered", "Resolved: delivered by hand"),
    ("resolved_refunded", "Resolved: refunded outside the system"),
    ("taken_in_hand", "Taken in hand"),
    ("auto_refund", "Automatic refund"),
    ("email_sent", "Email sent"),
    ("email_failed", "Email not sent"),
    ("email_retried", "Email retried"),
    ("legacy", "Note"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("wagtail_smi", "0005_event_codes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Heartbeat",
            fields=[
                (
                    "name",
                    models.CharField(
                        max_length=32, primary_key=True, serialize=False, verbose_name="task"
                    ),
                ),
                ("beat_at", models.DateTimeField(verbose_name="last run")),
            ],
            options={
                "verbose_name": "heartbeat",
                "verbose_name_plural": "heartbeats",
            },
        ),
        migrations.AddField(
            model_name="purchasejob",
            name="auto_refund_started_at",
            field=models.DateTimeField(
                blank=True, null=True, verbose_name="automatic refund started"
            ),
        ),
        migrations.AddField(
            model_name="purchasejob",
            name="browser_ref",
            field=models.CharField(
                blank=True, max_length=64, verbose_name="checkout browser (hashed)"
            ),
        ),
        migrations.AddField(
            model_name="purchasejob",
            name="delay_emailed_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="delay emailed"),
        ),
        migrations.AddField(
            model_name="purchasejob",
            name="taken_in_hand_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="taken in hand"),
        ),
        migrations.AddField(
            model_name="purchasejob",
            name="taken_in_hand_by",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="taken in hand by",
            ),
        ),
        migrations.AddField(
            model_name="smisitesettings",
            name="min_short_side",
            field=models.PositiveIntegerField(
                default=100,
                help_text="Images whose shorter side has fewer pixels get no purchase button: upscaled, they would disappoint.",
                validators=[django.core.validators.MinValueValidator(1)],
                verbose_name="smallest image sold (pixels, short side)",
            ),
        ),
        migrations.AlterField(
            model_name="jobevent",
            name="code",
            field=models.CharField(
                choices=EVENT_CODES, db_index=True, max_length=32, verbose_name="event"
            ),
        ),
    ]
