"""An order's event log in words: each event's code and data become a sentence, written
when the log is shown and in the reader's language (as Wagtail's ``log_actions`` do).
"""

from __future__ import annotations

from collections.abc import Callable

from django.utils.translation import gettext as _

from .models import EventCode, JobEvent, JobStatus
from .pricing import format_price

C = EventCode


def _money(data: dict, key: str = "amount_cents") -> str:
    amount = data.get(key)
    if amount is None:
        return "?"
    return format_price(int(amount), data.get("currency") or "usd")


def _provider(data: dict) -> str:
    return (data.get("provider") or "").capitalize() or _("the payment provider")


def _reference(data: dict) -> str:
    return f" ({data['reference']})" if data.get("reference") else ""


def _status(value: str) -> str:
    try:
        return str(JobStatus(value).label)
    except ValueError:
        return value or "?"


SENTENCES: dict[str, Callable[[dict], str]] = {
    C.CHECKOUT_STARTED: lambda d: (
        _("Checkout started for %(resolution)s at %(amount)s.")
        % {"resolution": d.get("resolution", "?"), "amount": _money(d)}
    ),
    C.PAYMENT_RECEIVED: lambda d: (
        _("Payment received through %(provider)s%(reference)s.")
        % {"provider": _provider(d), "reference": _reference(d)}
    ),
    C.DISCOUNT_APPLIED: lambda d: (
        _("Promotion code: %(off)s off %(quote)s, paid %(paid)s.")
        % {"off": _money(d, "discount_cents"), "quote": _money(d), "paid": _money(d, "paid_cents")}
    ),
    C.PAYMENT_NOT_APPLIED: lambda d: (
        _(
            "A payment reported by %(provider)s%(reference)s does not match the order and was not "
            "applied: %(detail)s."
        )
        % {"provider": _provider(d), "reference": _reference(d), "detail": d.get("detail", "")}
    ),
    C.PAYMENT_FAILED: lambda d: (
        _("A payment attempt through %(provider)s failed.") % {"provider": _provider(d)}
    ),
    C.CHECKOUT_ABANDONED: lambda d: (
        _("The checkout expired at %(provider)s%(reference)s.")
        % {"provider": _provider(d), "reference": _reference(d)}
        if d.get("provider")
        else _("Not paid within %(hours)s hours: abandoned.") % {"hours": d.get("hours", "?")}
    ),
    C.PROCESSING_STARTED: lambda d: (
        _("Processing started (%(upscaler)s upscaler).") % {"upscaler": d.get("upscaler", "?")}
    ),
    C.SUBMITTED: lambda d: (
        (
            _("Submitted to %(upscaler)s as %(id)s.")
            if d.get("via") != "callback"
            else _(
                "Submitted to %(upscaler)s as %(id)s (its answer was lost; taken from its confirmed callback)."
            )
        )
        % {"upscaler": d.get("upscaler", "?"), "id": d.get("external_id", "?")}
    ),
    C.SUBMISSION_UNCONFIRMED: lambda d: (
        _(
            "The submission got no usable answer (%(error)s): not submitting again, waiting for the "
            "upscaler's callback."
        )
        % {"error": d.get("error", "?")}
    ),
    C.CALLBACK_IGNORED: lambda d: (
        _("A callback or answer naming %(upscaler)s job %(id)s was ignored (%(why)s).")
        % {
            "upscaler": d.get("upscaler", "?"),
            "id": d.get("external_id", "?"),
            "why": {
                "other_order": _("it belongs to another order"),
                "unconfirmed": _("the upscaler did not confirm it"),
                "answer_after_callback": _("the job was already known from its callback"),
            }.get(d.get("why", ""), d.get("why", "?")),
        }
    ),
    C.ATTEMPT_FAILED: lambda d: (
        _("Attempt %(attempt)s failed (%(error)s); retrying in %(delay)s s.")
        % {
            "attempt": d.get("attempt", "?"),
            "error": d.get("error", "?"),
            "delay": d.get("delay_seconds", "?"),
        }
    ),
    C.DELIVERED: lambda d: _("Delivered: the download link was issued."),
    C.PROCESSING_FAILED: lambda d: (
        _("Processing failed (%(reason)s): %(detail)s")
        % {"reason": d.get("reason", "?"), "detail": d.get("detail", "")}
    ),
    C.NEEDS_ATTENTION: lambda d: _("Needs attention: %(detail)s") % {"detail": d.get("detail", "")},
    C.REFUND_STARTED: lambda d: (
        _("Refund requested: %(reason)s") % {"reason": d["reason"]}
        if d.get("reason")
        else _("Refunded at %(provider)s%(reference)s: processing stopped.")
        % {"provider": _provider(d), "reference": _reference(d)}
    ),
    C.REFUNDED: lambda d: (
        _("Refunded %(amount)s (%(reason)s).")
        % {"amount": _money(d), "reason": d.get("reason", "")}
    ),
    C.PARTIAL_REFUND: lambda d: (
        _("%(provider)s reports %(total)s refunded in all%(reference)s.")
        % {"provider": _provider(d), "total": _money(d, "total_cents"), "reference": _reference(d)}
    ),
    C.REFUND_REFUSED: lambda d: (
        _("The refund could not be made: %(error)s") % {"error": d["error"]}
        if d.get("error")
        else _("%(provider)s reports refund %(id)s %(status)s (%(reason)s).")
        % {
            "provider": _provider(d),
            "id": d.get("refund_id", "?"),
            "status": d.get("status", "?"),
            "reason": d.get("failure_reason") or d.get("status", "?"),
        }
    ),
    C.RETRIED: lambda d: _("Retried by an admin."),
    C.REDELIVERED: lambda d: _("Redelivered with a new file and link."),
    C.LINK_RESENT: lambda d: _("The download email was resent with a new link."),
    C.ACCESS_REVOKED: lambda d: (
        _("The download was revoked.") + (f" {d['reason']}" if d.get("reason") else "")
    ),
    C.RESOLVED_DELIVERED: lambda d: (
        _("Resolved: delivered by hand. %(details)s") % {"details": d.get("details", "")}
    ),
    C.RESOLVED_REFUNDED: lambda d: (
        _("Resolved: refunded outside the system (%(amount)s). %(details)s")
        % {"amount": _money(d), "details": d.get("details", "")}
    ),
    C.EMAIL_SENT: lambda d: _("Email sent: %(email)s.") % {"email": d.get("email", "?")},
    C.EMAIL_FAILED: lambda d: (
        _("The %(email)s email could not be sent (%(problem)s).")
        % {"email": d.get("email", "?"), "problem": d.get("problem", "?")}
    ),
    C.EMAIL_RETRIED: lambda d: (
        _("Retrying the %(email)s email with a new link.") % {"email": d.get("email", "?")}
    ),
}


def describe(event: JobEvent) -> str:
    """The event as a sentence. Rows written before codes existed keep their own text."""
    data = event.data or {}
    if event.code == C.LEGACY or data.get("text"):
        text = data.get("text") or ""
    else:
        render = SENTENCES.get(event.code)
        text = render(data) if render else str(event.get_code_display())
    if event.kind == JobEvent.Kind.REFUSED:
        return _("Refused: %(from)s → %(to)s. %(text)s") % {
            "from": _status(event.from_status),
            "to": _status(event.to_status),
            "text": text,
        }
    return text
