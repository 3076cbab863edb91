"""Order actions: POST only, CSRF-protected, permission-checked, one operation each.

Each action calls the same operation the rest of the system uses (so the state machine
and the event log see the acting admin), then redirects back to the order with a message.
An operation that refuses is reported as an admin error, never a crash.
"""

from __future__ import annotations

import logging
import re

from django import forms
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from .. import operations
from ..models import JobStatus, PurchaseJob
from ..models.states import REDELIVER, REFUND, RESEND_LINK, RESOLVE, RETRY, operations_for
from ..pricing import format_price, minor_unit_exponent

logger = logging.getLogger(__name__)

S = JobStatus

# The admin's action names and the operations they run (``models.states`` says which
# operations apply in which state; the operation has the final word).
ACTION_OPERATIONS = {
    "retry": RETRY,
    "refund": REFUND,
    "resend_email": RESEND_LINK,
    "redeliver": REDELIVER,
    "resolve": RESOLVE,
}


def available_actions(job: PurchaseJob) -> list[str]:
    applicable = operations_for(job.status)
    return [name for name, operation in ACTION_OPERATIONS.items() if operation in applicable]


class RefundForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=500, strip=True)


class ResolveForm(forms.Form):
    OUTCOMES = [
        ("delivered", _("Delivered by hand")),
        ("refunded_outside", _("Refunded outside the system")),
    ]
    outcome = forms.ChoiceField(label=_("What happened"), choices=OUTCOMES)
    reason = forms.CharField(label=_("Details"), max_length=500, strip=True)
    amount = forms.CharField(label=_("Amount refunded"), required=False, max_length=20)

    def __init__(self, *args, job: PurchaseJob, **kwargs):
        self.job = job
        super().__init__(*args, **kwargs)

    def clean_amount(self):
        """The refunded amount, typed in major units (5.76), as minor units; empty means
        everything that was paid."""
        raw = (self.cleaned_data.get("amount") or "").strip()
        paid = self.job.paid_amount_cents
        if not raw:
            return paid
        cents = parse_major_amount(raw, self.job.currency)
        if cents > paid:
            raise forms.ValidationError(
                gettext("At most %(amount)s was paid.")
                % {"amount": format_price(paid, self.job.currency)}
            )
        return cents


# A plain amount: digits, optionally a decimal point (or comma) and more digits. Nothing
# that ``Decimal`` would also take: no sign, exponent, "Infinity" or "NaN".
PLAIN_AMOUNT = re.compile(r"(\d+)(?:[.,](\d+))?", re.ASCII)


def parse_major_amount(raw: str, currency: str) -> int:
    """``"5.76"`` → 576 (for USD): finite, not negative, and no finer than the currency's
    minor unit (trailing zeros aside), else a ``ValidationError`` that says which."""
    exponent = minor_unit_exponent(currency)
    example = "5" if exponent == 0 else "5." + "76543"[:exponent]
    match = PLAIN_AMOUNT.fullmatch(raw)
    if match is None:
        if raw.startswith("-"):
            raise forms.ValidationError(gettext("The amount cannot be negative."))
        raise forms.ValidationError(
            gettext("Enter a plain amount such as %(example)s.") % {"example": example}
        )
    whole, fraction = match.group(1), (match.group(2) or "").rstrip("0")
    if len(fraction) > exponent:
        if exponent == 0:
            message = gettext("%(currency)s amounts are whole numbers, such as %(example)s.")
        else:
            message = gettext(
                "%(currency)s amounts have at most %(places)d decimal places, such as %(example)s."
            )
        raise forms.ValidationError(
            message % {"currency": currency.upper(), "places": exponent, "example": example}
        )
    return int(whole + fraction.ljust(exponent, "0"))


def _form_errors(form: forms.Form) -> str:
    return "; ".join(
        f"{form.fields[name].label if name in form.fields else name}: {' '.join(errors)}"
        for name, errors in form.errors.items()
    )


def _order_url(request, job) -> str:
    namespace = request.resolver_match.namespace
    return f"{namespace}:inspect"


def order_action(name: str):
    """Wrap an action body with the checks every action shares."""

    def decorator(body):
        @require_POST
        def view(request, pk):
            operations.require_permission(request.user, ACTION_OPERATIONS[name])
            job = get_object_or_404(PurchaseJob, pk=pk)
            target = redirect(_order_url(request, job), pk=job.pk)
            if ACTION_OPERATIONS[name] not in operations_for(job.status):
                messages.error(
                    request,
                    gettext("This action is not possible while the order is “%(status)s”.")
                    % {"status": job.get_status_display()},
                )
                return target
            try:
                success = body(request, job)
            except operations.OperationError as exc:
                messages.error(request, gettext("The action failed: %(error)s") % {"error": exc.message[:300]})
            except Exception as exc:  # shown to the admin, logged with the traceback
                logger.exception("order action %s failed for job %s", name, job.pk)
                messages.error(
                    request,
                    gettext("The action failed: %(error)s") % {"error": str(exc)[:300] or type(exc).__name__},
                )
            else:
                if success:
                    messages.success(request, success)
            return target

        view.__name__ = f"order_action_{name}"
        return view

    return decorator


@order_action("retry")
def retry_view(request, job):
    operations.retry(job.pk, actor=request.user)
    return gettext("Processing restarted.")


@order_action("refund")
def refund_view(request, job):
    form = RefundForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return None
    result = operations.refund(job.pk, reason=form.cleaned_data["reason"], actor=request.user)
    status = getattr(result, "status", None)
    if status == S.REFUNDED:
        return gettext("Refunded %(amount)s.") % {
            "amount": format_price(result.refund_amount_cents or job.amount_cents, job.currency)
        }
    # Refused: a failed order now needs attention; a completed one stays completed.
    messages.warning(
        request,
        gettext("The refund could not be made: %(error)s")
        % {"error": getattr(result, "last_error", "") or gettext("see the event log")},
    )
    return None


@order_action("resend_email")
def resend_email_view(request, job):
    operations.resend_link(job.pk, actor=request.user)
    return gettext("The download email was sent again with a new link.")


@order_action("redeliver")
def redeliver_view(request, job):
    operations.redeliver(job.pk, actor=request.user)
    return gettext("The delivery is being rebuilt.")


@order_action("resolve")
def resolve_view(request, job):
    form = ResolveForm(request.POST, job=job)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return None
    data = form.cleaned_data
    operations.resolve_by_hand(
        job.pk, outcome=data["outcome"], details=data["reason"], amount_cents=data["amount"],
        actor=request.user,
    )
    if data["outcome"] == "delivered":
        return gettext("Marked as delivered by hand.")
    return gettext("Marked as refunded outside the system.")


ACTIONS = {
    "retry": retry_view,
    "refund": refund_view,
    "resend_email": resend_email_view,
    "redeliver": redeliver_view,
    "resolve": resolve_view,
}
