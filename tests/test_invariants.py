"""The invariant checker (``wagtail_smi.invariants``): each broken invariant is built on real
rows and real files and seen reported by ``find_violations``, ``smi_check``, the sweeper
(once) and the dashboard (to those who may see orders); a healthy shop reports nothing."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core import mail
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone

from tests.html_support import one
from wagtail_smi import invariants, tokens
from wagtail_smi.invariants import GRACE, find_violations
from wagtail_smi.models import EventCode, JobEvent, PurchaseJob, RefundRequest
from wagtail_smi.operations import maintenance, sweep
from wagtail_smi.storage import private_storage

pytestmark = pytest.mark.django_db

LATER = GRACE + timedelta(minutes=1)


def ago(**delta):
    return timezone.now() - timedelta(**delta)


@pytest.fixture(autouse=True)
def private(settings, tmp_path):
    """A private storage of this test's own: files other tests left behind are not ours."""
    settings.STORAGES = {
        **settings.STORAGES,
        "smi_private": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "private")},
        },
    }
    settings.ADMINS = [("Ops", "ops@example.com")]
    return private_storage()


@pytest.fixture
def delivered(make_job, private):
    """A completed order as the pipeline leaves it: its file stored, a token issued."""

    def factory(**fields):
        job = make_job(
            "completed",
            paid_at=ago(hours=2),
            completed_at=ago(hours=1),
            token_hash=tokens.new_download_token()[1],
            token_expires_at=timezone.now() + timedelta(hours=23),
            **fields,
        )
        name = private.save(f"wagtail_smi/{job.pk}/result.png", ContentFile(b"\x89PNG result"))
        job.result_path = name
        job.save(update_fields=["result_path"])
        return job

    return factory


def kinds(found) -> list[tuple[str, object]]:
    return [(v.kind, v.job_id) for v in found]


def submitted(job, external_id: str) -> None:
    JobEvent.objects.create(
        job=job,
        kind=JobEvent.Kind.NOTE,
        code=EventCode.SUBMITTED,
        data={"upscaler": "upsampler", "external_id": external_id, "via": "answer"},
    )


# --- a healthy shop -------------------------------------------------------------------------


def test_a_healthy_shop_has_no_violations(make_job, delivered, private):
    make_job("awaiting_payment")
    make_job("abandoned")
    make_job("paid", paid_at=ago(minutes=5))
    make_job("processing", paid_at=ago(minutes=30), deadline_at=timezone.now() + timedelta(1))
    make_job("needs_attention", paid_at=ago(days=3))  # with an admin: late is allowed
    make_job("refunded", paid_at=ago(days=1), refund_id="re_1", refund_amount_cents=50)
    make_job("completed", paid_at=ago(days=9), result_path="wagtail_smi/x/gone.png",
             file_deleted_at=ago(days=1))  # fmt: skip
    one_submission = make_job("processing", paid_at=ago(minutes=5))
    submitted(one_submission, "up_1")
    submitted(one_submission, "up_1")  # the answer and the callback name the same job
    delivered()

    assert find_violations(timezone.now() + LATER, files=True) == []


def test_smi_check_on_a_healthy_shop_says_so_and_exits_zero(delivered, capsys):
    delivered()
    call_command("smi_check")
    assert "No invariant violations." in capsys.readouterr().out

    call_command("smi_check", "--json")
    assert json.loads(capsys.readouterr().out) == {"count": 0, "violations": []}


# --- one test per invariant -----------------------------------------------------------------


def test_a_paid_order_left_past_its_deadline_is_reported(make_job):
    waiting = make_job("paid", paid_at=ago(hours=3))
    stuck = make_job("processing", paid_at=ago(hours=3), deadline_at=ago(hours=2))
    not_refunded = make_job("failed", paid_at=ago(hours=3), failed_at=ago(hours=1))
    make_job("processing", paid_at=ago(hours=3), deadline_at=ago(minutes=5))  # within grace

    found = find_violations()

    assert kinds(found) == [
        ("overdue", waiting.pk),
        ("overdue", stuck.pk),
        ("overdue", not_refunded.pk),
    ]
    assert found[1].facts["status"] == "processing"
    assert "Processing" in found[1].message and "deadline" in found[1].message


def test_a_completed_order_without_a_file_or_a_token_is_reported(make_job, delivered):
    no_file, no_token = delivered(), delivered()
    PurchaseJob.objects.filter(pk=no_file.pk).update(result_path="")
    PurchaseJob.objects.filter(pk=no_token.pk).update(token_hash="")
    by_hand = make_job("needs_attention", paid_at=ago(hours=2))
    by_hand.status = "completed"
    by_hand.save(update_fields=["status"])
    JobEvent.objects.create(job=by_hand, code=EventCode.RESOLVED_DELIVERED, to_status="completed")

    found = find_violations()

    assert sorted(kinds(found)) == sorted(
        [("undelivered", no_file.pk), ("undelivered", no_token.pk)]
    )
    assert {v.job_id: v.facts for v in found} == {
        no_file.pk: {"file": False, "token": True},
        no_token.pk: {"file": True, "token": False},
    }


def test_a_completed_order_whose_file_is_not_in_storage_is_reported(delivered, private):
    job = delivered()
    private.delete(job.result_path)

    assert find_violations() == []  # the database alone cannot tell
    [violation] = find_violations(files=True)
    assert (violation.kind, violation.job_id, violation.path) == (
        "missing_file",
        job.pk,
        job.result_path,
    )


def test_a_refund_without_a_refund_id_is_reported(make_job):
    job = make_job(
        "refunded", paid_at=ago(days=1), refund_amount_cents=50, refunded_at=ago(hours=1)
    )
    outside = make_job("refunded", paid_at=ago(days=1), refund_amount_cents=50)
    JobEvent.objects.create(job=outside, code=EventCode.RESOLVED_REFUNDED, to_status="refunded")

    assert kinds(find_violations()) == [("refund_without_id", job.pk)]


def test_more_refunded_than_paid_is_reported_on_the_order_and_in_its_refunds(make_job):
    on_order = make_job(
        "refunded", paid_at=ago(days=1), amount_cents=500, discount_cents=100,
        refund_amount_cents=450, refund_id="re_1",
    )  # fmt: skip
    twice = make_job(
        "refunded", paid_at=ago(days=1), amount_cents=500, refund_amount_cents=500,
        refund_id="re_2",
    )  # fmt: skip
    for key, status in [("a", "succeeded"), ("b", "pending"), ("c", "refused")]:
        RefundRequest.objects.create(
            job=twice, key=key, amount_cents=500, currency="usd", refunded_before_cents=0,
            status=status,
        )  # fmt: skip

    found = {v.job_id: v for v in find_violations()}

    assert set(found) == {on_order.pk, twice.pk}
    assert found[on_order.pk].facts["refunded_cents"] == 450
    assert found[on_order.pk].facts["paid_cents"] == 400
    assert found[twice.pk].facts["refunded_cents"] == 1000  # the refused one never counted
    assert found[twice.pk].message == "$10.00 refunded of $5.00 paid."


def test_more_than_one_upscaler_submission_is_reported(make_job):
    twice = make_job("processing", paid_at=ago(minutes=10))
    submitted(twice, "up_1")
    submitted(twice, "up_2")
    retried = make_job("processing", paid_at=ago(minutes=10))  # an admin's retry submits again
    submitted(retried, "up_3")
    JobEvent.objects.create(job=retried, code=EventCode.RETRIED, to_status="paid")
    submitted(retried, "up_4")

    [violation] = find_violations()

    assert (violation.kind, violation.job_id) == ("double_submission", twice.pk)
    assert violation.facts == {"external_ids": ["up_1", "up_2"]}


def test_a_stored_file_no_order_owns_is_reported_once_it_is_old_enough(delivered, private):
    job = delivered()
    stray = private.save(f"wagtail_smi/{job.pk}/older-copy.png", ContentFile(b"old"))
    unknown = private.save("wagtail_smi/not-an-order/left.png", ContentFile(b"x"))

    assert find_violations(files=True) == []  # young: a delivery may still be committing
    found = find_violations(timezone.now() + LATER, files=True)

    assert {(v.kind, v.job_id, v.path) for v in found} == {
        ("orphan_file", None, unknown),
        ("orphan_file", job.pk, stray),
    }


# --- smi_check ------------------------------------------------------------------------------


def test_smi_check_lists_violations_and_exits_non_zero(make_job, capsys):
    job = make_job("paid", paid_at=ago(hours=3))

    with pytest.raises(CommandError) as raised:
        call_command("smi_check")
    assert raised.value.returncode == 1
    out = capsys.readouterr().out
    assert "overdue" in out and str(job.pk) in out

    with pytest.raises(CommandError):
        call_command("smi_check", "--json")
    report = json.loads(capsys.readouterr().out)
    assert report["count"] == 1
    assert report["violations"][0]["kind"] == "overdue"
    assert report["violations"][0]["job_id"] == str(job.pk)


def test_smi_check_that_cannot_read_the_storage_exits_two(settings, tmp_path):
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "wagtail_smi").write_bytes(b"")  # a file where the folder should be
    settings.STORAGES = {
        **settings.STORAGES,
        "smi_private": {
            "BACKEND": "tests.test_invariants.UnlistableStorage",
            "OPTIONS": {"location": str(blocked)},
        },
    }
    with pytest.raises(CommandError) as raised:
        call_command("smi_check")
    assert raised.value.returncode == 2
    assert "could not run" in str(raised.value)


class UnlistableStorage:
    """A storage whose listing is refused (a bucket without list permission)."""

    def __init__(self, location):
        self.location = location

    def listdir(self, path):
        raise PermissionError(f"listing {path} is not allowed")


# --- the sweeper ----------------------------------------------------------------------------


def alerts() -> list:
    return [m for m in mail.outbox if m.to == ["ops@example.com"]]


@pytest.fixture
def report(django_capture_on_commit_callbacks):
    """The sweeper's check at a given time, its emails sent as after a commit."""

    def run(now=None):
        with django_capture_on_commit_callbacks(execute=True):
            return maintenance.report_violations(now or timezone.now())

    return run


def test_the_sweeper_alerts_the_admins_once_per_violation(
    make_job, report, django_capture_on_commit_callbacks
):
    # (A late paid order is not used here: the sweeper itself hands it to an admin.)
    over = make_job("refunded", paid_at=ago(days=1), refund_amount_cents=80, refund_id="re_1")
    refunded = make_job("refunded", paid_at=ago(days=1), refund_amount_cents=50)

    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            sweep()
    report()

    assert len(alerts()) == 2
    for job in (over, refunded):
        assert len([m for m in alerts() if job.short_id in m.subject]) == 1
    bodies = "\n".join(m.body for m in alerts())
    assert "Refunded more than was paid" in bodies
    assert "Refunded without a refund id" in bodies


def test_a_violation_that_went_away_and_came_back_is_reported_again(make_job, report):
    job = make_job("refunded", paid_at=ago(days=1), refund_amount_cents=50)
    report()
    assert len(alerts()) == 1

    job.refund_id = "re_1"
    job.save(update_fields=["refund_id"])
    report()
    job.refund_id = ""
    job.save(update_fields=["refund_id"])
    report()

    assert len(alerts()) == 2


def test_a_violation_still_there_a_week_later_is_reported_again(make_job, report):
    make_job("refunded", paid_at=ago(days=1), refund_amount_cents=50)
    report()
    report(timezone.now() + timedelta(days=6))
    assert len(alerts()) == 1
    report(timezone.now() + timedelta(days=7, minutes=1))
    assert len(alerts()) == 2


def test_the_sweeper_lists_the_storage_at_most_hourly(delivered, private, report):
    job = delivered()
    private.delete(job.result_path)
    now = timezone.now()

    assert kinds(report(now)) == [("missing_file", job.pk)]
    assert report(now + timedelta(minutes=30)) == []
    assert kinds(report(now + timedelta(minutes=61))) == [("missing_file", job.pk)]
    assert len(alerts()) == 1  # one file missing, one alert, however often it is seen


def test_a_file_nobody_owns_is_logged_as_an_error(private, report, caplog):
    name = private.save("wagtail_smi/nobody/stray.png", ContentFile(b"x"))
    with caplog.at_level("ERROR", logger="wagtail_smi.operations.maintenance"):
        found = report(timezone.now() + LATER)
    assert kinds(found) == [("orphan_file", None)]
    assert name in caplog.text and "orphan_file" in caplog.text
    assert alerts() == []  # no order to write about: the log and smi_check have it


def test_a_broken_check_never_stops_the_sweeper(make_job, settings, caplog):
    make_job("paid", paid_at=ago(hours=3))
    settings.STORAGES = {
        **settings.STORAGES,
        "smi_private": {
            "BACKEND": "tests.test_invariants.UnlistableStorage",
            "OPTIONS": {"location": "/nowhere"},
        },
    }
    with caplog.at_level("ERROR"):
        result = sweep()
    assert result["started"] == 1
    assert "the invariant check failed" in caplog.text


# --- the dashboard --------------------------------------------------------------------------


def test_the_dashboard_warns_order_managers_of_violations(manager_client, make_job):
    job = make_job("refunded", paid_at=ago(days=1), refund_amount_cents=50)

    home = manager_client.get(reverse("wagtailadmin_home"))

    warning = one(home, "section.smi-invariants")
    assert warning["data-smi-violations"] == "1"
    link = one(warning, "li a")
    assert link["href"] == reverse("smi_orders:inspect", args=[job.pk])
    assert "Refunded without a refund id" in warning.get_text()
    assert "smi_check" in warning.get_text()


def test_the_dashboard_has_no_warning_on_a_healthy_shop(manager_client, delivered):
    delivered()
    home = manager_client.get(reverse("wagtailadmin_home"))
    assert b"smi-invariants" not in home.content


def test_the_dashboard_warning_is_not_shown_to_editors(editor_client, make_job):
    make_job("refunded", paid_at=ago(days=1), refund_amount_cents=50)
    home = editor_client.get(reverse("wagtailadmin_home"))
    assert home.status_code == 200
    assert b"smi-invariants" not in home.content


def test_the_checks_are_all_described():
    assert set(invariants.KINDS) == set(invariants.DESCRIBE)
