"""Provider events already applied: the unique key that makes webhooks idempotent."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class ProcessedWebhookEvent(models.Model):
    """Written in the same transaction that applies the event: a duplicate fails the insert."""

    provider = models.CharField(_("provider"), max_length=32)
    event_id = models.CharField(_("event id"), max_length=255)
    event_type = models.CharField(_("event type"), max_length=128, blank=True)
    job_id = models.UUIDField(_("order"), null=True, blank=True, db_index=True)
    received_at = models.DateTimeField(_("received"), auto_now_add=True)

    class Meta:
        verbose_name = _("processed webhook event")
        verbose_name_plural = _("processed webhook events")
        constraints = [
            models.UniqueConstraint(fields=["provider", "event_id"], name="smi_webhook_event_once")
        ]

    def __str__(self) -> str:
        return f"{self.provider}:{self.event_id}"
