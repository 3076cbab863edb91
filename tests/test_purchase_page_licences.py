"""The purchase page without JavaScript: what each option delivers, the licence choice and
the withdrawal waiver, as the dialog offers them."""

import pytest
from django.test import override_settings

from tests.html_support import one, parse, select, text
from tests.storefront_support import PROVIDER
from wagtail_smi import catalog, rendering
from wagtail_smi.models import PurchaseJob, SmiSiteSettings

pytestmark = pytest.mark.django_db


def buy_url(image, page):
    return f"/smi/buy/{image.pk}/?page={page.pk}"


def test_each_option_says_what_file_it_delivers(client, offer):
    image, page = offer  # 1000 × 1000, a JPEG

    doc = parse(client.get(buy_url(image, page)))

    detail = text(doc, "#smi-res-4x-detail")
    assert "4000×4000" in detail
    assert "13.3 × 13.3 in (33.9 × 33.9 cm) at 300 dpi" in detail
    assert "JPEG file, about 6.4 MB" in detail
    expected = rendering.deliverable(image, 8000, 8000)
    assert expected.print_display in text(doc, "#smi-res-8x-detail")
    assert expected.file_display in text(doc, "#smi-res-8x-detail")


def test_the_buyer_picks_a_licence_with_the_default_preselected(client, offer):
    image, page = offer
    quotes, _currency = catalog.sale_offer(image.pk, page.pk).quotes()

    doc = parse(client.get(buy_url(image, page)))

    licences = select(doc, "fieldset.smi-licences input[type=radio][name=licence]")
    assert [(radio["value"], radio.has_attr("checked")) for radio in licences] == [
        ("personal", True),
        ("commercial", False),
    ]
    assert text(doc, "fieldset.smi-licences legend") == "Choose a licence"
    assert "no resale" in text(doc, "#smi-lic-personal-summary")
    # The page cannot update its prices: each option names its price with every licence.
    commercial = quotes["8x"].licence_prices["commercial"]
    assert f"Commercial use: ${commercial / 100:.2f}" in text(doc, "#smi-res-8x-detail")


@override_settings(WAGTAIL_SMI={"PAYMENT_BACKEND": PROVIDER})
def test_checking_out_with_a_licence_charges_its_price(client, offer):
    image, page = offer
    quotes, _currency = catalog.sale_offer(image.pk, page.pk).quotes()

    response = client.post(buy_url(image, page), {"resolution": "8x", "licence": "commercial"})

    job = PurchaseJob.objects.get()
    assert response.status_code == 302 and response["Location"] == job.checkout_url
    assert (job.resolution, job.licence_key, job.amount_cents) == (
        "8x",
        "commercial",
        quotes["8x"].licence_prices["commercial"],
    )


@override_settings(WAGTAIL_SMI={"PAYMENT_BACKEND": PROVIDER})
def test_an_unknown_licence_is_refused_in_the_page(client, offer):
    image, page = offer

    response = client.post(buy_url(image, page), {"resolution": "4x", "licence": "resale"})

    assert response.status_code == 400
    assert one(response, ".smi-errors[role=alert]")
    assert one(response, "input[name=licence][value=personal]").has_attr("checked")
    assert not PurchaseJob.objects.exists()


@override_settings(WAGTAIL_SMI={"PAYMENT_BACKEND": PROVIDER})
def test_the_withdrawal_waiver_is_required_when_the_site_asks(client, offer, site):
    image, page = offer
    settings_row = SmiSiteSettings.for_site(site)
    settings_row.require_withdrawal_waiver = True
    settings_row.save()

    refused = client.post(buy_url(image, page), {"resolution": "4x", "licence": "commercial"})
    accepted = client.post(
        buy_url(image, page), {"resolution": "4x", "licence": "commercial", "waive_withdrawal": "1"}
    )

    assert refused.status_code == 400
    assert "right of withdrawal" in text(refused, ".smi-errors[role=alert]")
    waiver = one(refused, "input[name=waive_withdrawal]")
    assert waiver.has_attr("required") and not waiver.has_attr("checked")
    assert "right of withdrawal" in text(refused, "label[for=smi-waiver]")
    # What the buyer chose is kept for the second try.
    assert one(refused, "input[name=licence][value=commercial]").has_attr("checked")
    assert accepted.status_code == 302
    assert PurchaseJob.objects.get().withdrawal_waived_at is not None


def test_no_waiver_is_asked_for_by_default(client, offer):
    image, page = offer

    assert not select(parse(client.get(buy_url(image, page))), "input[name=waive_withdrawal]")
