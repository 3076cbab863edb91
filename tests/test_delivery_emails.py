"""Emails (templates, sender, support contact, time zone) and the demo mailbox."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core import mail
from django.test import override_settings

from wagtail_smi import emails
from wagtail_smi.models import SmiSiteSettings


@pytest.fixture
def job(make_job, site, settings):
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "PUBLIC_BASE_URL": "https://shop.example"}
    site_settings = SmiSiteSettings.for_site(site)
    site_settings.support_email = "help@shop.example"
    site_settings.save()
    return make_job(
        "completed",
        email="buyer@example.com",
        image_title="Old Mill",
        token_expires_at=datetime(2026, 12, 1, 14, 30, tzinfo=UTC),
    )


def test_download_ready_email_has_link_expiry_size_and_support(job, settings):
    settings.TIME_ZONE = "Europe/Paris"
    token = "T" * 64
    emails.send_download_ready(job, token)

    [message] = mail.outbox
    assert message.to == ["buyer@example.com"]
    assert message.from_email == "shop@example.com"
    assert message.reply_to == ["help@shop.example"]
    assert "Old Mill" in message.subject
    assert f"https://shop.example/smi/download/{token}" in message.body
    assert "2026-12-01 15:30 CET" in message.body
    assert "4000 × 4000 px" in message.body and "4x" in message.body
    assert "help@shop.example" in message.body
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    assert f'href="https://shop.example/smi/download/{token}"' in html


def test_sender_comes_from_wagtail_smi_setting(job, settings):
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "FROM_EMAIL": "orders@shop.example"}
    emails.send_payment_failed(job)
    assert mail.outbox[0].from_email == "orders@shop.example"


def test_admin_alert_goes_to_admin_emails_or_admins(job, settings):
    settings.ADMINS = [("Ops", "ops@example.com")]
    emails.send_admin_alert(job, "The upscaler is down")
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "ADMIN_EMAILS": ["owner@shop.example"]}
    emails.send_admin_alert(job, "The upscaler is down")
    assert [m.to for m in mail.outbox] == [["ops@example.com"], ["owner@shop.example"]]
    assert "The upscaler is down" in mail.outbox[0].body
    assert f"https://shop.example/admin/smi/orders/inspect/{job.pk}/" in mail.outbox[0].body
    assert job.short_id in mail.outbox[0].subject


def test_no_email_without_an_address(make_job):
    assert emails.send_download_ready(make_job("completed", email=""), "T" * 64) is False
    assert mail.outbox == []


def test_refund_notice_without_a_known_reason_still_explains_the_refund(job):
    job.refund_reason = "requested_by_customer"
    job.refund_amount_cents = 50
    emails.send_refund_notice(job)
    assert "0.50 USD" in mail.outbox[0].body
    assert "help@shop.example" in mail.outbox[0].body


def test_mailbox_is_404_unless_debug_and_configured(client, db, tmp_path):
    assert client.get("/smi/demo-mailbox/").status_code == 404
    with override_settings(DEBUG=False, WAGTAIL_SMI={"DEMO_MAILBOX_DIR": str(tmp_path)}):
        assert client.get("/smi/demo-mailbox/").status_code == 404


def test_mailbox_lists_and_shows_emails_written_by_the_file_backend(client, job, tmp_path):
    with override_settings(
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        EMAIL_FILE_PATH=str(tmp_path),
    ):
        emails.send_download_ready(job, "T" * 64)
    with override_settings(DEBUG=True, WAGTAIL_SMI={"DEMO_MAILBOX_DIR": str(tmp_path)}):
        listing = client.get("/smi/demo-mailbox/")
        assert listing.status_code == 200
        assert "Old Mill" in listing.content.decode()
        message_id = listing.context["messages"][0]["id"]
        shown = client.get("/smi/demo-mailbox/", {"message": message_id})
        assert shown.status_code == 200
        assert "/smi/download/" + "T" * 64 in shown.content.decode()
        assert client.get("/smi/demo-mailbox/", {"message": "../../etc/passwd:0"}).status_code == 404
