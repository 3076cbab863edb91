"""Credentials in our URLs never reach a log line, whichever logger prints the path."""

import io
import logging
import uuid
from contextlib import contextmanager

import pytest
from django.core.servers.basehttp import WSGIRequestHandler
from django.test import Client

TOKEN = "A" * 64
KEY = "k3y" * 10


@contextmanager
def log_output(name: str, level: int = logging.DEBUG):
    """What a handler on logger ``name`` writes: the formatted lines, as a real log file
    would hold them (also for loggers that do not propagate, such as ``django.server``)."""
    logger = logging.getLogger(name)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


@pytest.mark.django_db
def test_a_refused_download_is_logged_without_its_token(client, caplog):
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = client.get(f"/smi/download/{TOKEN}")
    assert response.status_code == 404
    logged = " ".join(r.getMessage() for r in caplog.records if r.name == "django.request")
    assert "/smi/download/[redacted]" in logged
    assert TOKEN not in logged


@pytest.mark.django_db
def test_a_csrf_failure_on_a_download_url_is_logged_without_the_token():
    client = Client(enforce_csrf_checks=True)

    with log_output("django.security.csrf") as output:
        response = client.post(f"/smi/download/{TOKEN}")

    assert response.status_code == 403
    logged = output.getvalue()
    assert "Forbidden (CSRF cookie not set.): /smi/download/[redacted]" in logged
    assert TOKEN not in logged


@pytest.mark.django_db
def test_a_csrf_failure_with_an_order_key_in_the_referer_is_logged_without_the_key():
    """Over https Django checks the Referer first and logs it whole when it fails."""
    client = Client(enforce_csrf_checks=True)
    order = f"/smi/orders/{uuid.uuid4()}/?key={KEY}"

    with log_output("django.security.csrf") as output:
        response = client.post(
            f"/smi/dummy-checkout/{uuid.uuid4()}/?key={KEY}",
            secure=True,
            HTTP_REFERER=f"https://elsewhere.example{order}",
        )

    assert response.status_code == 403
    logged = output.getvalue()
    assert "Referer checking failed" in logged and "?key=[redacted]" in logged
    assert KEY not in logged


def test_runserver_request_lines_are_logged_without_credentials():
    handler = WSGIRequestHandler.__new__(WSGIRequestHandler)  # no socket: only its logging
    handler.request = None
    job_id = uuid.uuid4()
    lines = [
        f"GET /smi/download/{TOKEN} HTTP/1.1",
        f"GET /smi/v1/job-status/{job_id}?key={KEY} HTTP/1.1",
        f"POST /smi-webhook/upsampler/{job_id}/{KEY}/ HTTP/1.1",
    ]

    with log_output("django.server") as output:
        for line in lines:
            handler.log_message('"%s" %s %s', line, "404", "0")

    logged = output.getvalue()
    assert logged.count("[redacted]") == 3
    assert TOKEN not in logged and KEY not in logged


@pytest.mark.parametrize(
    "name",
    [
        "django.security.DisallowedHost",
        "django.security.SuspiciousOperation",
        "django.security.SuspiciousFileOperation",
        "django.security.SomeThirdPartyError",  # named after any exception class
        "django.request",
        "gunicorn.access",
        "wagtail_smi",
    ],
)
def test_every_logger_masks_credentials_children_of_django_security_included(name):
    with log_output(name) as output:
        logging.getLogger(name).error("Suspicious request to %s", f"/smi/download/{TOKEN}")
        logging.getLogger(name).warning(
            "%(r)s from %(h)s", {"r": f"GET /smi/orders/1/?key={KEY}&x=1", "h": "192.0.2.1"}
        )

    logged = output.getvalue()
    assert "/smi/download/[redacted]" in logged and "?key=[redacted]&x=1" in logged
    assert TOKEN not in logged and KEY not in logged


def test_other_records_keep_their_message_and_arguments():
    from wagtail_smi.redaction import redact_record

    record = logging.getLogger("django.request").makeRecord(
        "django.request", logging.WARNING, __file__, 1, "Not Found: %s", ("/gallery/",), None
    )

    assert redact_record(record) is record
    assert (record.msg, record.args) == ("Not Found: %s", ("/gallery/",))


def test_a_malformed_log_call_is_left_to_the_handlers_error_reporting():
    from wagtail_smi.redaction import redact_record

    record = logging.getLogger("django.request").makeRecord(
        "django.request", logging.WARNING, __file__, 1, "%s %s /smi/download/%s", ("one",), None
    )

    assert redact_record(record) is record  # no exception where the logging call was made
    assert record.args == ("one",)


def test_keys_secrets_and_signed_urls_are_masked():
    from wagtail_smi.redaction import redact

    line = (
        '"GET /smi/orders/1b2c/?key=s3cret&x=1 HTTP/1.1" '
        "/smi-webhook/upsampler/1b2c-3d/hushhush/ /smi/originals/signed.value/"
    )
    cleaned = redact(line)
    for secret in ("s3cret", "hushhush", "signed.value"):
        assert secret not in cleaned
    assert "?key=[redacted]&x=1" in cleaned


def test_installing_twice_wraps_the_record_factory_once():
    from wagtail_smi import redaction

    factory = logging.getLogRecordFactory()
    redaction.install()

    assert logging.getLogRecordFactory() is factory
    assert factory.smi_redacting
