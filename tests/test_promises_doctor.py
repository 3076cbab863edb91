"""``smi_doctor``: every configuration and health problem, and a non-zero exit on errors.

The broken site is broken for real: an SMTP server that refuses connections (a local port
nobody listens on), private storage under a file, schedules deleted, a worker silent for
ten minutes, an Upsampler backend without a key behind a loopback address.
"""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from django.utils import timezone
from django_q.models import Schedule

from wagtail_smi import queue
from wagtail_smi.models import Heartbeat
from wagtail_smi.models.health import SWEEPER

pytestmark = pytest.mark.django_db


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def doctor(*args) -> tuple[str, CommandError | None]:
    from io import StringIO

    out = StringIO()
    try:
        call_command("smi_doctor", *args, stdout=out)
    except CommandError as exc:
        return out.getvalue(), exc
    return out.getvalue(), None


@pytest.fixture
def healthy():
    queue.ensure_schedules()
    Heartbeat.beat(SWEEPER)


def test_a_healthy_site_has_nothing_to_report(healthy, settings):
    # The test settings: dummy payments allowed, the local upscaler, writable private
    # storage in a temporary folder, the locmem email backend.
    out, error = doctor()
    assert error is None, out
    assert out.strip() == "No problems found."


@pytest.fixture
def broken(tmp_path, settings):
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("in the way")
    settings.STORAGES = {
        **settings.STORAGES,
        "smi_private": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(not_a_folder / "private"), "base_url": None},
        },
    }
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = closed_port()
    settings.EMAIL_TIMEOUT = 5
    Schedule.objects.filter(name="wagtail_smi sweeper").delete()
    Heartbeat.beat(SWEEPER, timezone.now() - timedelta(minutes=10))
    with override_settings(
        WAGTAIL_SMI={
            "PAYMENT_BACKEND": "stripe",
            "UPSCALER": {"CLASS": "upsampler", "OPTIONS": {}},
            "PUBLIC_BASE_URL": "http://127.0.0.1:8000",
        }
    ):
        yield


def test_a_broken_site_hears_every_problem_and_the_command_fails(broken):
    out, error = doctor()

    assert error is not None and error.returncode == 1
    errors = {line.split(":")[0] for line in out.splitlines() if line.startswith("ERROR ")}
    assert errors == {
        "ERROR wagtail_smi.W001",  # no Stripe secret key
        "ERROR wagtail_smi.W002",  # no Stripe webhook secret
        "ERROR wagtail_smi.W004",  # no Upsampler key
        "ERROR wagtail_smi.W005",  # PUBLIC_BASE_URL not public https
        "ERROR wagtail_smi.W006",  # the sweeper is silent
        "ERROR wagtail_smi.E010",  # the sweeper's schedule is gone
        "ERROR wagtail_smi.E011",  # private storage not writable
        "ERROR wagtail_smi.E012",  # the email backend refuses
    }
    assert "'wagtail_smi sweeper' (wagtail_smi.tasks.sweep) is missing" in out
    assert "10\xa0minutes ago" in out
    assert "ConnectionRefusedError" in out
    assert "(it is not https)" in out
    # Every problem comes with what to do.
    assert "python manage.py smi_schedules" in out and "qcluster" in out
    assert str(error) == "8 error(s), 0 warning(s)."


def test_before_the_workers_start_a_deploy_can_leave_the_heartbeat_out(healthy):
    Heartbeat.objects.all().delete()
    out, error = doctor()
    assert error is not None and "W006" in out

    out, error = doctor("--no-worker")
    assert error is None and "W006" not in out


def test_warnings_alone_do_not_fail_the_command(healthy):
    with override_settings(
        WAGTAIL_SMI={
            "PAYMENT_BACKEND": "stripe",
            "STRIPE": {"SECRET_KEY": "sk_test_x", "WEBHOOK_SECRET": "whsec_x", "API_VERSION": "x"},
        }
    ):
        out, error = doctor()
    assert error is None
    assert out.splitlines()[0].startswith("WARNING wagtail_smi.W003")
    assert out.strip().endswith("1 warning(s), no errors.")
