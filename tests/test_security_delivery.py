"""Delivery told straight: the download limit counts every new copy, emails say exactly
what they should, and the order page and job-status offer only what still works."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils import timezone

from tests.conftest import make_image_file
from tests.html_support import classes, one, parse, select, text
from wagtail_smi import emails, storage
from wagtail_smi.models import DownloadEvent, SmiSiteSettings
from wagtail_smi.operations import delivery as delivery_ops
from wagtail_smi.operations import processing
from wagtail_smi.utils import hash_ip

PAYLOAD = bytes(range(256)) * 40  # 10240 bytes
REFUSING = "tests.test_delivery_ready_email.RefusingCustomerBackend"


@pytest.fixture
def delivered(make_job, settings):
    """A completed job with its file in private storage, and the emailed token."""
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "PUBLIC_BASE_URL": "http://testserver"}

    def factory(**fields):
        job = make_job(
            "processing", paid_at=timezone.now(), email="b@example.com", image_title="Old Mill"
        )
        name = storage.private_storage().save(
            f"wagtail_smi/{job.pk}/old-mill-4x.png", ContentFile(PAYLOAD)
        )
        token, token_values = delivery_ops.token_fields(job)
        values = {
            "status": "completed",
            "result_path": name,
            "result_size_bytes": len(PAYLOAD),
            "result_content_type": "image/png",
            **token_values,
            **fields,
        }
        for key, value in values.items():
            setattr(job, key, value)
        job.save()
        return job, token

    return factory


def route(job, token, which: str) -> str:
    if which == "token":
        return f"/smi/download/{token}"
    return reverse("wagtail_smi:order_download", args=[job.pk]) + f"?key={job.access_key}"


def status_json(client, job) -> dict:
    return client.get(
        reverse("wagtail_smi:job_status", args=[job.pk]) + f"?key={job.access_key}"
    ).json()


def order_page(client, job) -> str:
    url = reverse("wagtail_smi:order_status", args=[job.pk]) + f"?key={job.access_key}"
    return client.get(url).content.decode()


@pytest.fixture
def support(site):
    row = SmiSiteSettings.for_site(site)
    row.support_email = "help@shop.example"
    row.save()
    return row.support_email


# --- the download limit and ranges (limit 2) ------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("which", ["token", "order"])
def test_range_from_byte_zero_is_a_new_copy_even_from_the_same_client(client, delivered, which):
    job, token = delivered(download_limit=2)
    url = route(job, token, which)

    codes = [
        client.get(url, HTTP_RANGE="bytes=0-", REMOTE_ADDR="203.0.113.5").status_code
        for _ in range(5)
    ]

    assert codes == [206, 206, 410, 410, 410]
    job.refresh_from_db()
    assert job.download_count == 2


@pytest.mark.django_db
@pytest.mark.parametrize("which", ["token", "order"])
def test_a_suffix_range_covering_the_whole_file_counts_like_a_full_download(
    client, delivered, which
):
    job, token = delivered(download_limit=2)
    url = route(job, token, which)
    whole = f"bytes=-{len(PAYLOAD) + 100}"

    assert client.get(url, REMOTE_ADDR="203.0.113.5").status_code == 200
    assert client.get(url, HTTP_RANGE=whole, REMOTE_ADDR="203.0.113.5").status_code == 206
    assert client.get(url, HTTP_RANGE=whole, REMOTE_ADDR="203.0.113.5").status_code == 410
    job.refresh_from_db()
    assert job.download_count == 2


@pytest.mark.django_db
@pytest.mark.parametrize("which", ["token", "order"])
def test_each_download_records_whether_it_was_counted(client, delivered, which):
    job, token = delivered(download_limit=2)
    url = route(job, token, which)
    ip = {"REMOTE_ADDR": "203.0.113.5"}

    assert client.get(url, HTTP_RANGE="bytes=0-99", **ip).status_code == 206  # counted
    assert client.get(url, HTTP_RANGE="bytes=100-", **ip).status_code == 206  # resume
    assert client.get(url, **ip).status_code == 200  # counted: the limit is used up
    assert client.get(url, HTTP_RANGE="bytes=5000-", **ip).status_code == 206  # resume
    assert client.get(url, HTTP_RANGE="bytes=0-", **ip).status_code == 410
    other = client.get(url, HTTP_RANGE="bytes=5000-", REMOTE_ADDR="198.51.100.7")
    assert other.status_code == 410  # another client cannot resume what it never had

    flags = list(
        DownloadEvent.objects.filter(job=job).order_by("id").values_list("ranged", "counted")
    )
    assert flags == [(True, True), (True, False), (False, True), (True, False)]
    job.refresh_from_db()
    assert job.download_count == 2


@pytest.mark.django_db
@pytest.mark.parametrize("which", ["token", "order"])
def test_an_uncounted_resume_does_not_vouch_for_the_next_one(client, delivered, which):
    job, token = delivered(download_limit=2)
    ip_hash = hash_ip("203.0.113.5")
    counted = DownloadEvent.objects.create(job=job, ip_hash=ip_hash, counted=True)
    resumed = DownloadEvent.objects.create(job=job, ip_hash=ip_hash, ranged=True, counted=False)
    DownloadEvent.objects.filter(pk=counted.pk).update(
        created_at=timezone.now() - timedelta(hours=25)
    )
    DownloadEvent.objects.filter(pk=resumed.pk).update(
        created_at=timezone.now() - timedelta(hours=1)
    )

    response = client.get(
        route(job, token, which), HTTP_RANGE="bytes=1-", REMOTE_ADDR="203.0.113.5"
    )

    assert response.status_code == 206
    job.refresh_from_db()
    assert job.download_count == 1
    assert DownloadEvent.objects.order_by("-id").first().counted is True


# --- email subjects are plain text ----------------------------------------------------------


TITLE = "Fish & Chips <b>"


@pytest.fixture
def fish_job(make_job, settings, support):
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "PUBLIC_BASE_URL": "https://shop.example"}
    return make_job(
        "completed",
        email="buyer@example.com",
        image_title=TITLE,
        token_expires_at=timezone.now() + timedelta(hours=24),
    )


def test_the_download_email_subject_shows_the_title_as_typed_and_the_html_escapes_it(fish_job):
    assert emails.send_download_ready(fish_job, "T" * 64) is True

    [message] = mail.outbox
    assert message.subject == f"Your high-resolution copy of {TITLE} is ready"
    assert TITLE in message.body  # the text part is plain text too
    html, _mimetype = message.alternatives[0]
    assert one(html, "p strong").get_text() == TITLE  # read as the text it is
    assert select(html, "b") == []  # the title never becomes markup
    assert TITLE not in html  # nor is it written out unescaped anywhere


def test_the_admin_alert_subject_shows_the_site_name_as_typed(fish_job, site, settings):
    settings.ADMINS = [("Ops", "ops@example.com")]
    site.site_name = "Bob's Fish & Chips"
    site.save()
    fish_job.refresh_from_db()

    emails.send_admin_alert(fish_job, "The upscaler is down")

    [message] = mail.outbox
    assert message.subject == f"[Bob's Fish & Chips] Order {fish_job.short_id} needs attention"
    html, _mimetype = message.alternatives[0]
    assert text(html, "title") == "Bob's Fish & Chips"
    assert "Bob's Fish & Chips" in text(html) and select(html, "b") == []
    assert "Fish & Chips" not in html  # escaped wherever it is written


# --- what the order page says about the download email -------------------------------------


@pytest.fixture
def processed(make_job, settings, tmp_path):
    """A job the worker has just finished upscaling (the result file is in hand)."""
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "PUBLIC_BASE_URL": "http://testserver"}
    settings.ADMINS = [("Ops", "ops@example.com")]
    job = make_job(
        "processing", paid_at=timezone.now(), email="buyer@example.com", image_title="Old Mill"
    )
    result = tmp_path / "result.png"
    result.write_bytes(make_image_file(8, 8, fmt="PNG"))
    return job, result


def test_when_the_download_email_fails_the_order_page_does_not_claim_it_was_sent(
    processed, settings, client, django_capture_on_commit_callbacks
):
    job, result = processed
    settings.EMAIL_BACKEND = REFUSING
    with django_capture_on_commit_callbacks(execute=True):
        assert processing.deliver(job.pk, result) is True
    job.refresh_from_db()
    assert job.delivery_email_sent_at is None

    data = status_json(client, job)
    html = order_page(client, job)

    assert data["stage"] == "ready" and data["download_url"]
    assert "could not send you the email" in data["message"]
    assert "emailed" not in data["message"]
    assert "could not send you the email" in text(html, "p.smi-message")
    assert "emailed" not in html  # anywhere, the stage table for the script included
    assert not one(html, "p.smi-download").has_attr("hidden")  # the file is right here


def test_when_the_download_email_went_out_the_order_page_says_so(
    processed, client, django_capture_on_commit_callbacks
):
    job, result = processed
    with django_capture_on_commit_callbacks(execute=True):
        processing.deliver(job.pk, result)
    job.refresh_from_db()
    assert job.delivery_email_sent_at is not None

    assert "we have also emailed the link to you" in status_json(client, job)["message"]
    assert "we have also emailed the link to you" in order_page(client, job)


@pytest.mark.django_db
def test_before_the_download_email_is_sent_the_order_page_says_it_will_follow(client, delivered):
    job, _token = delivered(delivery_email_sent_at=None)

    message = status_json(client, job)["message"]

    assert "will follow" in message and "emailed" not in message


@pytest.mark.django_db
def test_an_order_without_an_address_says_nothing_about_email(client, delivered):
    job, _token = delivered(email="")

    message = status_json(client, job)["message"]

    assert "email" not in message.lower()


# --- an expired link is no longer offered ---------------------------------------------------


@pytest.mark.django_db
def test_job_status_stops_offering_an_expired_link_before_the_cleanup(client, delivered, support):
    expired_at = timezone.now() - timedelta(minutes=1)
    job, token = delivered(token_expires_at=expired_at, delivery_email_sent_at=timezone.now())
    assert job.file_deleted_at is None and storage.private_storage().exists(job.result_path)

    data = status_json(client, job)

    assert data["status"] == "completed"
    assert data["stage"] == "expired"
    assert "download_url" not in data
    assert data["expires_at"] == expired_at.isoformat().replace("+00:00", "Z")
    assert "expired" in data["message"]
    assert support in data["message"] and job.short_id in data["message"]
    # What the page would have offered is refused anyway.
    assert client.get(route(job, token, "order")).status_code == 410


@pytest.mark.django_db
def test_the_order_page_explains_an_expired_link_instead_of_offering_it(client, delivered, support):
    job, _token = delivered(token_expires_at=timezone.now() - timedelta(minutes=1))

    html = order_page(client, job)
    doc = parse(html)

    assert reverse("wagtail_smi:order_download", args=[job.pk]) not in html  # anywhere
    download = one(doc, "p.smi-download")
    assert download.has_attr("hidden") and one(download, "a")["href"] == ""
    assert text(download, ".smi-expiry") == ""  # no expiry shown
    message = one(doc, "p.smi-message")
    assert "Your download link has expired" in message.get_text() and support in message.get_text()
    assert "smi-notice" in classes(message)
    assert classes(one(doc, "li[data-stage=ready]")) == {"is-done"}  # it was delivered


@pytest.mark.django_db
def test_a_deleted_file_is_reported_as_expired(client, delivered):
    job, _token = delivered(file_deleted_at=timezone.now())

    data = status_json(client, job)

    assert data["stage"] == "expired" and "download_url" not in data


@pytest.mark.django_db
def test_a_link_still_valid_is_offered_with_its_expiry(client, delivered):
    job, _token = delivered()

    data = status_json(client, job)

    assert data["stage"] == "ready" and data["download_url"] and data["expires_at"]


# --- the order page in a browser: the link expires while the page is open -------------------


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_open_order_page_drops_the_button_when_the_link_expires(
    wagtail_baseline, live_server, make_job, settings, browser_page
):
    from wagtail_smi import workflow

    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "PUBLIC_BASE_URL": live_server.url}
    job = make_job("processing", paid_at=timezone.now(), email="")
    page = browser_page
    page.goto(
        live_server.url
        + reverse("wagtail_smi:order_status", args=[job.pk])
        + f"?key={job.access_key}"
    )
    page.locator(".smi-stages li[data-stage=upscaling][aria-current=step]").wait_for()

    # Delivered with a link that runs out a few seconds later: the page shows the button,
    # then asks again at the expiry and takes it away.
    workflow.transition(
        job,
        "completed",
        code="delivered",
        result_path="smi/test.png",
        token_expires_at=timezone.now() + timedelta(seconds=8),
    )
    page.locator(".smi-download a").wait_for(state="visible")
    page.locator(".smi-message.smi-notice").wait_for(timeout=30_000)

    assert page.locator(".smi-download").is_hidden()
    assert "has expired" in page.locator(".smi-message").inner_text()
    assert page.locator(".smi-stages li.is-done").count() == 4
    assert page.locator(".smi-stages li[aria-current]").count() == 0
