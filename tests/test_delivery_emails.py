"""Emails (templates, sender, support contact, time zone) and the demo mailbox."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core import mail
from django.test import override_settings

from tests.html_support import hrefs, one, select, text
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
    assert "Dec. 1, 2026, 3:30 p.m. CET" in message.body
    assert "4000 × 4000 px" in message.body and "4x" in message.body
    assert "help@shop.example" in message.body
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    download = f"https://shop.example/smi/download/{token}"
    button, spelled_out = [a for a in select(html, "a") if a["href"] == download]
    assert (button.get_text(), spelled_out.get_text()) == ("Download your image", download)
    assert one(html, "a[href^='mailto:']")["href"] == "mailto:help@shop.example"


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
    assert "$0.50" in mail.outbox[0].body
    assert "help@shop.example" in mail.outbox[0].body


def test_mailbox_is_404_unless_debug_and_configured(client, db, tmp_path):
    assert client.get("/smi/demo-mailbox/").status_code == 404
    with override_settings(DEBUG=False, SMI_DEMO_MAILBOX_DIR=str(tmp_path)):
        assert client.get("/smi/demo-mailbox/").status_code == 404


def test_mailbox_lists_and_shows_emails_written_by_the_file_backend(client, job, tmp_path):
    with override_settings(
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        EMAIL_FILE_PATH=str(tmp_path),
    ):
        emails.send_download_ready(job, "T" * 64)
    with override_settings(DEBUG=True, SMI_DEMO_MAILBOX_DIR=str(tmp_path)):
        listing = client.get("/smi/demo-mailbox/")
        assert listing.status_code == 200
        assert "Old Mill" in text(listing, "nav a strong")
        message_id = listing.context["messages"][0]["id"]
        shown = client.get("/smi/demo-mailbox/", {"message": message_id})
        assert shown.status_code == 200
        download = "https://shop.example/smi/download/" + "T" * 64
        assert download in hrefs(one(shown, "main pre"))  # the plain text, its address linked
        assert download in hrefs(one(shown, "iframe[sandbox]")["srcdoc"])  # the HTML version
        assert (
            client.get("/smi/demo-mailbox/", {"message": "../../etc/passwd:0"}).status_code == 404
        )


# Money, refund wording and alternatives in the refund email --------------------------------

REFUND_TIMING = "It usually appears within 5–10 business days, depending on your bank."


def configure_resolutions(site, *resolutions, max_output_megapixels=400):
    """The site's resolutions: ``(key, factor, enabled)`` triples."""
    site_settings = SmiSiteSettings.for_site(site)
    site_settings.max_output_megapixels = max_output_megapixels
    site_settings.resolutions = [
        (
            "resolution",
            {
                "key": key,
                "factor": factor,
                "label": f"Size {key}",
                "description": "",
                "enabled": on,
            },
        )
        for key, factor, on in resolutions
    ]
    site_settings.save()


def html_of(message) -> str:
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    return html


def html_text_of(message) -> str:
    """What the HTML version reads as, markup aside."""
    return text(html_of(message))


@pytest.mark.parametrize(
    ("currency", "amount", "shown"),
    [("jpy", 50, "¥50"), ("usd", 576, "$5.76"), ("chf", 1200, "12.00 CHF")],
)
def test_money_in_emails_is_formatted_in_the_orders_currency(job, currency, amount, shown):
    job.currency, job.amount_cents, job.refund_amount_cents = currency, amount, amount
    job.refund_reason = "customer asked"
    emails.send_refund_notice(job)
    emails.send_payment_failed(job)
    emails.send_admin_alert(job, "look")
    for message in mail.outbox:
        assert shown in message.body, message.subject
        assert shown in html_text_of(message), message.subject
        assert "0.50 JPY" not in message.body


def test_a_partial_refund_shows_the_refunded_amount_not_the_price(job):
    job.currency, job.amount_cents, job.refund_amount_cents = "jpy", 500, 120
    job.refund_reason = "customer asked"
    emails.send_refund_notice(job)
    assert "¥120" in mail.outbox[0].body and "¥500" not in mail.outbox[0].body


def test_refund_timing_is_the_same_honest_phrase_in_text_and_html(job):
    job.refund_reason = "upscale_failed"
    emails.send_refund_notice(job)
    [message] = mail.outbox
    assert REFUND_TIMING in message.body
    assert REFUND_TIMING in html_text_of(message)
    assert "5–10 days to appear" not in message.body


def test_a_failed_order_suggests_only_resolutions_offered_and_possible_for_the_image(job, site):
    # 1000 × 1000 px: 2x is 4 MP, 8x would be 64 MP (over the 20 MP limit), 3x is switched off.
    configure_resolutions(
        site,
        ("2x", 2, True),
        ("3x", 3, False),
        ("4x", 4, True),
        ("8x", 8, True),
        max_output_megapixels=20,
    )
    job.resolution, job.refund_reason, job.cancel_url = (
        "4x",
        "upscale_failed",
        "https://shop.example/gallery/",
    )
    emails.send_refund_notice(job)
    [message] = mail.outbox
    assert "another resolution" in message.body
    assert "Size 2x (2x), 2000 × 2000 px" in message.body
    assert (
        "Size 3x" not in message.body
        and "Size 8x" not in message.body
        and "Size 4x" not in message.body
    )
    assert "https://shop.example/gallery/" in message.body
    assert "could not process your image" in message.body
    html = html_of(message)
    assert "another resolution" in text(html)
    assert [item.get_text() for item in select(html, "ul li")] == ["Size 2x (2x), 2000 × 2000 px"]
    assert one(html, "a[href='https://shop.example/gallery/']").get_text() == "Order it here"


@pytest.mark.parametrize("reason", ["result_invalid", "result_unavailable", "upscale_failed"])
def test_every_processing_failure_reason_suggests_alternatives(job, site, reason):
    configure_resolutions(site, ("4x", 4, True), ("8x", 8, True))
    job.refund_reason = reason
    emails.send_refund_notice(job)
    assert "Size 8x (8x), 8000 × 8000 px" in mail.outbox[0].body


@pytest.mark.parametrize("reason", ["customer asked", "Refunded from the Stripe dashboard", ""])
def test_a_refund_the_order_did_not_cause_suggests_nothing_else(job, site, reason):
    configure_resolutions(site, ("4x", 4, True), ("8x", 8, True))
    job.refund_reason = reason
    emails.send_refund_notice(job)
    [message] = mail.outbox
    for words in (message.body, html_text_of(message)):
        assert "another resolution" not in words
        assert "8x" not in words
        assert "has been refunded" in words
    assert select(html_of(message), "ul li") == [] and "8x" not in html_of(message)


def test_no_alternatives_when_nothing_else_fits_the_image(job, site):
    configure_resolutions(site, ("4x", 4, True), ("8x", 8, True), max_output_megapixels=20)
    job.refund_reason = "result_invalid"
    emails.send_refund_notice(job)
    assert "another resolution" not in mail.outbox[0].body
