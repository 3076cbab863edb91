"""Credentials in our URLs never reach Django's request logs."""

import logging

import pytest

TOKEN = "A" * 64


@pytest.mark.django_db
def test_a_refused_download_is_logged_without_its_token(client, caplog):
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = client.get(f"/smi/download/{TOKEN}")
    assert response.status_code == 404
    logged = " ".join(r.getMessage() for r in caplog.records if r.name == "django.request")
    assert "/smi/download/[redacted]" in logged
    assert TOKEN not in logged


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
