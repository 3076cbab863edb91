"""Job states (SPEC §2) and what each one means, in one table.

``JobStatus`` names the states; ``STATE_FACTS`` says, for each, what the customer is shown
(stage and progress), whether the order is settled, the tone of its admin tag, and which
admin operations apply. The JSON API, the order page (and its script, through
``json_script``), the admin and the operations all read this table, so adding a state is
one edit here (plus its transitions in ``workflow.ALLOWED_TRANSITIONS``).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _


class JobStatus(models.TextChoices):
    AWAITING_PAYMENT = "awaiting_payment", _("Awaiting payment")
    PAID = "paid", _("Paid")
    PROCESSING = "processing", _("Processing")
    COMPLETED = "completed", _("Completed")
    ABANDONED = "abandoned", _("Abandoned")
    FAILED = "failed", _("Failed")
    REFUNDED = "refunded", _("Refunded")
    NEEDS_ATTENTION = "needs_attention", _("Needs attention")


# Admin operations (``wagtail_smi.operations``) that can be offered on an order.
RETRY = "retry"
REFUND = "refund"
RESEND_LINK = "resend_link"
REDELIVER = "redeliver"
RESOLVE = "resolve"
REVOKE = "revoke"
# Stop the automatic refund of a paid order that is late: an admin answers for it now.
TAKE_IN_HAND = "take_in_hand"


@dataclass(frozen=True)
class StateFacts:
    #: The step the customer sees (``job-status``'s ``stage``), before refinements such
    #: as "delivering" or "expired" that depend on more than the state.
    stage: str
    #: The progress bar, 0–100; ``None`` hides it (a refunded order is not "done").
    progress: int | None
    #: Nothing more happens on its own: pages stop polling, the sweeper leaves it alone.
    final: bool
    #: The admin status tag's tone (Wagtail's status tag variants).
    tone: str
    #: Short label for customers (the admin shows ``JobStatus`` labels).
    customer_label: Promise
    #: Admin operations that apply in this state (the operation has the final word).
    operations: frozenset[str]


S = JobStatus

STATE_FACTS: dict[str, StateFacts] = {
    S.AWAITING_PAYMENT: StateFacts(
        "awaiting_payment", 0, False, "info", _("Waiting for payment"), frozenset()
    ),
    S.ABANDONED: StateFacts("abandoned", None, True, "neutral", _("Not completed"), frozenset()),
    S.PAID: StateFacts("paid", 20, False, "info", _("Paid"), frozenset({REFUND, TAKE_IN_HAND})),
    S.PROCESSING: StateFacts(
        "upscaling", 40, False, "info", _("Upscaling"), frozenset({REFUND, TAKE_IN_HAND})
    ),
    S.COMPLETED: StateFacts(
        "ready",
        100,
        True,
        "success",
        _("Ready"),
        frozenset({REFUND, RESEND_LINK, REDELIVER, REVOKE}),
    ),
    S.FAILED: StateFacts(
        "failed", None, False, "critical", _("Being refunded"), frozenset({REFUND})
    ),
    S.REFUNDED: StateFacts("refunded", None, True, "neutral", _("Refunded"), frozenset()),
    S.NEEDS_ATTENTION: StateFacts(
        "needs_attention",
        None,
        True,
        "critical",
        _("Being looked into"),
        frozenset({RETRY, REFUND, REDELIVER, RESOLVE, TAKE_IN_HAND}),
    ),
}

# States in which the customer's money is with the shop and the order is not settled.
UNPAID = frozenset({S.AWAITING_PAYMENT, S.ABANDONED})
IN_PIPELINE = frozenset({S.PAID, S.PROCESSING})


def facts(status: str) -> StateFacts:
    return STATE_FACTS[status]


def operations_for(status: str) -> frozenset[str]:
    return STATE_FACTS[status].operations
