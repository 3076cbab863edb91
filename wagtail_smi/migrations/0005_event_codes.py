"""Order events get a code and structured data instead of free text.

Existing rows are given the code their text corresponds to, and keep that text in
``data["text"]`` (the timeline shows it for rows written before codes existed).
"""

from django.db import migrations, models

# (kind, to_status or "", prefix of the old text) → code; first match wins.
RULES = [
    ("note", "", "checkout started", "checkout_started"),
    ("note", "", "Promotion code", "discount_applied"),
    ("note", "", "Refund refused", "refund_refused"),
    ("note", "", "download email could not be sent", "email_failed"),
    ("note", "", "download email resent", "link_resent"),
    ("note", "", "retrying the download email", "email_retried"),
    ("note", "", "redelivered with a new file", "redelivered"),
    ("note", "", "submitted to ", "submitted"),
    ("note", "", "attempt ", "attempt_failed"),
    ("note", "", "submission unconfirmed", "submission_unconfirmed"),
    ("note", "", "callback named", "callback_ignored"),
    ("*", "paid", "retried by an admin", "retried"),
    ("*", "paid", "", "payment_received"),
    ("*", "processing", "", "processing_started"),
    ("*", "completed", "redelivered", "redelivered"),
    ("*", "completed", "Resolved", "resolved_delivered"),
    ("*", "completed", "", "delivered"),
    ("*", "abandoned", "", "checkout_abandoned"),
    ("*", "failed", "Refund requested", "refund_started"),
    ("*", "failed", "Refunded in", "refund_started"),
    ("*", "failed", "", "processing_failed"),
    ("*", "refunded", "Resolved", "resolved_refunded"),
    ("*", "refunded", "", "refunded"),
    ("*", "needs_attention", "The refund could not be made", "refund_refused"),
    ("*", "needs_attention", "", "needs_attention"),
]
FAILURE_REASONS = ("upscale_failed", "result_invalid", "result_unavailable")


def code_for(kind, to_status, text):
    for rule_kind, rule_to, prefix, code in RULES:
        if rule_kind == "note" and kind != "note":
            continue
        if rule_kind == "*" and (kind == "note" or to_status != rule_to):
            continue
        if text.startswith(prefix):
            return code
    return "legacy"


def forwards(apps, schema_editor):
    JobEvent = apps.get_model("wagtail_smi", "JobEvent")
    for event in JobEvent.objects.all().iterator(chunk_size=500):
        text = event.reason or ""
        code = code_for(event.kind, event.to_status, text)
        data = {"text": text} if text else {}
        if code == "processing_failed":
            reason = text.split(":", 1)[0].strip()
            if reason in FAILURE_REASONS:
                data["reason"] = reason
        if code == "email_failed":
            data["email"] = "download_ready"
        # Events are append-only through the model; the migration writes the new columns.
        JobEvent.objects.filter(pk=event.pk).update(code=code, data=data)


def backwards(apps, schema_editor):
    JobEvent = apps.get_model("wagtail_smi", "JobEvent")
    for event in JobEvent.objects.all().iterator(chunk_size=500):
        text = (event.data or {}).get("text") or event.code
        JobEvent.objects.filter(pk=event.pk).update(reason=text)


class Migration(migrations.Migration):
    dependencies = [
        ("wagtail_smi", "0004_security_fields"),
    ]

    operations = [
        migrations.AddField(
            model_name="jobevent",
            name="code",
            field=models.CharField(db_index=True, default="legacy", max_length=32, verbose_name="event"),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="jobevent",
            name="data",
            field=models.JSONField(blank=True, default=dict, verbose_name="details"),
        ),
        migrations.RunPython(forwards, backwards),
        migrations.RemoveField(model_name="jobevent", name="reason"),
        migrations.AddIndex(
            model_name="jobevent",
            index=models.Index(fields=["job", "code"], name="smi_event_job_code"),
        ),
        migrations.AlterField(
            model_name='jobevent',
            name='code',
            field=models.CharField(choices=[('checkout_started', 'Checkout started'), ('payment_received', 'Payment received'), ('discount_applied', 'Promotion code'), ('payment_not_applied', 'Payment not applied'), ('payment_failed', 'Payment failed'), ('checkout_abandoned', 'Checkout abandoned'), ('processing_started', 'Processing started'), ('submitted', 'Submitted to the upscaler'), ('submission_unconfirmed', 'Submission unconfirmed'), ('callback_ignored', 'Callback ignored'), ('attempt_failed', 'Attempt failed'), ('delivered', 'Delivered'), ('processing_failed', 'Processing failed'), ('needs_attention', 'Needs attention'), ('refund_started', 'Refund started'), ('refunded', 'Refunded'), ('partial_refund', 'Partial refund'), ('refund_refused', 'Refund refused'), ('retried', 'Retried'), ('redelivered', 'Redelivered'), ('link_resent', 'Download link resent'), ('access_revoked', 'Download revoked'), ('resolved_delivered', 'Resolved: delivered by hand'), ('resolved_refunded', 'Resolved: refunded outside the system'), ('email_sent', 'Email sent'), ('email_failed', 'Email not sent'), ('email_retried', 'Email retried'), ('legacy', 'Note')], db_index=True, max_length=32, verbose_name='event'),
        ),
    ]
