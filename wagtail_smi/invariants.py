"""What must always hold for the shop's orders, checked against what is stored.

The state machine, the sweeper and the operations are built so that these never break; this
module looks at the data afterwards, so a bug, a lost worker or a hand-edited row is found
rather than assumed away. ``find_violations`` reports every order (and every stored file)
that breaks one of them:

- ``overdue``: paid and not settled (``paid``, ``processing`` or ``failed``) longer than its
  deadline plus ``GRACE``. By then the sweeper has either delivered it, refunded it or
  handed it to an admin (``needs_attention``); a job still waiting means nobody will.
- ``undelivered``: ``completed`` without a stored file or without a download token, unless
  its file was deleted on purpose (expiry, revocation) or an admin recorded a delivery
  made by hand (``resolved_delivered``), which has neither.
- ``missing_file``: ``completed`` and its file is not in private storage (files only).
- ``refund_without_id``: ``refunded`` with no provider refund id, unless an admin recorded
  a refund made outside the system (``resolved_refunded``), which has none.
- ``over_refunded``: more refunded than the customer paid, on the order or in the refund
  requests the provider accepted.
- ``double_submission``: the upscaler was given the order more than once, as the event log
  tells it: different upscaler job ids between two admin retries (an admin's retry after a
  lost or failed submission is meant to submit again).
- ``orphan_file``: a file under ``wagtail_smi/`` in private storage that no order owns
  (files only; files younger than ``GRACE`` may be a delivery still committing).

The database checks cost a fixed number of queries, so the sweeper runs them every minute
and the dashboard on every view; listing the storage is left to ``files=True`` (the
``smi_check`` command, and the sweeper once an hour).
"""

from __future__ import annotations

import logging
import posixpath
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Exists, F, OuterRef, Q, Sum
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .conf import smi_settings
from .models import EventCode, JobEvent, JobStatus, PurchaseJob, RefundRequest
from .pricing import format_price
from .storage import private_storage

logger = logging.getLogger(__name__)

S = JobStatus
C = EventCode

#: How long past its deadline an order may still be on its way (the sweeper runs every
#: minute; this leaves room for a worker restart), and how old an unowned file must be.
GRACE = timedelta(minutes=15)
#: At most this many findings of each kind: enough to act on, bounded for the sweeper.
LIMIT = 500
#: Where delivered files live in private storage (``storage.store_result``).
FILES_ROOT = "wagtail_smi"

OVERDUE = "overdue"
UNDELIVERED = "undelivered"
MISSING_FILE = "missing_file"
REFUND_WITHOUT_ID = "refund_without_id"
OVER_REFUNDED = "over_refunded"
DOUBLE_SUBMISSION = "double_submission"
ORPHAN_FILE = "orphan_file"

#: Every invariant, in the order findings are listed, with its name for people.
KINDS = {
    OVERDUE: gettext_lazy("Paid, and not settled after its deadline"),
    UNDELIVERED: gettext_lazy("Completed without a file or a download link"),
    MISSING_FILE: gettext_lazy("Completed, but its file is not in storage"),
    REFUND_WITHOUT_ID: gettext_lazy("Refunded without a refund id"),
    OVER_REFUNDED: gettext_lazy("Refunded more than was paid"),
    DOUBLE_SUBMISSION: gettext_lazy("Sent to the upscaler more than once"),
    ORPHAN_FILE: gettext_lazy("A stored file that no order owns"),
}
UNSETTLED = (S.PAID, S.PROCESSING, S.FAILED)
# Refund requests whose money the provider accepted to give back.
REFUNDS_MADE = (RefundRequest.Status.SUCCEEDED, RefundRequest.Status.PENDING)


@dataclass(frozen=True)
class Violation:
    """One broken invariant: which (``kind``), where (an order, a stored file or both),
    since when as far as the data tells, and the facts (plain values, for programs)."""

    kind: str
    job_id: uuid.UUID | None = None
    path: str = ""
    since: datetime | None = None
    facts: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def key(self) -> str:
        """Stable across runs: what "the same finding" means (alert once per key)."""
        return f"{self.kind}:{self.job_id or self.path}"

    @property
    def label(self) -> str:
        return str(KINDS[self.kind])

    @property
    def message(self) -> str:
        """The finding as a sentence for the shop's admins, in the active language."""
        return DESCRIBE[self.kind](self.facts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "job_id": str(self.job_id) if self.job_id else None,
            "path": self.path,
            "since": self.since.isoformat() if self.since else None,
            "message": self.message,
            "facts": self.facts,
        }


def _moment(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if value else "?"


DESCRIBE = {
    OVERDUE: lambda f: (
        _(
            "Paid and still “%(status)s” after its deadline (%(deadline)s): by now it should "
            "be delivered, refunded or with an admin."
        )
        % {"status": S(f["status"]).label, "deadline": f["deadline"]}
    ),
    UNDELIVERED: lambda f: _(
        "Completed, but it has no stored file or no download link: the customer cannot download it."
    ),
    MISSING_FILE: lambda f: (
        _("Completed, but its file %(path)s is not in private storage: the download fails.")
        % {"path": f["path"]}
    ),
    REFUND_WITHOUT_ID: lambda f: _(
        "Refunded, but no refund id from the payment provider is recorded."
    ),
    OVER_REFUNDED: lambda f: (
        _("%(refunded)s refunded of %(paid)s paid.")
        % {"refunded": f["refunded"], "paid": f["paid"]}
    ),
    DOUBLE_SUBMISSION: lambda f: (
        _("Sent to the upscaler %(count)s times (its jobs %(ids)s): each may have been charged.")
        % {"count": len(f["external_ids"]), "ids": ", ".join(f["external_ids"])}
    ),
    ORPHAN_FILE: lambda f: (
        _("%(path)s is in private storage, but no order owns it.") % {"path": f["path"]}
    ),
}


def find_violations(now: datetime | None = None, *, files: bool = False) -> list[Violation]:
    """Every order (and, with ``files``, every stored file) that breaks an invariant,
    by kind, oldest first. An empty list is a healthy shop."""
    now = now or timezone.now()
    found = [
        *overdue(now),
        *undelivered(),
        *refunds_without_id(),
        *over_refunded(),
        *double_submissions(),
    ]
    if files:
        found.extend(stored_file_problems(now))
    order = list(KINDS)
    return sorted(
        found,
        key=lambda v: (order.index(v.kind), v.since or now, str(v.job_id or ""), v.path),
    )


# The database checks ------------------------------------------------------------------------


def overdue(now: datetime) -> list[Violation]:
    cutoff = now - GRACE
    window = timedelta(minutes=smi_settings.JOB_DEADLINE_MINUTES)
    late = PurchaseJob.objects.filter(
        Q(status__in=(S.PAID, S.PROCESSING))
        & (Q(deadline_at__lt=cutoff) | Q(deadline_at__isnull=True, paid_at__lt=cutoff - window))
        # A failed order is refunded within minutes (the sweeper retries its refund).
        | Q(status=S.FAILED, failed_at__lt=cutoff)
    ).only("pk", "status", "deadline_at", "paid_at", "failed_at")
    found = []
    for job in late.order_by("paid_at")[:LIMIT]:
        if job.status == S.FAILED:
            deadline = job.failed_at
        else:
            deadline = job.deadline_at or job.paid_at + window
        found.append(
            Violation(
                OVERDUE,
                job.pk,
                since=deadline,
                facts={"status": job.status, "deadline": _moment(deadline)},
            )
        )
    return found


def _has_event(code: str) -> Exists:
    return Exists(JobEvent.objects.filter(job=OuterRef("pk"), code=code))


def undelivered() -> list[Violation]:
    jobs = (
        PurchaseJob.objects.filter(status=S.COMPLETED, file_deleted_at__isnull=True)
        .filter(Q(result_path="") | Q(token_hash=""))
        # A delivery an admin made by hand has neither file nor link here.
        .exclude(_has_event(C.RESOLVED_DELIVERED), result_path="", token_hash="")
        .only("pk", "completed_at", "result_path", "token_hash")
    )
    return [
        Violation(
            UNDELIVERED,
            job.pk,
            since=job.completed_at,
            facts={"file": bool(job.result_path), "token": bool(job.token_hash)},
        )
        for job in jobs.order_by("completed_at")[:LIMIT]
    ]


def refunds_without_id() -> list[Violation]:
    jobs = (
        PurchaseJob.objects.filter(status=S.REFUNDED, refund_id="")
        .exclude(_has_event(C.RESOLVED_REFUNDED))
        .only("pk", "refunded_at", "refund_amount_cents", "currency")
    )
    return [
        Violation(
            REFUND_WITHOUT_ID,
            job.pk,
            since=job.refunded_at,
            facts={"refunded_cents": job.refund_amount_cents, "currency": job.currency},
        )
        for job in jobs.order_by("refunded_at")[:LIMIT]
    ]


def over_refunded() -> list[Violation]:
    """On the order (``refund_amount_cents``), and in the refund requests the provider
    accepted: the latter would show a refund made twice even if the order's own total
    was capped when it was recorded."""
    paid = F("amount_cents") - F("discount_cents")
    totals: dict[uuid.UUID, int] = {}
    rows = (
        PurchaseJob.objects.annotate(paid=paid)
        .filter(refund_amount_cents__gt=F("paid"))
        .values_list("pk", "refund_amount_cents")[:LIMIT]
    )
    for pk, refunded in rows:
        totals[pk] = refunded
    requested = (
        RefundRequest.objects.filter(status__in=REFUNDS_MADE)
        .values("job_id")
        .annotate(total=Sum("amount_cents"))
        .filter(total__gt=F("job__amount_cents") - F("job__discount_cents"))
        .values_list("job_id", "total")[:LIMIT]
    )
    for pk, total in requested:
        totals[pk] = max(total, totals.get(pk, 0))
    if not totals:
        return []
    jobs = PurchaseJob.objects.filter(pk__in=list(totals)).only(
        "pk", "amount_cents", "discount_cents", "currency", "refunded_at", "updated_at"
    )
    return [
        Violation(
            OVER_REFUNDED,
            job.pk,
            since=job.refunded_at or job.updated_at,
            facts={
                "refunded_cents": totals[job.pk],
                "paid_cents": job.paid_amount_cents,
                "currency": job.currency,
                "refunded": format_price(totals[job.pk], job.currency),
                "paid": format_price(job.paid_amount_cents, job.currency),
            },
        )
        for job in jobs
    ]


def _submissions() -> Q:
    """Events that name an upscaler job made for the order: its submissions, and a
    submission's answer that came after a callback had named another job."""
    return Q(code=C.SUBMITTED) | Q(code=C.CALLBACK_IGNORED, data__why="answer_after_callback")


def double_submissions() -> list[Violation]:
    candidates = list(
        JobEvent.objects.filter(_submissions())
        .values("job_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .values_list("job_id", flat=True)[:LIMIT]
    )
    if not candidates:
        return []
    events = (
        JobEvent.objects.filter(job_id__in=candidates)
        .filter(_submissions() | Q(code=C.RETRIED))
        .order_by("job_id", "created_at", "id")
        .values_list("job_id", "code", "data", "created_at")
    )
    rounds: dict[uuid.UUID, list[tuple[list[str], datetime | None]]] = defaultdict(list)
    for job_id, code, data, created_at in events:
        if code == C.RETRIED or not rounds[job_id]:
            rounds[job_id].append(([], None))
        if code == C.RETRIED:
            continue
        ids, _first_repeat = rounds[job_id][-1]
        external = str((data or {}).get("external_id") or "")
        if external and external not in ids:
            ids.append(external)
            if len(ids) == 2:
                rounds[job_id][-1] = (ids, created_at)
    found = []
    for job_id, segments in rounds.items():
        for ids, repeated_at in segments:
            if len(ids) > 1:
                found.append(
                    Violation(
                        DOUBLE_SUBMISSION,
                        job_id,
                        since=repeated_at,
                        facts={"external_ids": ids},
                    )
                )
                break
    return found


# The storage checks -------------------------------------------------------------------------


def stored_files() -> dict[str, datetime | None]:
    """Every file under ``wagtail_smi/`` in private storage: name → modified time (None
    when the storage cannot tell). Read through the storage API, so it works the same on a
    file system and on S3-compatible object storage."""
    storage = private_storage()
    found: dict[str, datetime | None] = {}
    pending = [FILES_ROOT]
    while pending:
        folder = pending.pop()
        try:
            folders, names = storage.listdir(folder)
        except (FileNotFoundError, NotADirectoryError):
            continue
        pending.extend(posixpath.join(folder, name) for name in folders)
        for name in names:
            path = posixpath.join(folder, name)
            try:
                found[path] = storage.get_modified_time(path)
            except (NotImplementedError, OSError):
                found[path] = None
    return found


def _job_of(path: str) -> uuid.UUID | None:
    """The order a stored name was written for (``wagtail_smi/<job id>/...``)."""
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != FILES_ROOT:
        return None
    try:
        return uuid.UUID(parts[1])
    except ValueError:
        return None


def stored_file_problems(now: datetime) -> list[Violation]:
    """Unowned files and completed orders whose file is gone.

    The orders are read before the storage is listed, and an order whose file was not
    listed is read again afterwards: a delivery committing meanwhile leaves a file younger
    than ``GRACE`` (not reported), and a redelivery or an expiry committing meanwhile has
    changed the order by the time it is read again (not reported either)."""
    owned = set(
        PurchaseJob.objects.filter(file_deleted_at__isnull=True)
        .exclude(result_path="")
        .values_list("result_path", flat=True)
    )
    files = stored_files()
    unowned = [
        (path, modified)
        for path, modified in sorted(files.items())
        if path not in owned and (modified is None or modified <= now - GRACE)
    ][:LIMIT]
    named = {_job_of(path) for path, _modified in unowned} - {None}
    known = set(PurchaseJob.objects.filter(pk__in=named).values_list("pk", flat=True))
    found = [
        Violation(
            ORPHAN_FILE,
            _job_of(path) if _job_of(path) in known else None,
            path=path,
            since=modified,
            facts={"path": path},
        )
        for path, modified in unowned
    ]
    missing = sorted(owned - set(files))[:LIMIT]
    if missing:
        jobs = PurchaseJob.objects.filter(
            result_path__in=missing, status=S.COMPLETED, file_deleted_at__isnull=True
        )
        for job in jobs.only("pk", "result_path", "completed_at"):
            found.append(
                Violation(
                    MISSING_FILE,
                    job.pk,
                    path=job.result_path,
                    since=job.completed_at,
                    facts={"path": job.result_path},
                )
            )
    return found


__all__ = ["GRACE", "KINDS", "Violation", "find_violations", "stored_files"]
