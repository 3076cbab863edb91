"""Report periods: presets as of a moment at a month boundary, in the site's time zone, and
the period each is compared with."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from django.test import override_settings

from wagtail_smi.analytics import PeriodError, resolve_period

# 03:00 UTC on 1 March 2026 is still 28 February (22:00) in New York.
NOW = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)


def days(period) -> tuple[str, str] | None:
    if period is None:
        return None
    return (period.first_day.isoformat(), period.last_day.isoformat())


@pytest.mark.parametrize(
    "key, in_new_york, in_utc",
    [
        ("today", ("2026-02-28", "2026-02-28"), ("2026-03-01", "2026-03-01")),
        ("last-7-days", ("2026-02-21", "2026-02-27"), ("2026-02-22", "2026-02-28")),
        ("last-30-days", ("2026-01-29", "2026-02-27"), ("2026-01-30", "2026-02-28")),
        ("this-month", ("2026-02-01", "2026-02-28"), ("2026-03-01", "2026-03-31")),
        ("last-month", ("2026-01-01", "2026-01-31"), ("2026-02-01", "2026-02-28")),
        ("this-year", ("2026-01-01", "2026-12-31"), ("2026-01-01", "2026-12-31")),
        ("last-year", ("2025-01-01", "2025-12-31"), ("2025-01-01", "2025-12-31")),
    ],
)
def test_presets_at_a_month_boundary_follow_the_site_time_zone(key, in_new_york, in_utc):
    with override_settings(TIME_ZONE="America/New_York"):
        new_york = resolve_period(key, now=NOW)
        assert days(new_york) == in_new_york
        # The period starts at local midnight: 05:00 UTC in winter.
        assert new_york.start.astimezone(UTC).hour == 5
    with override_settings(TIME_ZONE="UTC"):
        assert days(resolve_period(key, now=NOW)) == in_utc


@pytest.mark.parametrize(
    "key, previous",
    [
        ("last-month", ("2025-12-01", "2025-12-31")),
        ("last-7-days", ("2026-02-14", "2026-02-20")),
        ("last-30-days", ("2025-12-30", "2026-01-28")),
        ("last-year", ("2024-01-01", "2024-12-31")),
    ],
)
@override_settings(TIME_ZONE="America/New_York")
def test_closed_periods_are_compared_with_the_same_stretch_just_before(key, previous):
    assert days(resolve_period(key, now=NOW).previous()) == previous


@override_settings(TIME_ZONE="America/New_York")
def test_running_periods_are_compared_up_to_the_same_point():
    # This month so far (1 Feb 00:00 → 28 Feb 22:00) against January up to 28 Jan 22:00.
    this_month = resolve_period("this-month", now=NOW)
    before = this_month.previous()
    assert before.start == datetime(2026, 1, 1, 5, tzinfo=UTC)
    assert before.end == datetime(2026, 1, 29, 3, tzinfo=UTC)
    assert this_month.range_label == "Feb. 1, 2026 – Feb. 28, 2026"
    # Today so far against yesterday until the same time.
    today = resolve_period("today", now=NOW)
    assert (today.previous().start, today.previous().end) == (
        datetime(2026, 2, 27, 5, tzinfo=UTC),
        datetime(2026, 2, 28, 3, tzinfo=UTC),
    )


@override_settings(TIME_ZONE="UTC")
def test_a_running_month_compared_with_a_shorter_month_stops_at_its_end():
    # 31 March 12:00: March so far is longer than February; February is not overrun.
    now = datetime(2026, 3, 31, 12, tzinfo=UTC)
    before = resolve_period("this-month", now=now).previous()
    assert (before.start, before.end) == (
        datetime(2026, 2, 1, tzinfo=UTC),
        datetime(2026, 3, 1, tzinfo=UTC),
    )


@override_settings(TIME_ZONE="UTC")
def test_custom_dates_include_both_days_and_compare_with_as_many_days_before():
    period = resolve_period("custom", start=date(2026, 1, 30), end=date(2026, 2, 2), now=NOW)
    assert days(period) == ("2026-01-30", "2026-02-02")
    assert days(period.previous()) == ("2026-01-26", "2026-01-29")
    # Dates given with a preset win over it.
    assert resolve_period("last-month", start=date(2026, 1, 30), now=NOW).key == "custom"


def test_all_time_has_no_bounds_and_nothing_to_compare_with():
    period = resolve_period("all", now=NOW)
    assert (period.start, period.end, period.previous()) == (None, None, None)


@pytest.mark.parametrize(
    "key, start, end",
    [
        ("custom", None, None),
        ("custom", date(2026, 2, 2), date(2026, 2, 1)),
        ("someday", None, None),
    ],
)
def test_impossible_periods_are_refused(key, start, end):
    with pytest.raises(PeriodError):
        resolve_period(key, start=start, end=end, now=NOW)
