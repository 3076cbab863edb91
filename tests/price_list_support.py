"""The site settings form as the admin posts it: plain helpers for the price list tests.

Amounts are what an admin types, in major units (``"29.00"``); every StreamField of the
form (resolutions, licences, collection prices) is sent whole, as the page's own form does.
"""

from __future__ import annotations

from django.urls import reverse
from wagtail.test.utils.form_data import nested_form_data, rich_text, streamfield


def resolution(key="4x", factor=4, label="Standard", enabled=True, price=""):
    value = {"key": key, "factor": factor, "label": label, "description": "", "price": price}
    if enabled:
        value["enabled"] = "on"
    return ("resolution", value)


def licence(
    key="personal",
    name="Personal use",
    *,
    multiplier="1",
    add_on="",
    resolutions="",
    default=False,
    version="1",
):
    value = {
        "key": key,
        "name": name,
        "summary": "",
        "version": version,
        "terms": rich_text(""),
        "terms_page": "",
        "terms_url": "",
        "multiplier": multiplier,
        "add_on": add_on,
        "resolutions": resolutions,
    }
    if default:
        value["default"] = "on"
    return ("licence", value)


def collection_price(collection, resolution_key, price):
    return (
        "collection_price",
        {"collection": str(collection.pk), "resolution": resolution_key, "price": price},
    )


DEFAULT_LICENCES = [
    licence("personal", "Personal use", default=True),
    licence("commercial", "Commercial use", multiplier="3"),
]


def settings_form_data(
    *, resolutions=None, licences=None, collection_prices=(), **overrides
) -> dict:
    """The whole settings form, with the SPEC §3 defaults unless told otherwise."""
    data = {
        "enabled": "on",
        "currency": "usd",
        "pricing_strategy": "cost_plus",
        "cost_per_credit": "0.04",
        "credits_per_megapixel": "0.25",
        "markup_percent": "200",
        "minimum_price_cents": "0.50",
        "cost_per_megapixel": "",
        "max_output_megapixels": "400",
        "min_short_side": "100",
        "resolutions": streamfield(
            resolutions
            if resolutions is not None
            else [resolution(), resolution("8x", 8, "Premium")]
        ),
        "licences": streamfield(licences if licences is not None else DEFAULT_LICENCES),
        "collection_prices": streamfield(list(collection_prices)),
        "download_expiry_hours": "24",
        "button_text": "",
        "terms_url": "",
        "copyright_holder": "",
        "support_email": "",
    }
    data.update(overrides)
    return nested_form_data(data)


def settings_edit_url(site) -> str:
    return reverse("wagtailsettings:edit", args=["wagtail_smi", "smisitesettings", site.pk])


def save_settings(client, site, **form):
    """Post the settings form as an admin saves it; the answer is the redirect on success."""
    return client.post(settings_edit_url(site), settings_form_data(**form))
