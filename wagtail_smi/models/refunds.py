"""Refunds the shop asks its payment provider for, one row per request.

The row is written before the provider is called and carries the idempotency key sent with
the call, so a request is made once whatever happens: a double submit finds its row and
sends nothing, a retry after a crash replays the row's own key (the provider answers with
the refund it already made), and an order never has two requests without an answer.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from .jobs import PurchaseJob


class RefundRequest(models.Model):
    class Status(models.TextChoices):
        #: Written, provider not answered yet (in flight, or the process died meanwhile).
        REQUESTED = "requested", _("Requested")
        SUCCEEDED = "succeeded", _("Refunded")
        #: Accepted by the provider, money on its way (Stripe's "pending").
        PENDING = "pending", _("Pending at the provider")
        REFUSED = "refused", _("Refused")

    job = models.ForeignKey(
        PurchaseJob,
        on_delete=models.CASCADE,
        related_name="refund_requests",
        verbose_name=_("order"),
    )
    key = models.CharField(_("idempotency key"), max_length=255, unique=True)
    amount_cents = models.PositiveIntegerField(_("amount (minor units)"))
    currency = models.CharField(_("currency"), max_length=3)
    #: What the order had refunded when this was asked (the total once it succeeds is this
    #: plus ``amount_cents``, however late the answer is recorded).
    refunded_before_cents = models.PositiveIntegerField(_("refunded before (minor units)"))
    reason = models.TextField(_("reason"), blank=True)
    revoke_access = models.BooleanField(_("revoke the download"), default=False)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.REQUESTED
    )
    provider = models.CharField(_("payment provider"), max_length=32, blank=True)
    provider_refund_id = models.CharField(_("refund id"), max_length=255, blank=True)
    error = models.TextField(_("error"), blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("by"),
    )
    created_at = models.DateTimeField(_("requested"), auto_now_add=True)
    answered_at = models.DateTimeField(_("answered"), null=True, blank=True)

    class Meta:
        verbose_name = _("refund request")
        verbose_name_plural = _("refund requests")
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["job", "status"], name="smi_refund_job_status")]

    def __str__(self) -> str:
        return f"refund of {self.amount_cents} {self.currency} for {self.job_id} ({self.status})"

    @property
    def answered(self) -> bool:
        return self.status != self.Status.REQUESTED

    @property
    def went_through(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.PENDING)
