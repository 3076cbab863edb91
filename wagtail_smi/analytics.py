"""The shop's figures: one query layer for the admin reports, the dashboard and the
``smi_report`` command, so the screen, the spreadsheet and the command line agree.

Every figure comes from database aggregation; Python only walks aggregated rows (periods,
currencies, items, customers), so a report costs the same few queries whatever the number
of orders. Whole past days come from daily rollups (``refresh_rollups``, run by the
sweeper), today and the days changed since the last refresh from the orders and clicks
themselves, so the figures are the live tables' own at a cost that does not grow with
them (``live_tables()`` reads the live tables alone). Money is summed per currency and
never mixed. Days, weeks (ISO, Monday first), months and years are cut in the site's time
zone (``TIME_ZONE``), whoever looks.

Definitions (also in docs/admin.md):

- an order counts once it is paid (``paid_at``), in the period of its payment;
- sales: what customers paid (``amount_cents - discount_cents``);
- refunds: what was given back on those orders (``refund_amount_cents``), partial or full;
- net revenue: sales − refunds; upscaling cost: ``upscale_cost_cents``;
- margin: net revenue − upscaling cost; margin rate: margin ÷ net revenue;
- average order value: sales ÷ paid orders; customers: distinct email addresses;
- the funnel follows the orders created, and the clicks made, in the period.
"""

from __future__ import annotations

import csv
import hashlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.apps import apps
from django.db import transaction
from django.db.models import Count, F, Max, Min, Q, Sum, Value
from django.db.models.fields import DateField, DateTimeField, IntegerField
from django.db.models.functions import Coalesce, Greatest, Lower, Trunc, TruncDate
from django.utils import formats, timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from wagtail.images import get_image_model

from . import click_buffer
from .models import (
    ImageClick,
    JobStatus,
    PurchaseJob,
    ReportCustomer,
    ReportItemCustomer,
    ReportRollup,
    RollupState,
)
from .models.catalog import PAGE_MODEL
from .pricing import format_price, minor_unit_exponent

PAID = Q(paid_at__isnull=False)


def site_timezone():
    """The site's own zone (``TIME_ZONE``), not the zone of whoever is looking."""
    return timezone.get_default_timezone()


# --- arithmetic ---------------------------------------------------------------------------


def ratio(numerator, denominator) -> Decimal | None:
    """A percentage with one decimal, or None when there is nothing to divide by."""
    if not denominator:
        return None
    return (Decimal(numerator) * 100 / Decimal(denominator)).quantize(
        Decimal("0.1"), rounding=ROUND_HALF_UP
    )


def divide_cents(numerator: int, denominator: int) -> int:
    if not denominator:
        return 0
    return int(
        (Decimal(numerator) / Decimal(denominator)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    )


def major_units(cents: int | None, currency: str) -> Decimal:
    """Minor units → a Decimal in major units (576 usd → 5.76; 500 jpy → 500)."""
    exponent = minor_unit_exponent(currency or "usd")
    return (Decimal(cents or 0) / (Decimal(10) ** exponent)).quantize(Decimal(1).scaleb(-exponent))


def format_ratio(value: Decimal | None) -> str:
    """``12.5%``; a real minus sign for a negative rate, as prices have."""
    return "—" if value is None else f"{value}%".replace("-", "\u2212")


# --- periods ------------------------------------------------------------------------------

PRESETS: list[tuple[str, Promise]] = [
    ("today", _("Today")),
    ("last-7-days", _("Last 7 days")),
    ("last-30-days", _("Last 30 days")),
    ("this-month", _("This month")),
    ("last-month", _("Last month")),
    ("this-year", _("This year")),
    ("last-year", _("Last year")),
    ("all", _("All time")),
    ("custom", _("Custom dates")),
]
PRESET_LABELS = dict(PRESETS)


class PeriodError(ValueError):
    """A period that cannot be built (an unknown preset, custom dates missing or reversed)."""


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min).replace(tzinfo=site_timezone())


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return day.replace(year=year, month=month + 1, day=min(day.day, 28))


@dataclass(frozen=True)
class Period:
    """A stretch of days in the site's time zone: ``[start, end)``; both None is all time.

    ``step`` says what "the previous period" is: the day, month or year before (calendar
    periods), or as many days just before (``span``). A period that includes ``now`` is
    compared up to the same point: today so far against yesterday until the same time,
    this month to date against last month up to the same day and hour.
    """

    key: str
    start: datetime | None
    end: datetime | None
    step: str
    now: datetime

    @property
    def label(self) -> str:
        return str(PRESET_LABELS.get(self.key, self.key))

    @property
    def first_day(self) -> date | None:
        return timezone.localtime(self.start, site_timezone()).date() if self.start else None

    @property
    def last_day(self) -> date | None:
        """The last day included (``end`` is the midnight after it, or a moment in it)."""
        if self.end is None:
            return None
        return timezone.localtime(self.end - timedelta(microseconds=1), site_timezone()).date()

    @property
    def shown_last_day(self) -> date | None:
        """The last day that can have orders: today, for a period still running."""
        if self.end is None:
            return None
        if self.includes_now:
            return timezone.localtime(self.now, site_timezone()).date()
        return self.last_day

    @property
    def days(self) -> int | None:
        if self.start is None or self.end is None:
            return None
        return (self.last_day - self.first_day).days + 1

    @property
    def range_label(self) -> str:
        if self.start is None:
            return str(_("All time"))
        first = formats.date_format(self.first_day, "DATE_FORMAT")
        last = formats.date_format(self.shown_last_day, "DATE_FORMAT")
        return first if first == last else f"{first} – {last}"

    @property
    def includes_now(self) -> bool:
        return self.start is not None and self.start <= self.now < self.end

    def q(self, field_name: str) -> Q:
        """The condition "``field_name`` falls in this period"."""
        condition = Q()
        if self.start is not None:
            condition &= Q(**{f"{field_name}__gte": self.start})
        if self.end is not None:
            condition &= Q(**{f"{field_name}__lt": self.end})
        return condition

    def previous(self) -> Period | None:
        if self.start is None:
            return None
        first = self.first_day
        if self.step == "day":
            start = _midnight(first - timedelta(days=1))
        elif self.step == "month":
            start = _midnight(_add_months(first, -1))
        elif self.step == "year":
            start = _midnight(first.replace(year=first.year - 1))
        else:
            start = _midnight(first - timedelta(days=self.days))
        end = self.start
        if self.includes_now:
            end = min(start + (self.now - self.start), self.start)
        return replace(self, key=f"before-{self.key}", start=start, end=end)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "from": self.first_day.isoformat() if self.start else None,
            "to": self.last_day.isoformat() if self.end else None,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "time_zone": str(site_timezone()),
        }


def _calendar_period(key: str, today: date, now: datetime) -> Period | None:
    """The presets that are days, months or years of the calendar."""
    if key == "today":
        return Period(key, _midnight(today), _midnight(today + timedelta(days=1)), "day", now)
    if key in ("this-month", "last-month"):
        first = _add_months(today.replace(day=1), -1 if key == "last-month" else 0)
        return Period(key, _midnight(first), _midnight(_add_months(first, 1)), "month", now)
    if key in ("this-year", "last-year"):
        year = today.year - (key == "last-year")
        return Period(
            key, _midnight(date(year, 1, 1)), _midnight(date(year + 1, 1, 1)), "year", now
        )
    return None


def resolve_period(
    key: str = "last-30-days",
    *,
    start: date | None = None,
    end: date | None = None,
    now: datetime | None = None,
) -> Period:
    """A preset (``PRESETS``) as of ``now``, or ``custom`` from ``start`` to ``end``
    (both included; ``end`` defaults to today). Dates given with another preset make it
    custom. "Last 7 days" and "last 30 days" end with yesterday (a whole day each)."""
    now = now or timezone.now()
    today = timezone.localtime(now, site_timezone()).date()
    if start or end:
        key = "custom"
    calendar_period = _calendar_period(key, today, now)
    if calendar_period is not None:
        return calendar_period
    if key in ("last-7-days", "last-30-days"):
        days = 7 if key == "last-7-days" else 30
        return Period(key, _midnight(today - timedelta(days=days)), _midnight(today), "span", now)
    if key == "all":
        return Period(key, None, None, "span", now)
    if key == "custom":
        if start is None:
            raise PeriodError(_("Custom dates need a first day."))
        end = end or today
        if end < start:
            raise PeriodError(_("The last day comes before the first day."))
        return Period(key, _midnight(start), _midnight(end + timedelta(days=1)), "span", now)
    raise PeriodError(_("Unknown period: %(key)s.") % {"key": key})


# --- figures ------------------------------------------------------------------------------

_sales = Greatest(F("amount_cents") - F("discount_cents"), Value(0), output_field=IntegerField())
MONEY_SUMS = {
    "sales": Coalesce(Sum(_sales), Value(0)),
    "refunds": Coalesce(Sum("refund_amount_cents"), Value(0)),
    "cost": Coalesce(Sum("upscale_cost_cents"), Value(0)),
}


def _figure_aggregates() -> dict[str, Any]:
    return {
        **MONEY_SUMS,
        "orders": Count("id"),
        "refunded_orders": Count("id", filter=Q(refund_amount_cents__gt=0)),
        "customers": Count(Lower("email"), distinct=True, filter=~Q(email="")),
    }


@dataclass(frozen=True)
class Figures:
    """What paid orders brought in, in one currency (money in minor units)."""

    currency: str
    orders: int = 0
    sales: int = 0
    refunds: int = 0
    cost: int = 0
    refunded_orders: int = 0
    customers: int = 0

    @classmethod
    def from_row(cls, row: dict) -> Figures:
        return cls(**{name: row.get(name, 0) or 0 for name in cls.__dataclass_fields__})

    @property
    def net(self) -> int:
        return self.sales - self.refunds

    @property
    def margin(self) -> int:
        return self.net - self.cost

    @property
    def margin_rate(self) -> Decimal | None:
        return ratio(self.margin, self.net) if self.net > 0 else None

    @property
    def aov(self) -> int:
        return divide_cents(self.sales, self.orders)

    @property
    def refund_rate(self) -> Decimal | None:
        return ratio(self.refunded_orders, self.orders)

    def money(self, name: str) -> str:
        return format_price(getattr(self, name), self.currency)

    def as_row(self) -> dict[str, Any]:
        """Plain values, money in minor units (what tables and JSON carry)."""
        return {
            "currency": self.currency,
            "orders": self.orders,
            "sales": self.sales,
            "refunds": self.refunds,
            "net": self.net,
            "cost": self.cost,
            "margin": self.margin,
            "margin_rate": self.margin_rate,
            "aov": self.aov,
            "refunded_orders": self.refunded_orders,
            "customers": self.customers,
        }


def paid_orders(period: Period):
    return PurchaseJob.objects.order_by().filter(PAID, period.q("paid_at"))


# --- rollups ------------------------------------------------------------------------------
#
# Whole past days are read from ``ReportRollup`` (and its customer tables), built by
# ``refresh_rollups``, which the sweeper runs every minute; today, the days not built yet
# and every day an order or click changed since the last refresh are read from the live
# tables. Which days changed is found when a report is asked for (orders updated since the
# refresh's mark, clicks with a greater id), so a payment, a delivery, a refund or an
# erasure shows at once, and the figures are always the live tables' own.

_LIVE = ContextVar("wagtail_smi_reports_live", default=False)

#: Orders updated this long before a refresh are read again by the next one: a
#: transaction that stamped ``updated_at`` before the refresh may commit after it.
ROLLUP_MARGIN = timedelta(minutes=10)
ROLLUP_BATCH = 5000
ROLLUP_SUMS = ("orders", "sales", "refunds", "cost", "refunded_orders")


@contextmanager
def live_tables():
    """Compute every figure from the orders and clicks alone, as if no day were rolled up
    (what the rollups are checked against)."""
    token = _LIVE.set(True)
    try:
        yield
    finally:
        _LIVE.reset(token)


def customer_key(email: str) -> int:
    """A customer's key in the rollups: 64 bits of a hash of the lower-cased address (as
    the database lower-cases it), signed to fit a ``bigint``."""
    digest = hashlib.blake2b(email.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@dataclass(frozen=True)
class _Split:
    """Which days of a period come from the rollups: ``first``..``last`` but ``dirty``."""

    first: date | None = None
    last: date | None = None
    dirty: frozenset[date] = frozenset()

    @property
    def empty(self) -> bool:
        return self.first is None

    def rollup_q(self) -> Q:
        condition = Q(day__gte=self.first, day__lte=self.last)
        if self.dirty:
            condition &= ~Q(day__in=sorted(self.dirty))
        return condition

    def live_q(self, period: Period, field_name: str) -> Q:
        """``field_name`` in the period, on a day the rollups do not give."""
        if self.empty:
            return period.q(field_name)
        outside = Q(**{f"{field_name}__lt": _midnight(self.first)}) | Q(
            **{f"{field_name}__gte": _midnight(self.last + timedelta(days=1))}
        )
        for day in sorted(self.dirty):
            outside |= Q(
                **{
                    f"{field_name}__gte": _midnight(day),
                    f"{field_name}__lt": _midnight(day + timedelta(days=1)),
                }
            )
        return period.q(field_name) & outside


def _local_day(moment: datetime | date | None, tz) -> date | None:
    if moment is None or not isinstance(moment, datetime):
        return moment
    return timezone.localtime(moment, tz).date()


def _changed_days(state: RollupState, tz) -> set[date]:
    """The days that orders updated, and clicks written, since the last refresh touch."""
    days: set[date] = set()
    if state.jobs_mark is not None:
        rows = (
            PurchaseJob.objects.order_by()
            .filter(updated_at__gte=state.jobs_mark)
            .values_list(TruncDate("created_at", tzinfo=tz), TruncDate("paid_at", tzinfo=tz))
            .distinct()
        )
        for created, paid in rows:
            days.update(day for day in (created, paid) if day is not None)
    days.update(
        ImageClick.objects.order_by()
        .filter(pk__gt=state.clicks_mark)
        .values_list(TruncDate("created_at", tzinfo=tz), flat=True)
        .distinct()
    )
    return days


def _split(period: Period) -> _Split:
    if _LIVE.get():
        return _Split()
    tz = site_timezone()
    state = RollupState.objects.filter(pk=1).first()
    if (
        state is None
        or state.time_zone != str(tz)
        or state.first_day is None
        or state.built_until is None
    ):
        return _Split()
    first, last = state.first_day, state.built_until - timedelta(days=1)
    if period.start is not None:
        day = period.first_day
        first = max(first, day if _midnight(day) == period.start else day + timedelta(days=1))
    if period.end is not None:
        last = min(last, timezone.localtime(period.end, tz).date() - timedelta(days=1))
    if first > last:
        return _Split()
    dirty = frozenset(day for day in _changed_days(state, tz) if first <= day <= last)
    return _Split(first, last, dirty)


def _chunks(values: list, size: int = 500) -> Iterator[list]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


@dataclass
class _Merge:
    """Rows of figures keyed by ``keys`` (order fields the rollups keep) and, with a
    ``granularity``, by bucket, added up from the live tables and the rollups."""

    keys: list[str]
    granularity: str | None
    titles: str | None
    found: dict[tuple, dict[str, Any]] = field(default_factory=dict)

    @property
    def fields(self) -> list[str]:
        return [*self.keys, *(["bucket"] if self.granularity else [])]

    def bucketed(self, queryset, column: str, output_field):
        if not self.granularity:
            return queryset
        tz = site_timezone() if isinstance(output_field, DateTimeField) else None
        return queryset.annotate(
            bucket=Trunc(column, self.granularity, output_field=output_field, tzinfo=tz)
        )

    def key_of(self, row) -> tuple:
        values = [row[name] for name in self.keys]
        if self.granularity:
            day = _local_day(row["bucket"], site_timezone())
            values.append(bucket_start(day, self.granularity))
        return tuple(values)

    def add(self, row) -> None:
        target = self.found.setdefault(self.key_of(row), {"customers": 0, "title": ""})
        for name in (*ROLLUP_SUMS, "customers"):
            target[name] = target.get(name, 0) + (row.get(name) or 0)
        if self.titles:
            target["title"] = max(target["title"], row.get("title") or "")

    def kept_customers(self, split: _Split):
        """The rolled-up customers of the split's days, with this merge's keys."""
        for ref in {"image_ref", "page_ref"} & set(self.keys):
            kept = ReportItemCustomer.objects.order_by().filter(
                split.rollup_q(), group=ref.removesuffix("_ref")
            )
            return self.bucketed(kept.annotate(**{ref: F("ref")}), "day", DateField())
        others = [name for name in self.keys if name != "currency"]
        group = CUSTOMER_GROUPS.get(others[0] if others else "", "all")
        kept = ReportCustomer.objects.order_by().filter(split.rollup_q(), group=group)
        if others:
            kept = kept.annotate(**{others[0]: F("key")})
        return self.bucketed(kept, "day", DateField())

    def add_customers(self, live, split: _Split) -> None:
        """Those of the rolled-up days, plus the live ones not among them (the live part
        is today and the days changed since the refresh: few). A rolled-up customer
        counts on the first of their days in the stretch (or bucket): the row whose
        previous day is before it; with changed days inside the stretch, that chain may
        pass through a day now read live, so those are counted with ``DISTINCT``."""
        kept = self.kept_customers(split)
        if kept.model is ReportCustomer and not split.dirty:
            since = Value(split.first, output_field=DateField())
            if self.granularity:
                since = Greatest(F("bucket"), since, output_field=DateField())
            first_days = kept.filter(Q(previous__isnull=True) | Q(previous__lt=since))
            counted = first_days.values(*self.fields).annotate(customers=Count("id"))
        else:
            counted = kept.values(*self.fields).annotate(customers=Count("customer", distinct=True))
        for row in counted:
            self.add(row)
        live_people: dict[tuple, set[int]] = defaultdict(set)
        people = live.exclude(email="").annotate(customer=Lower("email"))
        for row in people.values(*self.fields, "customer").distinct():
            live_people[self.key_of(row)].add(customer_key(row["customer"]))
        everyone = sorted({person for found in live_people.values() for person in found})
        known: dict[tuple, set[int]] = defaultdict(set)
        for chunk in _chunks(everyone):
            for row in kept.filter(customer__in=chunk).values(*self.fields, "customer").distinct():
                known[self.key_of(row)].add(row["customer"])
        for key, found in live_people.items():
            self.found[key]["customers"] += len(found - known[key])


def _merged_figures(
    period: Period,
    keys: list[str],
    *,
    granularity: str | None = None,
    titles: str | None = None,
    customers: bool = True,
) -> dict[tuple, dict[str, Any]]:
    """The figures of the orders paid in the period, per ``keys`` and per bucket of
    ``granularity``: the rollups' whole days plus the live tables' rest. ``titles`` adds
    the greatest image or page title (``"image"``, ``"page"``). A row per combination
    that has paid orders, as the live query alone would give."""
    split = _split(period)
    merge = _Merge(keys, granularity, titles)
    live = paid_orders(period).filter(split.live_q(period, "paid_at"))
    aggregates = _figure_aggregates()
    if not customers or not split.empty:
        del aggregates["customers"]  # added up below
    if titles:
        aggregates["title"] = Max(f"{titles}_title")
    live_rows = merge.bucketed(live, "paid_at", DateTimeField())
    for row in live_rows.values(*merge.fields).annotate(**aggregates).order_by():
        merge.add(row)
    if split.empty:
        return merge.found
    rollup = ReportRollup.objects.order_by().filter(split.rollup_q(), orders__gt=0)
    sums = {name: Coalesce(Sum(name), Value(0)) for name in ROLLUP_SUMS}
    if titles:
        sums["title"] = Max(f"{titles}_title")
    for row in merge.bucketed(rollup, "day", DateField()).values(*merge.fields).annotate(**sums):
        merge.add(row)
    if customers:
        merge.add_customers(live_rows, split)
    return merge.found


def _date_bounds(days: list[date]) -> list[tuple[date, date]]:
    """Consecutive days as (first, last) runs."""
    runs: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if runs and runs[-1][1] + timedelta(days=1) == day:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


_CELL_DIMS = ["site_id", "currency", "image_ref", "page_ref", "resolution", "licence_key"]
_STARTED_COUNTS = {
    "started": Count("id"),
    "started_paid": Count("id", filter=PAID),
    "delivered": Count("id", filter=Q(completed_at__isnull=False)),
    "started_refunded": Count(
        "id", filter=Q(refund_amount_cents__gt=0) | Q(refunded_at__isnull=False)
    ),
    "abandoned": Count("id", filter=Q(status=JobStatus.ABANDONED)),
}
_PAID_SUMS = {
    **MONEY_SUMS,
    "orders": Count("id"),
    "refunded_orders": Count("id", filter=Q(refund_amount_cents__gt=0)),
    "image_title": Coalesce(Max("image_title"), Value("")),
    "page_title": Coalesce(Max("page_title"), Value("")),
    "last_paid_at": Max("paid_at"),
}


def _fill_cells(cells: dict[tuple, ReportRollup], rows, dims: list[str], values) -> None:
    """Add grouped rows (a day ``d``, ``dims``, then ``values``) to their cells."""
    for row in rows.values("d", *dims).annotate(**values):
        key = (row["d"], *(row.get(name, "") for name in _CELL_DIMS))
        found = cells.get(key)
        if found is None:
            found = cells[key] = ReportRollup(
                day=key[0], **dict(zip(["site_ref", *_CELL_DIMS[1:]], key[1:], strict=True))
            )
        for name in values:
            setattr(found, name, row[name])


#: The order field each ``ReportCustomer`` group is keyed by ("all": none).
CUSTOMER_GROUPS = {"resolution": "resolution", "licence_key": "licence"}


def _save_in_batches(model, rows: Iterable) -> None:
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) >= ROLLUP_BATCH:
            model.objects.bulk_create(batch)
            batch = []
    model.objects.bulk_create(batch)


def _customer_rows(people) -> Iterator[ReportCustomer]:
    """``ReportCustomer`` rows, each linked to the one before it in its chain (within
    these rows: ``_link_customers`` links chains across refreshes)."""
    for field_name, group in [("", "all"), *CUSTOMER_GROUPS.items()]:
        key = F(field_name) if field_name else Value("")
        rows = (
            people.annotate(k=key)
            .values_list("currency", "k", "e", "d")
            .distinct()
            .order_by("currency", "k", "e", "d")
        )
        chain, previous = None, None
        for currency, value, email, day in rows.iterator(chunk_size=ROLLUP_BATCH):
            if chain != (currency, value, email):
                chain, previous = (currency, value, email), None
            yield ReportCustomer(
                day=day,
                group=group,
                key=value,
                currency=currency,
                customer=customer_key(email),
                previous=previous,
            )
            previous = day


def _link_customers(customers: set[int]) -> None:
    """Set ``previous`` again on every row of these customers."""
    changed = []
    for chunk in _chunks(sorted(customers)):
        rows = ReportCustomer.objects.filter(customer__in=chunk).order_by(
            "group", "key", "currency", "customer", "day"
        )
        chain, previous = None, None
        for row in rows:
            if chain != (row.group, row.key, row.currency, row.customer):
                chain, previous = (row.group, row.key, row.currency, row.customer), None
            if row.previous != previous:
                row.previous = previous
                changed.append(row)
            previous = row.day
    ReportCustomer.objects.bulk_update(changed, ["previous"], batch_size=500)


def _build_customers(paid, tz) -> set[int]:
    """The customer rows of the paid orders; returns the customers found."""
    people = paid.exclude(email="").annotate(d=TruncDate("paid_at", tzinfo=tz), e=Lower("email"))
    found: set[int] = set()

    def noted(rows):
        for row in rows:
            found.add(row.customer)
            yield row

    _save_in_batches(ReportCustomer, noted(_customer_rows(people)))
    for group in ("image", "page"):
        rows = people.values_list("d", "currency", f"{group}_ref", "e").distinct()
        _save_in_batches(
            ReportItemCustomer,
            (
                ReportItemCustomer(
                    day=day, currency=currency, group=group, ref=ref, customer=customer_key(email)
                )
                for day, currency, ref, email in rows.iterator(chunk_size=ROLLUP_BATCH)
            ),
        )
    return found


def _build_days(first: date, last: date, tz, *, link: bool = True) -> None:
    """Replace the rollup rows of ``first``..``last`` with what the live tables hold;
    ``link``: link the customers' rows to those of other days (not needed when all days
    are built at once)."""
    start, end = _midnight(first), _midnight(last + timedelta(days=1))
    days = ReportCustomer.objects.filter(day__gte=first, day__lte=last)
    before = set(days.values_list("customer", flat=True).distinct()) if link else set()
    for model in (ReportRollup, ReportCustomer, ReportItemCustomer):
        model.objects.filter(day__gte=first, day__lte=last).delete()
    jobs = PurchaseJob.objects.order_by()
    paid = jobs.filter(paid_at__gte=start, paid_at__lt=end)
    created = jobs.filter(created_at__gte=start, created_at__lt=end)
    clicks = ImageClick.objects.order_by().filter(created_at__gte=start, created_at__lt=end)
    cells: dict[tuple, ReportRollup] = {}
    _fill_cells(cells, paid.annotate(d=TruncDate("paid_at", tzinfo=tz)), _CELL_DIMS, _PAID_SUMS)
    _fill_cells(
        cells, created.annotate(d=TruncDate("created_at", tzinfo=tz)), _CELL_DIMS, _STARTED_COUNTS
    )
    _fill_cells(
        cells,
        clicks.annotate(d=TruncDate("created_at", tzinfo=tz), site_id=F("site_ref")),
        ["site_id", "image_ref", "page_ref"],
        {"clicks": Count("id")},
    )
    ReportRollup.objects.bulk_create(cells.values(), batch_size=ROLLUP_BATCH)
    after = _build_customers(paid, tz)
    if link:
        _link_customers(before | after)


def refresh_rollups(now: datetime | None = None, *, rebuild: bool = False) -> int:
    """Bring the rollups up to date: every whole day before today that is not built yet,
    and every day an order or a click changed since the last refresh; all of them when
    the site's time zone changed (or ``rebuild``). Returns how many days were built."""
    now = now or timezone.now()
    tz = site_timezone()
    today = timezone.localtime(now, tz).date()
    with transaction.atomic():
        state, _created = RollupState.objects.select_for_update().get_or_create(
            pk=1, defaults={"time_zone": str(tz)}
        )
        seen = ImageClick.objects.aggregate(last=Max("id"))["last"] or 0
        everything = rebuild or _created or state.time_zone != str(tz) or state.built_until is None
        if everything:
            for model in (ReportRollup, ReportCustomer, ReportItemCustomer):
                model.objects.all().delete()
            earliest = [
                PurchaseJob.objects.aggregate(first=Min("created_at"))["first"],
                ImageClick.objects.aggregate(first=Min("created_at"))["first"],
            ]
            found = [_local_day(moment, tz) for moment in earliest if moment is not None]
            first = min(found) if found else today
            days = [first + timedelta(days=n) for n in range((today - first).days)]
            state.first_day, clicks_mark = first, seen
        else:
            days = [day for day in _changed_days(state, tz) if day < today]
            days += [
                state.built_until + timedelta(days=n)
                for n in range((today - state.built_until).days)
            ]
            if days:
                state.first_day = min([*days, state.first_day or min(days)])
            clicks_mark = state.clicks_seen
        for first, last in _date_bounds(days):
            _build_days(first, last, tz, link=not everything)
        state.time_zone = str(tz)
        state.built_until = today
        state.jobs_mark = now - ROLLUP_MARGIN
        state.clicks_mark, state.clicks_seen = clicks_mark, seen
        state.refreshed_at = now
        state.save()
    return len(set(days))


def totals(period: Period) -> dict[str, Figures]:
    """Per currency, the currency with the most net revenue first."""
    rows = _merged_figures(period, ["currency"])
    found = [Figures.from_row({**row, "currency": key[0]}) for key, row in rows.items()]
    return {f.currency: f for f in sorted(found, key=lambda f: (-f.net, f.currency))}


@dataclass(frozen=True)
class Delta:
    """A figure against the previous period's."""

    current: int | Decimal | None
    previous: int | Decimal | None

    @property
    def change(self):
        if self.current is None or self.previous is None:
            return None
        return self.current - self.previous

    @property
    def percent(self) -> Decimal | None:
        if self.change is None or not self.previous:
            return None
        return ratio(self.change, abs(self.previous))

    @property
    def direction(self) -> str:
        change = self.change
        if not change:
            return "flat"
        return "up" if change > 0 else "down"


@dataclass(frozen=True)
class Comparison:
    currency: str
    current: Figures
    previous: Figures | None

    def delta(self, name: str) -> Delta:
        return Delta(
            getattr(self.current, name),
            getattr(self.previous, name) if self.previous is not None else None,
        )


def compare(period: Period) -> list[Comparison]:
    """This period's totals beside the previous period's, per currency (two queries)."""
    now = totals(period)
    before_period = period.previous()
    before = totals(before_period) if before_period is not None else {}
    currencies = list(now) + [c for c in before if c not in now]
    return [
        Comparison(
            currency,
            now.get(currency, Figures(currency)),
            before.get(currency, Figures(currency)) if before_period is not None else None,
        )
        for currency in currencies
    ]


# --- over time ----------------------------------------------------------------------------

GRANULARITIES = [("day", _("Day")), ("week", _("Week")), ("month", _("Month"))]


def default_granularity(period: Period) -> str:
    days = period.days
    if days is not None and days <= 62:
        return "day"
    if days is not None and days <= 190:
        return "week"
    return "month"


def bucket_start(day: date, granularity: str) -> date:
    if granularity == "month":
        return day.replace(day=1)
    if granularity == "week":
        return day - timedelta(days=day.weekday())
    return day


def next_bucket(day: date, granularity: str) -> date:
    if granularity == "month":
        return _add_months(day, 1)
    return day + timedelta(days=7 if granularity == "week" else 1)


def bucket_key(day: date, granularity: str) -> str:
    """The bucket's name in tables and files: ``2026-01-10``, ``2026-W02``, ``2026-01``."""
    if granularity == "month":
        return day.strftime("%Y-%m")
    if granularity == "week":
        year, week, _weekday = day.isocalendar()
        return f"{year}-W{week:02d}"
    return day.isoformat()


def bucket_short_label(day: date, granularity: str) -> str:
    """The bucket's name under a chart's bar (localised month names)."""
    if granularity == "month":
        return formats.date_format(day, "M Y")
    return formats.date_format(day, "M j")


MAX_BUCKETS = 400


@dataclass
class Series:
    """Per currency, one ``Figures`` per bucket, on one x-axis shared by all currencies."""

    granularity: str
    buckets: list[date]
    by_currency: dict[str, dict[date, Figures]] = field(default_factory=dict)

    def figures(self, currency: str) -> list[Figures]:
        found = self.by_currency.get(currency, {})
        return [found.get(day, Figures(currency)) for day in self.buckets]

    @property
    def currencies(self) -> list[str]:
        return list(self.by_currency)


def series(period: Period, granularity: str | None = None) -> Series:
    """Figures per day, week or month. Buckets run over the whole period (all time: from
    the first paid order to the last), the same for every currency."""
    granularity = granularity or default_granularity(period)
    rows = _merged_figures(period, ["currency"], granularity=granularity)
    by_currency: dict[str, dict[date, Figures]] = defaultdict(dict)
    for (currency, day), row in sorted(rows.items(), key=lambda item: (item[0][1], item[0][0])):
        by_currency[currency][day] = Figures.from_row({**row, "currency": currency})
    if period.start is not None:
        first, last = period.first_day, period.shown_last_day
    else:
        days = [day for found in by_currency.values() for day in found]
        first, last = (min(days), max(days)) if days else (None, None)
    buckets = []
    if first is not None:
        day = bucket_start(first, granularity)
        while day <= last and len(buckets) < MAX_BUCKETS:
            buckets.append(day)
            day = next_bucket(day, granularity)
    ordered = sorted(
        by_currency.items(), key=lambda item: (-sum(f.net for f in item[1].values()), item[0])
    )
    return Series(granularity, buckets, dict(ordered))


# --- breakdowns ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Breakdown:
    """A way to split the figures: the order field it groups by, and its heading.
    ``names`` gives the values people read for the keys found (the keys themselves when
    there is none)."""

    name: str
    field: str
    label: Promise
    names: Any = None


def licence_names(period: Period, keys: Iterable[str]) -> dict[str, str]:
    """Each licence key's name as the latest order paid in the period bought it (a licence
    renamed since keeps one row, under its newer name); orders from before licences have
    none."""
    found = {"": str(_("None (ordered before licences)"))}
    wanted = [key for key in keys if key]
    split = _split(period)
    if split.empty:
        rows = (
            paid_orders(period)
            .filter(licence_key__in=wanted)
            .values_list("licence_key", "licence_name")
            .order_by("licence_key", "-paid_at", "-id")
        )
        for key, name in rows:
            found.setdefault(key, name or key)
        return found
    # The latest payment per licence, from both halves; then that order's name.
    latest: dict[str, datetime] = {}
    halves = [
        paid_orders(period)
        .filter(split.live_q(period, "paid_at"), licence_key__in=wanted)
        .values_list("licence_key")
        .annotate(last=Max("paid_at")),
        ReportRollup.objects.order_by()
        .filter(split.rollup_q(), orders__gt=0, licence_key__in=wanted)
        .values_list("licence_key")
        .annotate(last=Max("last_paid_at")),
    ]
    for rows in halves:
        for key, last in rows:
            if last is not None and (key not in latest or last > latest[key]):
                latest[key] = last
    for key in sorted(latest):
        name = (
            PurchaseJob.objects.filter(PAID, licence_key=key, paid_at=latest[key])
            .order_by("-id")
            .values_list("licence_name", flat=True)
            .first()
        )
        found[key] = name or key
    return found


#: The breakdowns the revenue report shows, in order.
BREAKDOWNS: dict[str, Breakdown] = {
    "resolution": Breakdown("resolution", "resolution", _("Resolution")),
    "licence": Breakdown("licence", "licence_key", _("Licence"), names=licence_names),
}


@dataclass(frozen=True)
class BreakdownRow:
    key: str
    figures: Figures
    #: What people read for the key (the key itself when the breakdown names none).
    name: str = ""

    def as_row(self) -> dict[str, Any]:
        return {"key": self.key, "name": self.name or self.key, **self.figures.as_row()}


def breakdown(period: Period, name: str) -> list[BreakdownRow]:
    """Figures per value of one breakdown and currency, best sellers first."""
    group = BREAKDOWNS[name].field
    rows = [
        {**row, group: key[0], "currency": key[1]}
        for key, row in _merged_figures(period, [group, "currency"]).items()
    ]
    names = {}
    if BREAKDOWNS[name].names is not None:
        names = BREAKDOWNS[name].names(period, {row[group] or "" for row in rows})
    found = [
        BreakdownRow(str(row[group] or "—"), Figures.from_row(row), names.get(row[group] or "", ""))
        for row in rows
    ]
    return sorted(found, key=lambda r: (r.figures.currency, -r.figures.net, r.key))


# --- images and pages ---------------------------------------------------------------------


@dataclass
class ItemRow:
    """One image or page: clicks once, money per currency."""

    ref: int
    title: str
    clicks: int = 0
    purchases: int = 0
    top_resolution: str = ""
    money: dict[str, Figures] = field(default_factory=dict)

    @property
    def conversion(self) -> Decimal | None:
        return ratio(self.purchases, self.clicks)

    def net(self, currency: str) -> int:
        found = self.money.get(currency)
        return found.net if found else 0

    def as_row(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "title": self.title,
            "clicks": self.clicks,
            "purchases": self.purchases,
            "conversion": self.conversion,
            "top_resolution": self.top_resolution,
            "money": {currency: f.as_row() for currency, f in self.money.items()},
        }


@dataclass
class Items:
    group: str
    rows: list[ItemRow]
    currencies: list[str]


ITEM_ORDERINGS = ("title", "clicks", "purchases", "conversion", "net", "margin")


def items(period: Period, group: str = "image", ordering: str = "-net") -> Items:
    """Per image or per page: clicks made and orders paid in the period, money per
    currency; items clicked but never bought too."""
    ref = f"{group}_ref"
    sales = [
        {**row, ref: key[0], "currency": key[1]}
        for key, row in sorted(
            _merged_figures(period, [ref, "currency"], titles=group).items(),
            key=lambda item: item[0],
        )
    ]
    click_buffer.flush()  # buffered clicks count: the figures stay exact
    split = _split(period)
    clicks: dict[int, int] = defaultdict(int)
    for key, n in (
        ImageClick.objects.order_by()
        .filter(split.live_q(period, "created_at"))
        .values(ref)
        .annotate(n=Count("id"))
        .values_list(ref, "n")
    ):
        clicks[key] += n
    if not split.empty:
        for key, n in (
            ReportRollup.objects.order_by()
            .filter(split.rollup_q(), clicks__gt=0)
            .values(ref)
            .annotate(n=Sum("clicks"))
            .values_list(ref, "n")
        ):
            clicks[key] += n
    counted = _merged_figures(period, [ref, "resolution"], customers=False)
    top: dict[int, str] = {}
    for key, resolution in sorted(
        counted, key=lambda found: (found[0], -counted[found]["orders"], found[1])
    ):
        top.setdefault(key, resolution)

    found: dict[int, ItemRow] = {}
    totals_by_currency: dict[str, int] = defaultdict(int)
    for row in sales:
        item = found.setdefault(row[ref], ItemRow(row[ref], row["title"] or ""))
        figures = Figures.from_row(row)
        item.money[row["currency"]] = figures
        item.purchases += figures.orders
        totals_by_currency[row["currency"]] += figures.net
    missing = [key for key in clicks if key not in found]
    titles = _titles(group, missing)
    for key in missing:
        found[key] = ItemRow(key, titles.get(key, ""))
    for key, item in found.items():
        item.clicks = clicks.get(key, 0)
        item.top_resolution = top.get(key, "")
        item.title = item.title or f"#{key}"
    currencies = sorted(totals_by_currency, key=lambda c: (-totals_by_currency[c], c))
    return Items(group, sort_items(list(found.values()), ordering, currencies), currencies)


def sort_items(rows: list[ItemRow], ordering: str, currencies: list[str]) -> list[ItemRow]:
    """Money sorts by the leading currency (the one with the most net revenue); ties keep
    alphabetical order."""
    key = ordering.lstrip("-")
    if key not in ITEM_ORDERINGS:
        key, ordering = "net", "-net"
    main = currencies[0] if currencies else ""

    def value(row: ItemRow):
        if key == "title":
            return row.title.lower()
        if key in ("net", "margin"):
            found = row.money.get(main)
            return getattr(found, key) if found else 0
        found = getattr(row, key)
        return found if found is not None else Decimal(-1)

    alphabetical = sorted(rows, key=lambda row: (row.title.lower(), row.ref))
    return sorted(alphabetical, key=value, reverse=ordering.startswith("-"))


def _titles(group: str, keys) -> dict[int, str]:
    if not keys:
        return {}
    # The page model a site may swap in (Wagtail 8) is looked up when asked.
    model = get_image_model() if group == "image" else apps.get_model(PAGE_MODEL)
    return dict(model.objects.filter(pk__in=keys).values_list("pk", "title"))


# --- funnel -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Funnel:
    clicks: int
    started: int
    paid: int
    delivered: int
    refunded: int
    abandoned: int

    @property
    def stages(self) -> list[tuple[str, Promise, int]]:
        return [
            ("clicks", _("Clicks"), self.clicks),
            ("started", _("Checkouts started"), self.started),
            ("paid", _("Paid"), self.paid),
            ("delivered", _("Delivered"), self.delivered),
        ]

    def rows(self) -> list[dict[str, Any]]:
        rows, previous = [], None
        for key, label, count in self.stages:
            rows.append(
                {
                    "key": key,
                    "stage": str(label),
                    "count": count,
                    "of_previous": ratio(count, previous) if previous is not None else None,
                    "of_first": ratio(count, self.clicks),
                }
            )
            previous = count
        return rows

    @property
    def abandonment_rate(self) -> Decimal | None:
        return ratio(self.started - self.paid, self.started)

    @property
    def refund_rate(self) -> Decimal | None:
        return ratio(self.refunded, self.paid)

    def as_dict(self) -> dict[str, Any]:
        return {
            "clicks": self.clicks,
            "started": self.started,
            "paid": self.paid,
            "delivered": self.delivered,
            "refunded": self.refunded,
            "abandoned": self.abandoned,
            "abandonment_rate": self.abandonment_rate,
            "refund_rate": self.refund_rate,
        }


#: The funnel's figures and the rollup columns that hold them.
FUNNEL_COLUMNS = {
    "clicks": "clicks",
    "started": "started",
    "paid": "started_paid",
    "delivered": "delivered",
    "refunded": "started_refunded",
    "abandoned": "abandoned",
}


def funnel(period: Period) -> Funnel:
    """Clicks → checkouts started → paid → delivered, for what started in the period."""
    split = _split(period)
    started = PurchaseJob.objects.order_by().filter(split.live_q(period, "created_at"))
    counts = started.aggregate(
        started=Count("id"),
        paid=Count("id", filter=PAID),
        delivered=Count("id", filter=Q(completed_at__isnull=False)),
        refunded=Count("id", filter=Q(refund_amount_cents__gt=0) | Q(refunded_at__isnull=False)),
        abandoned=Count("id", filter=Q(status=JobStatus.ABANDONED)),
    )
    click_buffer.flush()  # buffered clicks count: the figures stay exact
    clicks = ImageClick.objects.order_by().filter(split.live_q(period, "created_at")).count()
    if not split.empty:
        kept = ReportRollup.objects.order_by().filter(split.rollup_q())
        sums = kept.aggregate(
            **{name: Coalesce(Sum(column), Value(0)) for name, column in FUNNEL_COLUMNS.items()}
        )
        clicks += sums.pop("clicks")
        counts = {name: counts[name] + sums[name] for name in counts}
    return Funnel(clicks=clicks, **counts)


def funnel_resolutions(period: Period) -> list[dict[str, Any]]:
    split = _split(period)
    rows = (
        PurchaseJob.objects.order_by()
        .filter(split.live_q(period, "created_at"))
        .values("resolution")
        .annotate(started=Count("id"), paid=Count("id", filter=PAID))
        .order_by("-paid", "-started", "resolution")
    )
    if split.empty:
        return [{**row, "conversion": ratio(row["paid"], row["started"])} for row in rows]
    merged: dict[str, dict[str, int]] = {}
    kept = (
        ReportRollup.objects.order_by()
        .filter(split.rollup_q(), started__gt=0)
        .values("resolution")
        .annotate(started=Sum("started"), paid=Sum("started_paid"))
    )
    for row in [*rows, *kept]:
        found = merged.setdefault(row["resolution"], {"started": 0, "paid": 0})
        found["started"] += row["started"]
        found["paid"] += row["paid"]
    ordered = sorted(
        merged.items(), key=lambda item: (-item[1]["paid"], -item[1]["started"], item[0])
    )
    return [
        {"resolution": key, **row, "conversion": ratio(row["paid"], row["started"])}
        for key, row in ordered
    ]


# --- customers ----------------------------------------------------------------------------

CUSTOMER_ORDERINGS = {
    "orders": ("-orders", "-last_order", "customer"),
    "last_order": ("-last_order", "customer"),
    "first_order": ("first_order", "customer"),
    "email": ("customer",),
}


@dataclass
class Customer:
    email: str
    orders: int
    first_order: datetime
    last_order: datetime
    money: dict[str, Figures] = field(default_factory=dict)

    @property
    def repeat(self) -> bool:
        return self.orders > 1

    def as_row(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "orders": self.orders,
            "first_order": self.first_order,
            "last_order": self.last_order,
            "money": {currency: f.as_row() for currency, f in self.money.items()},
        }


class CustomerList:
    """Customers by email, as a sequence Django's paginator can slice: a page costs two
    queries (the people, then their money per currency), whatever its size."""

    def __init__(self, period: Period, ordering: str = "orders"):
        self.period = period
        self.ordering = ordering if ordering in CUSTOMER_ORDERINGS else "orders"
        self._count: int | None = None

    def _orders(self):
        return paid_orders(self.period).exclude(email="").annotate(customer=Lower("email"))

    def _people(self):
        return (
            self._orders()
            .values("customer")
            .annotate(orders=Count("id"), first_order=Min("paid_at"), last_order=Max("paid_at"))
        )

    def count(self) -> int:
        if self._count is None:
            self._count = self._orders().values("customer").distinct().count()
        return self._count

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, index):
        if isinstance(index, int):
            return self[index : index + 1][0]
        people = list(self._people().order_by(*CUSTOMER_ORDERINGS[self.ordering])[index])
        emails = [row["customer"] for row in people]
        money: dict[str, dict[str, Figures]] = defaultdict(dict)
        if emails:
            for row in (
                self._orders()
                .filter(customer__in=emails)
                .values("customer", "currency")
                .annotate(**MONEY_SUMS, orders=Count("id"))
                .order_by("customer", "currency")
            ):
                money[row["customer"]][row["currency"]] = Figures.from_row(row)
        return [
            Customer(
                email=row["customer"],
                orders=row["orders"],
                first_order=row["first_order"],
                last_order=row["last_order"],
                money=money.get(row["customer"], {}),
            )
            for row in people
        ]

    def __iter__(self):
        return iter(self[0 : self.count()])


@dataclass(frozen=True)
class CustomerSummary:
    customers: int
    repeat_customers: int
    orders: int

    @property
    def repeat_rate(self) -> Decimal | None:
        return ratio(self.repeat_customers, self.customers)

    @property
    def orders_per_customer(self) -> Decimal | None:
        if not self.customers:
            return None
        return (Decimal(self.orders) / self.customers).quantize(Decimal("0.01"))

    def as_dict(self) -> dict[str, Any]:
        return {
            "customers": self.customers,
            "repeat_customers": self.repeat_customers,
            "repeat_rate": self.repeat_rate,
            "orders": self.orders,
        }


def customer_summary(period: Period) -> CustomerSummary:
    """How many customers, and how many came back (three queries)."""
    listing = CustomerList(period)
    people = listing._people().order_by()
    return CustomerSummary(
        customers=listing.count(),
        repeat_customers=people.filter(orders__gt=1).count(),
        orders=listing._orders().count(),
    )


def customer_lifetime(email: str) -> dict[str, Figures]:
    """One customer's paid orders of all time, per currency (for an order's page)."""
    rows = (
        PurchaseJob.objects.order_by()
        .filter(PAID, email__iexact=email)
        .values("currency")
        .annotate(**_figure_aggregates())
    )
    return {row["currency"]: Figures.from_row(row) for row in rows}


# --- dashboard ----------------------------------------------------------------------------


def snapshot(now: datetime | None = None) -> dict[str, list[Comparison]]:
    """Today so far and this month to date, each against the same stretch before."""
    now = now or timezone.now()
    return {
        "today": compare(resolve_period("today", now=now)),
        "this_month": compare(resolve_period("this-month", now=now)),
    }


# --- tables: one format for the admin's exports and the command line -------------------------


@dataclass(frozen=True)
class Column:
    """``kind``: text, count, money (minor units; currency from ``currency`` or the row's
    ``currency``), percent, date or datetime."""

    key: str
    label: Any
    kind: str = "text"
    currency: str = ""

    @property
    def heading(self) -> str:
        if self.kind == "money" and self.currency:
            return f"{self.label} ({self.currency.upper()})"
        if self.kind == "percent":
            return f"{self.label} (%)"
        return str(self.label)


@dataclass
class Table:
    """A named sheet of rows (dicts of plain values)."""

    name: str
    columns: list[Column]
    rows: list[dict[str, Any]]


def cell_currency(column: Column, row: dict) -> str:
    return column.currency or row.get("currency") or ""


def export_value(column: Column, row: dict):
    """The one export rule: money in major units as a number (its currency in the heading
    or in a Currency column), percentages as numbers, currencies upper case, dates in the
    site's time zone, text as it is."""
    value = row.get(column.key)
    if value is None:
        return None
    if column.kind == "money":
        return major_units(value, cell_currency(column, row))
    if column.key == "currency" and isinstance(value, str):
        return value.upper()
    if column.kind == "datetime" and isinstance(value, datetime):
        return timezone.localtime(value, site_timezone()).replace(tzinfo=None, microsecond=0)
    if isinstance(value, Promise):
        return str(value)
    return value


def display_value(column: Column, row: dict) -> str:
    """The same value, as a person reads it (the admin's tables, the command's table)."""
    value = row.get(column.key)
    if value is None or value == "":
        return "—"
    if column.kind == "money":
        currency = cell_currency(column, row)
        return format_price(value, currency) if currency else "—"
    if column.kind == "percent":
        return format_ratio(value)
    if column.kind == "datetime":
        return formats.date_format(timezone.localtime(value, site_timezone()), "DATETIME_FORMAT")
    if column.key == "currency":
        return str(value).upper()
    return str(value)


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def escape_formula(value):
    """Text a spreadsheet would run as a formula gets an apostrophe in front (the OWASP
    "CSV injection" advice); numbers are left alone."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def csv_value(value):
    if value is None:
        return ""
    if isinstance(value, Promise):
        value = str(value)
    return escape_formula(value if isinstance(value, (int, Decimal)) else str(value))


class _Echo:
    """A file for ``csv.writer`` that hands each line back instead of storing it."""

    def write(self, value):
        return value


def csv_lines(table: Table, rows: Iterable[dict] | None = None) -> Iterator[str]:
    """The table as CSV lines, by the export rule, formulas escaped."""
    writer = csv.writer(_Echo())
    yield writer.writerow([csv_value(c.heading) for c in table.columns])
    for row in table.rows if rows is None else rows:
        yield writer.writerow([csv_value(export_value(c, row)) for c in table.columns])


FIGURE_COLUMNS = [
    ("orders", _("Paid orders"), "count"),
    ("sales", _("Sales"), "money"),
    ("refunds", _("Refunds"), "money"),
    ("net", _("Net revenue"), "money"),
    ("cost", _("Upscaling cost"), "money"),
    ("margin", _("Margin"), "money"),
    ("margin_rate", _("Margin rate"), "percent"),
    ("aov", _("Average order value"), "money"),
    ("customers", _("Customers"), "count"),
]


def _figure_columns(names: Iterable[str] | None = None) -> list[Column]:
    wanted = set(names) if names is not None else None
    return [
        Column(key, label, kind)
        for key, label, kind in FIGURE_COLUMNS
        if wanted is None or key in wanted
    ]


def revenue_table(found: Series, totals_by_currency: dict[str, Figures]) -> Table:
    """One row per bucket and currency (empty buckets left out), then a total per
    currency."""
    rows = []
    for currency in found.currencies:
        for day, figures in zip(found.buckets, found.figures(currency), strict=True):
            if figures.orders:
                rows.append({"period": bucket_key(day, found.granularity), **figures.as_row()})
    rows.sort(key=lambda r: r["currency"])
    rows.sort(key=lambda r: r["period"], reverse=True)
    for figures in totals_by_currency.values():
        rows.append({"period": str(_("Total")), "total": True, **figures.as_row()})
    return Table(
        str(_("Revenue")),
        [
            Column("period", _("Period")),
            Column("currency", _("Currency")),
            *_figure_columns(),
        ],
        rows,
    )


def breakdown_table(name: str, rows: list[BreakdownRow]) -> Table:
    label = BREAKDOWNS[name].label
    return Table(
        str(_("By %(name)s") % {"name": str(label).lower()}),
        [
            Column("name", label),
            Column("currency", _("Currency")),
            *_figure_columns(
                ["orders", "sales", "refunds", "net", "cost", "margin", "margin_rate"]
            ),
        ],
        [row.as_row() for row in rows],
    )


def items_table(found: Items) -> Table:
    """One row per item; money in one column per currency, so clicks are never repeated."""
    label = _("Page") if found.group == "page" else _("Image")
    columns = [
        Column("ref", _("Id"), "count"),
        Column("title", label),
        Column("clicks", _("Clicks"), "count"),
        Column("purchases", _("Paid orders"), "count"),
        Column("conversion", _("Conversion"), "percent"),
    ]
    for currency in found.currencies:
        columns += [
            Column(f"net_{currency}", _("Net revenue"), "money", currency),
            Column(f"margin_{currency}", _("Margin"), "money", currency),
        ]
    columns.append(Column("top_resolution", _("Top resolution")))
    rows = []
    for item in found.rows:
        row = {
            "ref": item.ref,
            "title": item.title,
            "clicks": item.clicks,
            "purchases": item.purchases,
            "conversion": item.conversion,
            "top_resolution": item.top_resolution,
        }
        for currency in found.currencies:
            figures = item.money.get(currency)
            row[f"net_{currency}"] = figures.net if figures else None
            row[f"margin_{currency}"] = figures.margin if figures else None
        rows.append(row)
    return Table(str(_("Pages") if found.group == "page" else _("Images")), columns, rows)


def funnel_table(found: Funnel) -> Table:
    return Table(
        str(_("Funnel")),
        [
            Column("stage", _("Stage")),
            Column("count", _("Count"), "count"),
            Column("of_previous", _("Of the previous stage"), "percent"),
            Column("of_first", _("Of clicks"), "percent"),
        ],
        found.rows(),
    )


def customers_table(people: list[Customer]) -> Table:
    currencies = sorted({c for person in people for c in person.money})
    columns = [
        Column("email", _("Customer")),
        Column("orders", _("Paid orders"), "count"),
    ]
    columns += [Column(f"net_{c}", _("Net spent"), "money", c) for c in currencies]
    columns += [
        Column("first_order", _("First order"), "datetime"),
        Column("last_order", _("Last order"), "datetime"),
    ]
    rows = []
    for person in people:
        row = {
            "email": person.email,
            "orders": person.orders,
            "first_order": person.first_order,
            "last_order": person.last_order,
        }
        for currency in currencies:
            figures = person.money.get(currency)
            row[f"net_{currency}"] = figures.net if figures else None
        rows.append(row)
    return Table(str(_("Customers")), columns, rows)
