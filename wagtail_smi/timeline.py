"""An order's event log in words: each event's code and data become a sentence, written
when the log is shown and in the reader's language (as Wagtail's ``log_actions`` do).

``describe`` gives the sentence, ``actor_label`` who acted (an admin by name, the customer,
the payment provider, or the shop itself), ``format_moment`` the one way a time is written
(the language's ``DATETIME_FORMAT``, in the site's time zone). Every ``EventCode`` has a
sentence (a test checks it); a new code gets its sentence here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from .models import EventCode, JobEvent, JobStatus
from .pricing import format_price

C = EventCode


def format_moment(moment: datetime | None) -> str:
    """A time as the admin reads it everywhere on an order: ``DATETIME_FORMAT`` in the
    site's time zone (``TIME_ZONE``), whatever zone the reader's session uses."""
    if moment is None:
        return "—"
    local = timezone.localtime(moment, timezone.get_default_timezone())
    return formats.date_format(local, "DATETIME_FORMAT")


def _money(data: dict, key: str = "amount_cents") -> str:
    amount = data.get(key)
    if amount is None:
        return "?"
    return format_price(int(amount), data.get("currency") or "usd")


def _provider(data: dict) -> str:
    name = data.get("provider") or ""
    if name == "dummy":
        return _("the test payment page")
    return name.capitalize() or _("the payment provider")


def _upscaler(data: dict) -> str:
    name = data.get("upscaler") or ""
    if name == "local":
        return _("the built-in upscaler")
    return name.capitalize() or _("the upscaler")


def _status(value: str) -> str:
    try:
        return str(JobStatus(value).label)
    except ValueError:
        return value or "?"


def _duration(seconds) -> str:
    try:
        seconds = int(seconds)
    except (TypeError, ValueError):
        return "?"
    if seconds < 120:
        return ngettext("%(n)d second", "%(n)d seconds", seconds) % {"n": seconds}
    minutes = round(seconds / 60)
    return ngettext("%(n)d minute", "%(n)d minutes", minutes) % {"n": minutes}


def _with_reason(sentence: str, reason: str) -> str:
    return f"{sentence} {_('Reason: %(reason)s') % {'reason': reason}}" if reason else sentence


def email_name(key: str) -> str:
    """An email's name as the admin knows it, from the template name the log stores."""
    names = {
        "download_ready": _("the “download ready” email"),
        "refund_notice": _("the refund email"),
        "payment_failed": _("the “payment failed” email"),
        "receipt": _("the receipt"),
        "admin_alert": _("an alert to the shop's admins"),
        "taking_longer": _("the “taking longer” email"),
    }
    return names.get(key) or (_("the “%(name)s” email") % {"name": key.replace("_", " ")})


FAILURE_REASONS = {
    "upscale_failed": lambda: _("the upscaler could not process the image"),
    "result_invalid": lambda: _("the upscaled image did not pass the image checks"),
    "result_unavailable": lambda: _("the upscaled image could not be fetched"),
}


def _failure(data: dict) -> str:
    reason = data.get("reason") or ""
    text = FAILURE_REASONS[reason]() if reason in FAILURE_REASONS else reason or "?"
    detail = data.get("detail") or ""
    return f"{text} ({detail})" if detail else text


def _partial_refund(d: dict) -> str:
    if "amount_cents" in d:  # one the shop made
        paid = d.get("paid_cents")
        left = _money({**d, "left": paid - d.get("total_cents", 0)}, "left") if paid else "?"
        return _with_reason(
            _("Refunded %(amount)s of %(paid)s through %(provider)s; %(left)s left.")
            % {
                "amount": _money(d),
                "paid": _money(d, "paid_cents"),
                "provider": _provider(d),
                "left": left,
            },
            d.get("reason", ""),
        )
    return _("%(provider)s reports a partial refund: %(total)s refunded so far.") % {
        "provider": _provider(d),
        "total": _money(d, "total_cents"),
    }


def _callback_ignored(d: dict) -> str:
    why = {
        "other_order": _("it belongs to another order"),
        "unconfirmed": _("the upscaler did not confirm it"),
        "answer_after_callback": _("the job was already known from its callback"),
    }.get(d.get("why", ""), d.get("why", "?"))
    return _("A message from %(upscaler)s about its job %(id)s was ignored: %(why)s.") % {
        "upscaler": _upscaler(d),
        "id": d.get("external_id", "?"),
        "why": why,
    }


SENTENCES: dict[str, Callable[[dict], str]] = {
    C.CHECKOUT_STARTED: lambda d: (
        _("The customer started a checkout for the %(resolution)s copy at %(amount)s.")
        % {"resolution": d.get("resolution", "?"), "amount": _money(d)}
    ),
    C.CHECKOUT_REUSED: lambda d: (
        _(
            "The same browser asked again for %(resolution)s within %(minutes)s minutes: its "
            "open checkout was given back instead of a second order."
        )
        % {"resolution": d.get("resolution", "?"), "minutes": d.get("minutes", "?")}
    ),
    C.PAYMENT_RECEIVED: lambda d: (
        _("Payment received through %(provider)s.") % {"provider": _provider(d)}
    ),
    C.DISCOUNT_APPLIED: lambda d: (
        _("A promotion code took %(off)s off %(quote)s: the customer paid %(paid)s.")
        % {"off": _money(d, "discount_cents"), "quote": _money(d), "paid": _money(d, "paid_cents")}
    ),
    C.PAYMENT_NOT_APPLIED: lambda d: (
        _(
            "A payment reported by %(provider)s does not match this order and was not applied: %(detail)s."
        )
        % {"provider": _provider(d), "detail": d.get("detail", "?")}
    ),
    C.PAYMENT_FAILED: lambda d: (
        _("The payment through %(provider)s failed; the customer can try again.")
        % {"provider": _provider(d)}
    ),
    C.CHECKOUT_ABANDONED: lambda d: (
        _("The checkout at %(provider)s expired without a payment.") % {"provider": _provider(d)}
        if d.get("provider")
        else _("Not paid within %(hours)s hours: the checkout was given up.")
        % {"hours": d.get("hours", "?")}
    ),
    C.PROCESSING_STARTED: lambda d: (
        _("Upscaling started with %(upscaler)s.") % {"upscaler": _upscaler(d)}
    ),
    C.SUBMITTED: lambda d: (
        (
            _("Sent to %(upscaler)s (its job %(id)s).")
            if d.get("via") != "callback"
            else _(
                "Sent to %(upscaler)s (its job %(id)s): the answer was lost, its confirmed "
                "callback told us."
            )
        )
        % {"upscaler": _upscaler(d), "id": d.get("external_id", "?")}
    ),
    C.SUBMISSION_UNCONFIRMED: lambda d: (
        _(
            "The upscaler gave no usable answer (%(error)s): waiting for its callback rather "
            "than sending the image again."
        )
        % {"error": d.get("error", "?")}
    ),
    C.CALLBACK_IGNORED: _callback_ignored,
    C.ATTEMPT_FAILED: lambda d: (
        _("Attempt %(attempt)s failed (%(error)s); trying again in %(delay)s.")
        % {
            "attempt": d.get("attempt", "?"),
            "error": d.get("error", "?"),
            "delay": _duration(d.get("delay_seconds")),
        }
    ),
    C.DELIVERED: lambda d: _("Delivered: the upscaled image is ready to download."),
    C.PROCESSING_FAILED: lambda d: _("Upscaling failed: %(why)s.") % {"why": _failure(d)},
    C.NEEDS_ATTENTION: lambda d: (
        _("Needs an admin: %(detail)s") % {"detail": d.get("detail") or "?"}
    ),
    C.REFUND_STARTED: lambda d: (
        _with_reason(_("A refund was asked for: processing stopped."), d["reason"])
        if d.get("reason")
        else _("Refunded at %(provider)s: processing stopped.") % {"provider": _provider(d)}
    ),
    C.REFUNDED: lambda d: _with_reason(
        _("Refunded %(amount)s: the order is closed.") % {"amount": _money(d)},
        d.get("reason", ""),
    ),
    C.PARTIAL_REFUND: _partial_refund,
    C.REFUND_REFUSED: lambda d: (
        _("The refund could not be made: %(error)s") % {"error": d["error"]}
        if d.get("error")
        else _("%(provider)s reports that refund %(id)s %(status)s (%(reason)s).")
        % {
            "provider": _provider(d),
            "id": d.get("refund_id", "?"),
            "status": d.get("status", "?"),
            "reason": d.get("failure_reason") or d.get("status", "?"),
        }
    ),
    C.RETRIED: lambda d: _("Sent back for processing."),
    C.REDELIVERED: lambda d: _("Delivery rebuilt: a new file and a new download link."),
    C.LINK_RESENT: lambda d: (
        _("The customer asked for a fresh download link; it was emailed with a new expiry.")
        if d.get("requested_by") == "customer"
        else _("A new download link was emailed; the previous one stopped working.")
    ),
    C.ACCESS_REVOKED: lambda d: _with_reason(_("The download was revoked."), d.get("reason", "")),
    C.RESOLVED_DELIVERED: lambda d: _with_reason(
        _("Marked as delivered by hand."), d.get("details", "")
    ),
    C.RESOLVED_REFUNDED: lambda d: _with_reason(
        _("Marked as refunded outside the system (%(amount)s).") % {"amount": _money(d)},
        d.get("details", ""),
    ),
    C.TAKEN_IN_HAND: lambda d: _with_reason(
        _("Taken in hand: it is not refunded automatically while an admin deals with it."),
        d.get("reason", ""),
    ),
    C.AUTO_REFUND: lambda d: (
        _("Not delivered in time: refunded automatically.")
        if not d.get("hours")
        else _("Not delivered within %(hours)s hours: refunded automatically.")
        % {"hours": d["hours"]}
    ),
    C.EMAIL_SENT: lambda d: (
        _("Sent an alert to the shop's admins.")
        if d.get("email") == "admin_alert"
        else _("Sent %(email)s to the customer.") % {"email": email_name(d.get("email", ""))}
    ),
    C.EMAIL_FAILED: lambda d: (
        (
            _("Could not send an alert to the shop's admins: %(problem)s.")
            if d.get("email") == "admin_alert"
            else _("Could not send %(email)s to the customer: %(problem)s.")
        )
        % {"email": email_name(d.get("email", "")), "problem": d.get("problem") or "?"}
    ),
    C.EMAIL_RETRIED: lambda d: (
        _("Trying %(email)s again, with a new link.") % {"email": email_name(d.get("email", ""))}
    ),
    C.ANONYMISED: lambda d: _with_reason(
        _("The customer's personal data was removed (an erasure request); amounts are kept."),
        d.get("reason", ""),
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


def status_change(event: JobEvent) -> str:
    """For a transition: the state it led to ("→ Completed"); empty for a note."""
    if event.kind != JobEvent.Kind.TRANSITION or not event.to_status:
        return ""
    return f"→ {_status(event.to_status)}"


#: Events the customer's own actions cause (the log names them, not "the shop").
CUSTOMER_CODES = frozenset({C.CHECKOUT_STARTED, C.CHECKOUT_REUSED, C.DISCOUNT_APPLIED})
#: Events a payment provider reports.
PROVIDER_CODES = frozenset(
    {
        C.PAYMENT_RECEIVED,
        C.PAYMENT_NOT_APPLIED,
        C.PAYMENT_FAILED,
        C.CHECKOUT_ABANDONED,
        C.PARTIAL_REFUND,
        C.REFUND_REFUSED,
        C.REFUND_STARTED,
        C.REFUNDED,
    }
)


def actor_label(event: JobEvent) -> str:
    """Who acted: the admin (full name, else username), the customer, the payment provider
    that reported it, or the shop itself."""
    if event.actor_id is not None and event.actor is not None:
        return event.actor.get_full_name() or event.actor.get_username()
    data = event.data or {}
    if event.code in CUSTOMER_CODES or data.get("requested_by") == "customer":
        return _("Customer")
    if event.code in PROVIDER_CODES and data.get("provider"):
        return _provider(data)
    return _("System")
