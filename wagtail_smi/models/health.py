"""Signs of life from the background work: when each periodic task last ran.

The sweeper writes its row every time it runs; the system check, the admin dashboard and
``smi_doctor`` read it, so a site whose workers or schedules are missing says so before a
customer notices that nothing moves. The sweeper also keeps here when it last reported each
broken invariant (rows named ``inv-d:…`` and ``inv-f:…``, ``operations.maintenance``), so
several workers, or a restarted one, report a problem once.
"""

from __future__ import annotations

from datetime import datetime

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

SWEEPER = "sweeper"


class Heartbeat(models.Model):
    """The last time something recurring happened (``name``): a periodic task ran, or a
    broken invariant was reported; one row per name."""

    name = models.CharField(_("task"), max_length=32, primary_key=True)
    beat_at = models.DateTimeField(_("last run"))

    class Meta:
        verbose_name = _("heartbeat")
        verbose_name_plural = _("heartbeats")

    def __str__(self) -> str:
        return f"{self.name} at {self.beat_at:%Y-%m-%d %H:%M:%S}"

    @classmethod
    def beat(cls, name: str, at: datetime | None = None) -> None:
        cls.objects.update_or_create(name=name, defaults={"beat_at": at or timezone.now()})

    @classmethod
    def last(cls, name: str) -> datetime | None:
        return cls.objects.filter(name=name).values_list("beat_at", flat=True).first()
