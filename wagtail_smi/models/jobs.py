"""Purchase jobs (the orders), their append-only event log and their download log.

A job's ``status`` changes only through ``wagtail_smi.workflow.transition``.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models.functions import Upper
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from wagtail.images import get_image_model_string

from .. import tokens
from .catalog import PAGE_MODEL
from .states import STATE_FACTS, JobStatus


class PurchaseJob(models.Model):
    """One purchase of one upscaled image, from checkout to delivery or refund.

    Image and page are referenced by nullable foreign keys (so deleting either keeps the
    order) plus ``image_ref``/``page_ref`` snapshots of their ids for analytics.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    status = models.CharField(
        _("status"),
        max_length=32,
        choices=JobStatus.choices,
        default=JobStatus.AWAITING_PAYMENT,
    )

    # What was bought.
    site = models.ForeignKey(
        "wagtailcore.Site", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    image = models.ForeignKey(
        get_image_model_string(),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("image"),
    )
    image_ref = models.PositiveIntegerField(_("image id"))
    image_title = models.CharField(_("image title"), max_length=255, blank=True)
    page = models.ForeignKey(
        PAGE_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("page"),
    )
    page_ref = models.PositiveIntegerField(_("page id"))
    page_title = models.CharField(_("page title"), max_length=255, blank=True)
    resolution = models.CharField(_("resolution"), max_length=16)
    factor = models.PositiveSmallIntegerField(_("factor"))
    original_width = models.PositiveIntegerField(_("original width"))
    original_height = models.PositiveIntegerField(_("original height"))
    output_width = models.PositiveIntegerField(_("output width"))
    output_height = models.PositiveIntegerField(_("output height"))
    # The licence bought, as it read at checkout: editing the licence later changes nothing
    # here (``models.settings.SmiSiteSettings.licence_snapshot``).
    licence_key = models.CharField(_("licence"), max_length=32, blank=True)
    licence_name = models.CharField(_("licence name"), max_length=128, blank=True)
    licence_version = models.CharField(_("licence version"), max_length=32, blank=True)
    licence_summary = models.CharField(_("licence summary"), max_length=255, blank=True)
    licence_terms = models.TextField(_("licence terms (as accepted)"), blank=True)
    licence_terms_url = models.URLField(_("licence terms URL"), max_length=2048, blank=True)

    # Money: integer minor units and a lowercase ISO currency code.
    amount_cents = models.PositiveIntegerField(_("amount (minor units)"))
    # A promotion code applied at checkout: the customer paid amount_cents - discount_cents.
    discount_cents = models.PositiveIntegerField(_("discount (minor units)"), default=0)
    currency = models.CharField(_("currency"), max_length=3, default="usd")
    credits = models.PositiveIntegerField(_("estimated upscaler credits"), default=0)
    upscale_cost_cents = models.PositiveIntegerField(_("upscaling cost (minor units)"), default=0)

    # Customer.
    email = models.EmailField(_("customer email"), blank=True)
    terms_accepted_at = models.DateTimeField(_("terms accepted at"), null=True, blank=True)
    # The buyer asked for immediate delivery and so waived the EU right of withdrawal.
    withdrawal_waived_at = models.DateTimeField(
        _("right of withdrawal waived at"), null=True, blank=True
    )
    locale = models.CharField(_("language"), max_length=16, blank=True)
    # At most one "payment failed" email per order.
    payment_failed_emailed_at = models.DateTimeField(
        _("payment failure emailed"), null=True, blank=True
    )
    # At most one "taking longer" email per order.
    delay_emailed_at = models.DateTimeField(_("delay emailed"), null=True, blank=True)
    # The browser that started the checkout, as a salted hash (never the cookie itself):
    # the same browser asking again soon gets this order's checkout back.
    browser_ref = models.CharField(_("checkout browser (hashed)"), max_length=64, blank=True)

    # Payment provider.
    payment_provider = models.CharField(_("payment provider"), max_length=32, blank=True)
    checkout_session_id = models.CharField(_("checkout session id"), max_length=255, blank=True)
    checkout_url = models.URLField(_("checkout URL"), max_length=2048, blank=True)
    payment_intent_id = models.CharField(_("payment intent id"), max_length=255, blank=True)
    cancel_url = models.URLField(_("return URL"), max_length=2048, blank=True)

    # Upscaler.
    upscaler = models.CharField(_("upscaler"), max_length=32, blank=True)
    upscaler_job_id = models.CharField(_("upscaler job id"), max_length=255, blank=True)
    upscaler_credits = models.DecimalField(
        _("upscaler credits used"), max_digits=12, decimal_places=2, null=True, blank=True
    )
    upscaler_status = models.CharField(_("upscaler status"), max_length=32, blank=True)
    # Stamped before a submission is sent: a worker that dies mid-call leaves it set without
    # an upscaler job id, so the next attempt knows the upscaler may already have the job.
    upscaler_submitted_at = models.DateTimeField(
        _("submitted to the upscaler"), null=True, blank=True
    )
    # Share of the upscaling done, 0–100, for an upscaler that runs in the worker and
    # reports its tiles (written every few seconds, so the order page's bar moves).
    progress = models.PositiveSmallIntegerField(
        _("upscaling progress (%)"), default=0, validators=[MaxValueValidator(100)]
    )

    # Business retries (kept in the job, not in the broker).
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    deadline_at = models.DateTimeField(_("deadline"), null=True, blank=True)
    last_polled_at = models.DateTimeField(_("last polled"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)

    # Delivery.
    result_path = models.CharField(_("stored file"), max_length=512, blank=True)
    result_size_bytes = models.PositiveBigIntegerField(_("file size"), null=True, blank=True)
    result_content_type = models.CharField(_("file type"), max_length=64, blank=True)
    token_hash = models.CharField(_("download token hash"), max_length=64, blank=True)
    token_expires_at = models.DateTimeField(_("download expires"), null=True, blank=True)
    download_limit = models.PositiveIntegerField(_("download limit"), null=True, blank=True)
    download_count = models.PositiveIntegerField(_("downloads"), default=0)
    access_revoked_at = models.DateTimeField(_("access revoked"), null=True, blank=True)
    file_deleted_at = models.DateTimeField(_("file deleted"), null=True, blank=True)
    delivery_email_sent_at = models.DateTimeField(_("download email sent"), null=True, blank=True)

    # Refund.
    refund_amount_cents = models.PositiveIntegerField(_("refunded (minor units)"), default=0)
    refund_reason = models.TextField(_("refund reason"), blank=True)
    refund_id = models.CharField(_("refund id"), max_length=255, blank=True)
    # Paid and still not delivered after AUTO_REFUND_AFTER_HOURS: refunded on its own, once.
    auto_refund_started_at = models.DateTimeField(
        _("automatic refund started"), null=True, blank=True
    )

    # An admin who has taken the order in hand: it is not refunded automatically.
    taken_in_hand_at = models.DateTimeField(_("taken in hand"), null=True, blank=True)
    taken_in_hand_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("taken in hand by"),
    )

    # When each state was reached.
    created_at = models.DateTimeField(_("created"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    paid_at = models.DateTimeField(_("paid"), null=True, blank=True, db_index=True)
    processing_at = models.DateTimeField(_("processing started"), null=True, blank=True)
    completed_at = models.DateTimeField(_("completed"), null=True, blank=True, db_index=True)
    abandoned_at = models.DateTimeField(_("abandoned"), null=True, blank=True)
    failed_at = models.DateTimeField(_("failed"), null=True, blank=True)
    refunded_at = models.DateTimeField(_("refunded"), null=True, blank=True, db_index=True)
    needs_attention_at = models.DateTimeField(_("needs attention since"), null=True, blank=True)
    # An erasure request: the customer's personal data was removed, the amounts kept.
    anonymised_at = models.DateTimeField(_("personal data removed"), null=True, blank=True)

    class Meta:
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        ordering = ["-created_at"]
        # Declared here rather than with ``db_index`` on the fields: on PostgreSQL a field's
        # own index on a text column comes with a ``varchar_pattern_ops`` twin for LIKE,
        # which nothing here runs (the admin's search is ``icontains``, which no B-tree
        # serves). Status is reached through the two composite indexes, image and page
        # through theirs. The email index is on ``UPPER(email)``: customers are looked up
        # case-insensitively (``iexact``).
        indexes = [
            models.Index(fields=["status", "created_at"], name="smi_job_status_created"),
            models.Index(fields=["status", "next_attempt_at"], name="smi_job_status_next"),
            models.Index(fields=["image_ref", "created_at"], name="smi_job_image_created"),
            models.Index(fields=["page_ref", "created_at"], name="smi_job_page_created"),
            models.Index(fields=["currency", "paid_at"], name="smi_job_currency_paid"),
            models.Index(fields=["resolution"], name="smi_job_resolution"),
            models.Index(fields=["licence_key"], name="smi_job_licence"),
            models.Index(Upper("email"), name="smi_job_email_upper"),
            models.Index(fields=["checkout_session_id"], name="smi_job_checkout_session"),
            models.Index(fields=["payment_intent_id"], name="smi_job_payment_intent"),
            models.Index(fields=["upscaler_job_id"], name="smi_job_upscaler_job"),
            models.Index(fields=["token_hash"], name="smi_job_token_hash"),
            # The report rollups' refresh: orders changed since it last ran.
            models.Index(fields=["updated_at"], name="smi_job_updated"),
        ]

    def __str__(self) -> str:
        return f"{self.image_title or self.image_ref} ({self.resolution}) · {self.short_id}"

    @property
    def short_id(self) -> str:
        return str(self.id)[:8]

    @property
    def licence_display(self) -> str:
        """The licence bought, as customers and admins read it ("Commercial use, version
        2"); "" for an order from before licences."""
        if not self.licence_name:
            return ""
        if not self.licence_version:
            return self.licence_name
        return gettext("%(name)s, version %(version)s") % {
            "name": self.licence_name,
            "version": self.licence_version,
        }

    # Secrets derived from the job id (see ``wagtail_smi.tokens``): nothing to store.
    @property
    def access_key(self) -> str:
        """The ``key`` that unlocks this order's status page and ``job-status``."""
        return tokens.access_key(self.id)

    def check_access_key(self, key: str | None) -> bool:
        return tokens.check_access_key(self.id, key)

    @property
    def callback_secret(self) -> str:
        """The secret in this job's upscaler callback URL."""
        return tokens.callback_secret(self.id)

    def check_callback_secret(self, secret: str | None) -> bool:
        return tokens.check_callback_secret(self.id, secret)

    @property
    def state(self):
        """What this order's state means (``models.states.STATE_FACTS``)."""
        return STATE_FACTS[self.status]

    @property
    def is_paid(self) -> bool:
        return self.paid_at is not None

    @property
    def paid_amount_cents(self) -> int:
        """What the customer actually paid (the quote less any promotion code)."""
        return max(self.amount_cents - self.discount_cents, 0)

    @property
    def refundable_cents(self) -> int:
        return max(self.paid_amount_cents - self.refund_amount_cents, 0)


class EventCode(models.TextChoices):
    """What happened to an order. The log stores the code and its data; the sentence an
    admin reads is written when it is shown, in the admin's language
    (``wagtail_smi.timeline``)."""

    # Checkout and payment.
    CHECKOUT_STARTED = "checkout_started", _("Checkout started")
    CHECKOUT_REUSED = "checkout_reused", _("Checkout reused")
    PAYMENT_RECEIVED = "payment_received", _("Payment received")
    DISCOUNT_APPLIED = "discount_applied", _("Promotion code")
    PAYMENT_NOT_APPLIED = "payment_not_applied", _("Payment not applied")
    PAYMENT_FAILED = "payment_failed", _("Payment failed")
    CHECKOUT_ABANDONED = "checkout_abandoned", _("Checkout abandoned")
    # Processing.
    PROCESSING_STARTED = "processing_started", _("Processing started")
    SUBMITTED = "submitted", _("Submitted to the upscaler")
    SUBMISSION_UNCONFIRMED = "submission_unconfirmed", _("Submission unconfirmed")
    CALLBACK_IGNORED = "callback_ignored", _("Callback ignored")
    ATTEMPT_FAILED = "attempt_failed", _("Attempt failed")
    DELIVERED = "delivered", _("Delivered")
    PROCESSING_FAILED = "processing_failed", _("Processing failed")
    NEEDS_ATTENTION = "needs_attention", _("Needs attention")
    # Refunds.
    REFUND_STARTED = "refund_started", _("Refund started")
    REFUNDED = "refunded", _("Refunded")
    PARTIAL_REFUND = "partial_refund", _("Partial refund")
    REFUND_REFUSED = "refund_refused", _("Refund refused")
    # Admin operations.
    RETRIED = "retried", _("Retried")
    REDELIVERED = "redelivered", _("Redelivered")
    LINK_RESENT = "link_resent", _("Download link resent")
    ACCESS_REVOKED = "access_revoked", _("Download revoked")
    RESOLVED_DELIVERED = "resolved_delivered", _("Resolved: delivered by hand")
    RESOLVED_REFUNDED = "resolved_refunded", _("Resolved: refunded outside the system")
    TAKEN_IN_HAND = "taken_in_hand", _("Taken in hand")
    AUTO_REFUND = "auto_refund", _("Automatic refund")
    # Emails.
    EMAIL_SENT = "email_sent", _("Email sent")
    EMAIL_FAILED = "email_failed", _("Email not sent")
    EMAIL_RETRIED = "email_retried", _("Email retried")
    # Customers.
    ANONYMISED = "anonymised", _("Personal data removed")
    # Rows written before codes existed (their text is kept as it was).
    LEGACY = "legacy", _("Note")


class JobEvent(models.Model):
    """Append-only log of what happened to a job: transitions, refused moves, notes.

    ``code`` says what happened and ``data`` holds its particulars (amounts in minor units,
    provider ids, an admin's own words); nothing is stored as prose to be parsed back.
    """

    class Kind(models.TextChoices):
        TRANSITION = "transition", _("Transition")
        REFUSED = "refused", _("Refused transition")
        NOTE = "note", _("Note")

    job = models.ForeignKey(PurchaseJob, on_delete=models.CASCADE, related_name="events")
    created_at = models.DateTimeField(_("time"), auto_now_add=True, db_index=True)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices, default=Kind.TRANSITION)
    code = models.CharField(_("event"), max_length=32, choices=EventCode.choices, db_index=True)
    data = models.JSONField(_("details"), default=dict, blank=True)
    from_status = models.CharField(_("from"), max_length=32, blank=True)
    to_status = models.CharField(_("to"), max_length=32, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("by"),
    )

    class Meta:
        verbose_name = _("order event")
        verbose_name_plural = _("order events")
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["job", "code"], name="smi_event_job_code")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.code}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("Job events are append-only")
        super().save(*args, **kwargs)


class DownloadEvent(models.Model):
    """One download of a delivered file (the client's IP is kept only as a salted hash)."""

    job = models.ForeignKey(PurchaseJob, on_delete=models.CASCADE, related_name="downloads")
    created_at = models.DateTimeField(_("time"), auto_now_add=True)
    ip_hash = models.CharField(_("client (hashed)"), max_length=64, blank=True)
    ranged = models.BooleanField(_("partial request"), default=False)
    # Whether this download took one from the allowance (a resume of a counted one does not).
    counted = models.BooleanField(_("counted"), default=True)

    class Meta:
        verbose_name = _("download")
        verbose_name_plural = _("downloads")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"download of {self.job_id} at {self.created_at:%Y-%m-%d %H:%M:%S}"
