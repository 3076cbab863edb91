"""Schema for partial refunds, customers and reports (issue 13): one row per refund the shop
asks its provider for (the idempotency record), and when a customer's personal data was
removed."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("wagtail_smi", "0006_promises_kept"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="purchasejob",
            name="anonymised_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="personal data removed"),
        ),
        migrations.AlterField(
            model_name="jobevent",
            name="code",
            field=models.CharField(
                choices=[
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
                    ("anonymised", "Personal data removed"),
                    ("legacy", "Note"),
                ],
                db_index=True,
                max_length=32,
                verbose_name="event",
            ),
        ),
        migrations.CreateModel(
            name="RefundRequest",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "key",
                    models.CharField(max_length=255, unique=True, verbose_name="idempotency key"),
                ),
                ("amount_cents", models.PositiveIntegerField(verbose_name="amount (minor units)")),
                ("currency", models.CharField(max_length=3, verbose_name="currency")),
                (
                    "refunded_before_cents",
                    models.PositiveIntegerField(verbose_name="refunded before (minor units)"),
                ),
                ("reason", models.TextField(blank=True, verbose_name="reason")),
                (
                    "revoke_access",
                    models.BooleanField(default=False, verbose_name="revoke the download"),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("requested", "Requested"),
                            ("succeeded", "Refunded"),
                            ("pending", "Pending at the provider"),
                            ("refused", "Refused"),
                        ],
                        default="requested",
                        max_length=16,
                        verbose_name="status",
                    ),
                ),
                (
                    "provider",
                    models.CharField(blank=True, max_length=32, verbose_name="payment provider"),
                ),
                (
                    "provider_refund_id",
                    models.CharField(blank=True, max_length=255, verbose_name="refund id"),
                ),
                ("error", models.TextField(blank=True, verbose_name="error")),
                ("created_at", models.DateTimeField(auto_now_add=True, verbose_name="requested")),
                (
                    "answered_at",
                    models.DateTimeField(blank=True, null=True, verbose_name="answered"),
                ),
                (
                    "actor",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="by",
                    ),
                ),
                (
                    "job",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="refund_requests",
                        to="wagtail_smi.purchasejob",
                        verbose_name="order",
                    ),
                ),
            ],
            options={
                "verbose_name": "refund request",
                "verbose_name_plural": "refund requests",
                "ordering": ["created_at", "id"],
                "indexes": [models.Index(fields=["job", "status"], name="smi_refund_job_status")],
            },
        ),
    ]
