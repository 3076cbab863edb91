"""The admin in a real Chromium: the settings' live price preview follows the form, the
report chart stays readable in dark mode, and an order action is confirmed on its own page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from wagtail_smi.models import PurchaseJob, SmiSiteSettings

# Transactional (the live server is another thread); the ``site`` fixture rebuilds the
# little of Wagtail's initial data these tests need. Chromium and its pages come from
# tests/browser.py (``chromium``, ``new_browser_page``).
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def admin_login(live_server, site):
    get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-boss")

    def login(page):
        page.goto(live_server.url + reverse("wagtailadmin_login"))
        page.fill("input[name=username]", "boss")
        page.fill("input[name=password]", "pw-boss")
        page.click("button[type=submit]")
        page.wait_for_url(live_server.url + reverse("wagtailadmin_home"))

    return login


def preview_price(page, size: str, key: str) -> str:
    row = page.locator(f'[data-smi-price-preview] tr[data-size="{size}"][data-resolution="{key}"]')
    return row.locator("td").nth(3).inner_text()


def test_price_preview_follows_unsaved_form_values(
    live_server, new_browser_page, admin_login, site
):
    SmiSiteSettings.for_site(site)  # created with the defaults
    page = new_browser_page()
    admin_login(page)
    page.goto(
        live_server.url
        + reverse("wagtailsettings:edit", args=["wagtail_smi", "smisitesettings", site.pk])
    )
    page.wait_for_selector(
        '[data-smi-price-preview] tr[data-size="2000x1500"][data-resolution="8x"]'
    )
    assert preview_price(page, "2000x1500", "8x") == "$5.76"
    assert preview_price(page, "1000x1000", "4x") == "$0.50"

    page.fill("input[name=markup_percent]", "100")
    # 2000×1500 at 8x: 192 MP → 48 credits → 1.92 → ×2 = 3.84.
    page.wait_for_function(
        """() => document.querySelector('[data-smi-price-preview] tr[data-size="2000x1500"][data-resolution="8x"] td:nth-child(4)')
                 ?.textContent === '$3.84'"""
    )
    # Taking 8x off the offer takes it out of the preview (the StreamField's own inputs).
    page.locator("input[name='resolutions-1-value-enabled']").uncheck()
    page.wait_for_function(
        "() => !document.querySelector('[data-smi-price-preview] tr[data-resolution=\"8x\"]')"
    )
    assert preview_price(page, "2000x1500", "4x") == "$0.96"  # 48 MP → 12 credits → 0.48 × 2
    page.fill("input[name=markup_percent]", "-1")
    page.wait_for_function(
        "() => document.querySelector('[data-smi-price-preview-status]').textContent.includes('markup_percent')"
    )


def test_revenue_chart_is_readable_in_dark_mode(
    live_server, new_browser_page, admin_login, site, make_job
):
    now = timezone.now()
    for days, amount in ((0, 500), (1, 900), (2, 300)):
        make_job("completed", paid_at=now - timedelta(days=days), amount_cents=amount)
    page = new_browser_page(color_scheme="dark")
    admin_login(page)
    page.goto(live_server.url + reverse("wagtail_smi_reports:revenue"))
    svg = page.locator("figure.smi-report-chart svg").first
    assert svg.get_attribute("role") == "img"
    assert "Net revenue and margin per day" in svg.locator("title").first.text_content()
    colours = page.evaluate(
        """() => {
            const label = document.querySelector('.smi-chart__label');
            const bar = document.querySelector('.smi-chart__bar');
            const body = getComputedStyle(document.body);
            return {label: getComputedStyle(label).fill, bar: getComputedStyle(bar).fill,
                    text: body.color, background: body.backgroundColor};
        }"""
    )

    def luminance(rgb: str) -> float:
        r, g, b = [int(part) for part in rgb[rgb.index("(") + 1 :].rstrip(")").split(",")[:3]]
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    # Labels follow the (light) text colour, and stand out from the (dark) background.
    assert luminance(colours["label"]) > 150, colours
    assert luminance(colours["background"]) < 100, colours
    assert luminance(colours["bar"]) != luminance(colours["background"])


def test_a_partial_refund_is_confirmed_on_its_own_page_and_keeps_the_order(
    live_server, new_browser_page, admin_login, make_job
):
    job = make_job(
        "completed",
        paid_at=timezone.now(),
        amount_cents=576,
        email="buyer@example.com",
        payment_provider="dummy",
    )
    action_url = live_server.url + reverse("smi_orders:action_refund", args=[job.pk])
    inspect_url = live_server.url + reverse("smi_orders:inspect", args=[job.pk])
    page = new_browser_page()
    admin_login(page)

    page.goto(inspect_url)
    page.click('[data-smi-action="refund"] a')
    page.wait_for_url(action_url)
    assert page.locator("[data-smi-refund-amount]").inner_text() == "$5.76"
    amount = page.locator("input[name=amount]")
    assert amount.input_value() == "5.76"  # everything left, in dollars
    submit = page.locator("form.smi-confirm__form button[type=submit]")
    assert submit.inner_text() == "Yes, refund"

    submit.click()  # no reason yet: the browser keeps the form and says what is missing
    assert page.url == action_url
    assert page.locator("input[name=reason]").evaluate("input => input.validity.valueMissing")
    assert PurchaseJob.objects.get(pk=job.pk).refund_amount_cents == 0

    amount.fill("2.00")
    page.fill("input[name=reason]", "Customer asked")
    submit.click()
    page.wait_for_url(inspect_url)
    assert page.get_by_text(
        "Refunded $2.00. $3.76 can still be refunded; the download still works."
    ).is_visible()
    job.refresh_from_db()
    assert (job.status, job.refund_amount_cents, job.access_revoked_at) == ("completed", 200, None)
    assert page.locator("[data-smi-refundable]").inner_text() == "$3.76"
    assert (
        page.locator(".smi-timeline tr[data-code=partial_refund]")
        .inner_text()
        .startswith(timeline_date(page))
    )


def timeline_date(page) -> str:
    """The first cell of the newest timeline row (a date in the site's one format)."""
    return page.locator(".smi-timeline tbody tr").last.locator("td").first.inner_text()
