"""System checks for the upscaler's configuration: a missing Upsampler key, and a public
base URL Upsampler could not reach, are said before a customer pays for a job that fails."""

from __future__ import annotations

import pytest
from django.core import checks
from django.test import override_settings

from wagtail_smi.checks import public_https_problem

UPSAMPLER = {"CLASS": "wagtail_smi.upscalers.upsampler.UpsamplerUpscaler", "OPTIONS": {}}


def ours(**smi) -> dict[str, checks.CheckMessage]:
    with override_settings(WAGTAIL_SMI={"ALLOW_DUMMY_PAYMENTS": True, **smi}):
        found = checks.run_checks()
    return {m.id: m for m in found if (m.id or "").startswith("wagtail_smi.")}


def test_upsampler_without_a_key_behind_a_local_address_is_warned_about():
    found = ours(UPSCALER=UPSAMPLER, PUBLIC_BASE_URL="http://127.0.0.1:8000")

    key, url = found["wagtail_smi.W004"], found["wagtail_smi.W005"]
    assert key.level == url.level == checks.WARNING
    assert "API_KEY" in key.msg and "SMI_UPSAMPLER_API_KEY" in key.hint
    assert "'http://127.0.0.1:8000'" in url.msg and "it is not https" in url.msg
    assert "SMI_PUBLIC_BASE_URL" in url.hint


def test_upsampler_with_a_key_on_a_public_https_site_is_fine():
    found = ours(
        UPSCALER={"CLASS": "upsampler", "OPTIONS": {"API_KEY": "k"}},
        PUBLIC_BASE_URL="https://shop.example.com",
    )
    assert "wagtail_smi.W004" not in found and "wagtail_smi.W005" not in found


def test_the_local_upscaler_needs_neither():
    found = ours(
        UPSCALER={"CLASS": "local", "OPTIONS": {}}, PUBLIC_BASE_URL="http://127.0.0.1:8000"
    )
    assert not {"wagtail_smi.W004", "wagtail_smi.W005"} & set(found)


def test_an_upscaler_class_that_cannot_be_loaded_is_an_error():
    found = ours(UPSCALER={"CLASS": "wagtail_smi.upscalers.nowhere.Upscaler", "OPTIONS": {}})
    assert found["wagtail_smi.E003"].level == checks.ERROR


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://www.example.com", ""),
        ("https://shop.example.co.uk:8443/prefix/", ""),
        ("https://93.184.216.34", ""),
        ("http://www.example.com", "it is not https"),
        ("https://localhost:8000", "localhost is a local name"),
        ("https://demo.localhost", "demo.localhost is a local name"),
        ("https://shop.local", "shop.local is a local name"),
        ("https://intranet", "intranet is a local name"),
        ("https://127.0.0.1", "127.0.0.1 is not a public address"),
        ("https://10.1.2.3", "10.1.2.3 is not a public address"),
        ("https://[::1]:8000", "::1 is not a public address"),
        ("https://", "it has no host name"),
        ("", "it is not https"),
    ],
)
def test_a_public_https_address_is_judged_by_its_form(url, problem):
    assert public_https_problem(url) == problem
