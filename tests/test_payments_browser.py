"""The dummy checkout page in a real Chromium: Decline card, then Pay; and Cancel."""

from __future__ import annotations

import pytest

from wagtail_smi.models import PurchaseJob
from wagtail_smi.payments import get_payment_provider
from wagtail_smi.workflow import update_job

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def dummy_checkout(wagtail_baseline, live_server, settings, make_job):
    settings.WAGTAIL_SMI = {
        **settings.WAGTAIL_SMI,
        "PUBLIC_BASE_URL": live_server.url,
        "PAYMENT_BACKEND": "dummy",
    }

    def factory():
        job = make_job(factor=8, amount_cents=192, cancel_url=f"{live_server.url}/back-to-gallery/")
        session = get_payment_provider().create_checkout(
            job, success_url="", cancel_url=job.cancel_url
        )
        job = update_job(job, payment_provider="dummy", checkout_url=session.url)
        return job

    return factory


def test_decline_then_pay_lands_on_the_order_page(
    dummy_checkout, browser_page, enqueued, emails_sent
):
    job = dummy_checkout()
    page = browser_page
    page.goto(job.checkout_url)
    assert page.locator(".smi-dummy-price").inner_text() == "$1.92"
    assert page.locator("img").evaluate("img => img.complete && img.naturalWidth > 0")

    page.get_by_role("button", name="Decline card").click()
    assert "declined" in page.get_by_role("alert").inner_text()
    assert PurchaseJob.objects.get(pk=job.pk).status == "awaiting_payment"
    # The address is typed on this very page: nothing is emailed before a provider confirms it.
    assert ("send_payment_failed", str(job.pk)) not in emails_sent

    page.get_by_label("Email for the download link").fill("browser@example.com")
    page.get_by_role("button", name="Pay").click()
    page.wait_for_url(f"**/smi/orders/{job.pk}/?key={job.access_key}")

    job.refresh_from_db()
    assert (job.status, job.email) == ("paid", "browser@example.com")
    assert enqueued == [str(job.pk)]


def test_cancel_says_nothing_was_charged_and_leads_back(dummy_checkout, browser_page):
    job = dummy_checkout()
    browser_page.goto(job.checkout_url)
    browser_page.get_by_role("button", name="Cancel").click()
    browser_page.wait_for_url(f"**/smi/orders/{job.pk}/?key=*&checkout=cancelled")
    assert "nothing was charged" in browser_page.locator(".smi-cancelled").inner_text()
    browser_page.get_by_role("link", name="Back to the image").click()
    browser_page.wait_for_url("**/back-to-gallery/")
    assert PurchaseJob.objects.get(pk=job.pk).status == "awaiting_payment"
