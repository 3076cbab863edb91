"""What a customer is told about an order: its stage, progress and message.

The state (``models.states.STATE_FACTS``) gives the stage and progress; a few facts refine
it (a payment still clearing, a result being stored, a link that has run out, whether the
download email went out). ``job-status``, the order page and its script all read
``order_progress`` and ``STAGES``, so they always say the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC

from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .conf import smi_settings
from .models import EventCode, JobStatus, PurchaseJob, SmiSiteSettings


@dataclass(frozen=True)
class Stage:
    label: Promise
    #: Position in the steps the order page lists (None: not one of those steps).
    step: int | None = None
    #: Nothing more will happen on its own: the page stops polling.
    final: bool = False
    #: Shown as a notice rather than as progress.
    problem: bool = False
    #: The file was delivered (every step is done).
    delivered: bool = False


STAGES: dict[str, Stage] = {
    "awaiting_payment": Stage(gettext_lazy("Waiting for payment")),
    "abandoned": Stage(gettext_lazy("Not completed"), final=True, problem=True),
    "paid": Stage(gettext_lazy("Paid"), step=0),
    "upscaling": Stage(gettext_lazy("Upscaling"), step=1),
    "delivering": Stage(gettext_lazy("Delivering"), step=2),
    "ready": Stage(gettext_lazy("Ready"), step=3, final=True, delivered=True),
    # Delivered, but the link has run out: every step done, no download.
    "expired": Stage(gettext_lazy("Expired"), final=True, problem=True, delivered=True),
    "failed": Stage(gettext_lazy("Failed"), problem=True),
    "refunded": Stage(gettext_lazy("Refunded"), final=True, problem=True),
    "needs_attention": Stage(gettext_lazy("Being looked into"), final=True, problem=True),
}
STEPS = sorted(
    (key for key, stage in STAGES.items() if stage.step is not None),
    key=lambda key: STAGES[key].step,
)


@dataclass(frozen=True)
class OrderProgress:
    stage: str
    progress: int
    message: str
    #: Whether the order page may offer the file (the link has not run out).
    downloadable: bool

    @property
    def facts(self) -> Stage:
        return STAGES[self.stage]


# What a ready order says about the download email (``ready_email_state``): only what
# actually happened.
READY_MESSAGES = {
    "": gettext_lazy("Your image is ready to download."),
    "sent": gettext_lazy(
        "Your image is ready to download here; we have also emailed the link to you."
    ),
    "pending": gettext_lazy(
        "Your image is ready to download here. The email with the download link will follow."
    ),
    "failed": gettext_lazy(
        "Your image is ready to download here. We could not send you the email with the "
        "download link, so please download it from this page."
    ),
}


def link_expired(job: PurchaseJob, now=None) -> bool:
    """Whether the delivered file's time is up: the token's expiry has passed (even before
    the daily cleanup deletes the file), or the file is already gone."""
    if job.file_deleted_at:
        return True
    return bool(job.token_expires_at and job.token_expires_at <= (now or timezone.now()))


def ready_email_state(job: PurchaseJob) -> str:
    """What became of the "download ready" email: ``"sent"``, ``"failed"`` (an attempt
    failed; the sweeper may still try again), ``"pending"`` (not sent yet), or ``""`` when
    the order has no email address."""
    if not job.email:
        return ""
    if job.delivery_email_sent_at:
        return "sent"
    failed = job.events.filter(code=EventCode.EMAIL_FAILED, data__email="download_ready").exists()
    return "failed" if failed else "pending"


def support_email(job: PurchaseJob) -> str:
    """The site's support address, or "" when it has none."""
    if job.site_id is None:
        return ""
    row = SmiSiteSettings.objects.filter(site_id=job.site_id).only("support_email").first()
    return row.support_email if row else ""


def fresh_link_possible(job: PurchaseJob, now=None) -> bool:
    """Whether the customer may have a fresh link emailed: the order was delivered and not
    refunded or revoked, its link has expired with downloads left, and the file is still
    kept."""
    used_up = job.download_limit is not None and job.download_count >= job.download_limit
    return bool(
        job.status == JobStatus.COMPLETED
        and job.email
        and job.result_path
        and not job.access_revoked_at
        and not job.file_deleted_at
        and not used_up
        and job.token_expires_at
        and job.token_expires_at <= (now or timezone.now())
        and smi_settings.FRESH_LINK_DAYS > 0
    )


def expired_message(job: PurchaseJob) -> str:
    """A delivered order whose link has run out: how to get a fresh one, or whom to ask."""
    contact = support_email(job)
    if fresh_link_possible(job):
        if contact:
            return _(
                "Your download link has expired. Enter the email address you used for this "
                "order below and we will email you a fresh link, or write to %(email)s and "
                "quote your order number %(order)s."
            ) % {"email": contact, "order": job.short_id}
        return _(
            "Your download link has expired. Enter the email address you used for this order "
            "below and we will email you a fresh link."
        )
    if contact:
        return _(
            "Your download link has expired, so the file can no longer be downloaded. To get "
            "a new link, write to %(email)s and quote your order number %(order)s."
        ) % {"email": contact, "order": job.short_id}
    return _(
        "Your download link has expired, so the file can no longer be downloaded. To get a "
        "new link, contact the shop and quote your order number %(order)s."
    ) % {"order": job.short_id}


# What a state says when no fact about the order refines it.
MESSAGES = {
    JobStatus.AWAITING_PAYMENT: gettext_lazy("Waiting for your payment to be confirmed."),
    JobStatus.ABANDONED: gettext_lazy(
        "This checkout was not completed. You can start again from the image."
    ),
    JobStatus.PAID: gettext_lazy("Payment received. Your image is queued for upscaling."),
    JobStatus.PROCESSING: gettext_lazy(
        "Your image is being upscaled. This usually takes a minute or two."
    ),
    JobStatus.REFUNDED: gettext_lazy(
        "This order was refunded to your original payment method. It usually appears "
        "within 5–10 business days, depending on your bank."
    ),
    JobStatus.FAILED: gettext_lazy(
        "Upscaling failed. We are refunding your payment automatically."
    ),
}
NEEDS_ATTENTION_MESSAGE = gettext_lazy(
    "Something needs a closer look. Our team has been told and will get back to you."
)


def order_progress(job: PurchaseJob) -> OrderProgress:
    facts = job.state
    stage, progress = facts.stage, facts.progress or 0
    refine = REFINEMENTS.get(job.status)
    if refine is not None:
        return refine(job, stage, progress)
    return OrderProgress(
        stage, progress, str(MESSAGES.get(job.status, NEEDS_ATTENTION_MESSAGE)), False
    )


def _awaiting_payment(job: PurchaseJob, stage: str, progress: int) -> OrderProgress:
    if job.payment_intent_id:
        # A bank transfer or debit started at checkout: it can take days to clear.
        return OrderProgress(
            stage,
            10,
            _(
                "Your payment is on its way; some payment methods take a few days. We start "
                "upscaling as soon as it arrives. No need to pay again."
            ),
            False,
        )
    if job.last_error:
        return OrderProgress(
            stage,
            progress,
            _(
                "Your payment did not go through, and you have not been charged. You can try "
                "again from the image."
            ),
            False,
        )
    return OrderProgress(stage, progress, str(MESSAGES[JobStatus.AWAITING_PAYMENT]), False)


def _processing(job: PurchaseJob, stage: str, progress: int) -> OrderProgress:
    if job.result_path:
        return OrderProgress("delivering", 90, _("Almost there: preparing your download."), False)
    progress = 60 if job.upscaler_status == "IN_PROGRESS" else progress
    if job.progress:
        # An upscaler in the worker reports its tiles: the bar moves from the state's
        # share towards "delivering" (90) as they are done.
        progress = max(progress, progress + (90 - progress) * job.progress // 100)
    return OrderProgress(stage, progress, str(MESSAGES[JobStatus.PROCESSING]), False)


def revoked_message(job: PurchaseJob) -> str:
    contact = support_email(job)
    if contact:
        return _(
            "This download has been withdrawn and is no longer available. If you think this "
            "is a mistake, write to %(email)s and quote your order number %(order)s."
        ) % {"email": contact, "order": job.short_id}
    return _(
        "This download has been withdrawn and is no longer available. If you think this is a "
        "mistake, contact the shop and quote your order number %(order)s."
    ) % {"order": job.short_id}


def _completed(job: PurchaseJob, stage: str, progress: int) -> OrderProgress:
    if job.access_revoked_at:
        return OrderProgress("expired", progress, revoked_message(job), False)
    if link_expired(job):
        return OrderProgress("expired", progress, expired_message(job), False)
    return OrderProgress(stage, progress, str(READY_MESSAGES[ready_email_state(job)]), True)


# States whose message depends on more than the state.
REFINEMENTS = {
    JobStatus.AWAITING_PAYMENT: _awaiting_payment,
    JobStatus.PROCESSING: _processing,
    JobStatus.COMPLETED: _completed,
}


def iso_utc(moment) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def stages_for_script() -> dict:
    """The stage table as the order page's script reads it (through ``json_script``)."""
    return {
        "steps": STEPS,
        "stages": {
            key: {"final": s.final, "problem": s.problem, "delivered": s.delivered}
            for key, s in STAGES.items()
        },
    }
