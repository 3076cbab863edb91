"""Schedules that cannot be forgotten: migrate creates and repairs them, the sweeper leaves
a heartbeat, and a system check and the admin dashboard speak up when it stops."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import checks
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from tests.html_support import parse
from wagtail_smi import queue
from wagtail_smi.checks import check_sweeper_heartbeat
from wagtail_smi.models import Heartbeat
from wagtail_smi.models.health import SWEEPER
from wagtail_smi.operations import maintenance

pytestmark = pytest.mark.django_db


def periodic() -> dict[str, list[Schedule]]:
    found: dict[str, list[Schedule]] = {}
    for schedule in Schedule.objects.filter(name__in=[p.name for p in queue.SCHEDULES]):
        found.setdefault(schedule.name, []).append(schedule)
    return found


def migrate() -> None:
    call_command("migrate", "--noinput", verbosity=0)


def test_migrate_creates_the_schedules_a_site_never_made():
    Schedule.objects.all().delete()

    migrate()

    schedules = periodic()
    [sweeper] = schedules["wagtail_smi sweeper"]
    [cleanup] = schedules["wagtail_smi cleanup"]
    assert (sweeper.func, sweeper.schedule_type, sweeper.minutes, sweeper.repeats) == (
        "wagtail_smi.tasks.sweep",
        Schedule.MINUTES,
        1,
        -1,
    )
    assert (cleanup.func, cleanup.schedule_type) == ("wagtail_smi.tasks.cleanup", Schedule.DAILY)
    assert sweeper.next_run <= timezone.now()  # due at once
    assert queue.missing_schedules() == []


def test_migrate_repairs_altered_or_doubled_schedules_and_keeps_their_timing():
    migrate()
    [sweeper] = periodic()["wagtail_smi sweeper"]
    later = timezone.now() + timedelta(seconds=40)
    Schedule.objects.filter(pk=sweeper.pk).update(
        func="wagtail_smi.tasks.nothing", minutes=15, repeats=0, next_run=later
    )
    Schedule.objects.create(
        name="wagtail_smi sweeper", func="wagtail_smi.tasks.sweep", schedule_type=Schedule.MINUTES
    )
    Schedule.objects.filter(name="wagtail_smi cleanup").delete()
    assert {p.name for p in queue.missing_schedules()} == {
        "wagtail_smi sweeper",
        "wagtail_smi cleanup",
    }

    migrate()
    migrate()  # and again: nothing more changes

    schedules = periodic()
    [repaired] = schedules["wagtail_smi sweeper"]
    assert repaired.pk == sweeper.pk
    assert (repaired.func, repaired.minutes, repaired.repeats) == ("wagtail_smi.tasks.sweep", 1, -1)
    assert repaired.next_run == later
    assert len(schedules["wagtail_smi cleanup"]) == 1
    assert queue.missing_schedules() == []


def test_smi_schedules_says_what_it_did(capsys):
    Schedule.objects.all().delete()
    call_command("smi_schedules")
    call_command("smi_schedules")
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "created: wagtail_smi sweeper → wagtail_smi.tasks.sweep",
        "created: wagtail_smi cleanup → wagtail_smi.tasks.cleanup",
        "up to date: wagtail_smi sweeper → wagtail_smi.tasks.sweep",
        "up to date: wagtail_smi cleanup → wagtail_smi.tasks.cleanup",
    ]


def test_every_sweep_leaves_a_heartbeat():
    assert Heartbeat.last(SWEEPER) is None
    before = timezone.now()
    maintenance.sweep()
    first = Heartbeat.last(SWEEPER)
    assert first >= before
    maintenance.sweep()
    assert Heartbeat.last(SWEEPER) >= first
    # One row for the sweeper, however often it runs (others record reported violations).
    assert Heartbeat.objects.filter(name=SWEEPER).count() == 1


def heartbeat_warnings() -> list[checks.CheckMessage]:
    found = checks.run_checks(tags=[checks.Tags.database], databases=["default"])
    return [message for message in found if message.id == "wagtail_smi.W006"]


def test_the_database_check_warns_when_the_sweeper_never_ran_or_went_quiet():
    [never] = heartbeat_warnings()
    assert "never run" in never.msg and "qcluster" in str(never.hint)

    Heartbeat.beat(SWEEPER, timezone.now() - timedelta(minutes=6))
    [quiet] = heartbeat_warnings()
    assert quiet.level == checks.WARNING and "6\xa0minutes ago" in quiet.msg

    Heartbeat.beat(SWEEPER, timezone.now() - timedelta(minutes=4))
    assert heartbeat_warnings() == []


def test_the_heartbeat_check_needs_the_database_flag():
    # ``manage.py check`` without --database reads no table: nothing to say.
    assert check_sweeper_heartbeat(None) == []
    assert check_sweeper_heartbeat(None, databases=["default"]) != []


def test_the_dashboard_warns_while_the_sweeper_is_silent(manager_client):
    Heartbeat.beat(SWEEPER, timezone.now() - timedelta(minutes=30))
    page = parse(manager_client.get(reverse("wagtailadmin_home")).content)
    [alert] = [a for a in page.select('[role="alert"]') if "sweeper" in a.get_text()]
    assert "sweeper last ran 30\xa0minutes ago" in alert.get_text()
    assert "qcluster" in alert.get_text()

    maintenance.sweep()
    page = parse(manager_client.get(reverse("wagtailadmin_home")).content)
    assert not [a for a in page.select('[role="alert"]') if "sweeper" in a.get_text()]


def test_the_dashboard_warning_is_for_those_who_see_orders(editor_client):
    html = editor_client.get(reverse("wagtailadmin_home")).content.decode()
    assert "sweeper" not in html
