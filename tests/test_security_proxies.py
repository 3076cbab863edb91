"""Who the client is behind reverse proxies: forwarded headers only when configured.

By default ``REMOTE_ADDR`` is the client, whatever ``X-Forwarded-For`` says (a client
picks its own headers). ``TRUSTED_PROXIES`` reads the entry our outermost proxy wrote,
counted from the right; ``CLIENT_IP_HEADER`` reads a header our proxy sets.
"""

from __future__ import annotations

import pytest
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile
from django.test import Client, RequestFactory
from django.utils import timezone

from wagtail_smi import storage
from wagtail_smi.models import DownloadEvent
from wagtail_smi.operations import delivery as delivery_ops
from wagtail_smi.utils import client_ip, hash_ip

pytestmark = pytest.mark.django_db

PROXY = "10.0.0.1"  # every request reaches the site from the proxy


@pytest.fixture
def proxied(settings):
    """Tight status limits (2 a minute), plus any trusted-proxy settings the test names."""

    def configure(**smi):
        settings.WAGTAIL_SMI = {
            **settings.WAGTAIL_SMI,
            "RATE_LIMITS_ENABLED": True,
            "RATE_LIMITS": {**settings.WAGTAIL_SMI.get("RATE_LIMITS", {}), "status": (2, 60)},
            **smi,
        }
        caches["default"].clear()

    return configure


@pytest.fixture
def status_path(make_job):
    job = make_job("paid")
    return f"/smi/v1/job-status/{job.pk}?key={job.access_key}"


def visitor(**headers) -> Client:
    return Client(REMOTE_ADDR=PROXY, **headers)


def codes(client: Client, path: str, times: int) -> list[int]:
    return [client.get(path).status_code for _ in range(times)]


# --- through the rate limits ----------------------------------------------------------


def test_by_default_forged_forwarded_headers_share_the_senders_bucket(proxied, status_path):
    proxied()
    first = visitor(HTTP_X_FORWARDED_FOR="203.0.113.1", HTTP_X_REAL_IP="203.0.113.1")
    second = visitor(HTTP_X_FORWARDED_FOR="203.0.113.2", HTTP_X_REAL_IP="203.0.113.2")

    assert codes(first, status_path, 2) == [200, 200]
    assert codes(second, status_path, 1) == [429]


def test_with_one_trusted_proxy_each_client_behind_it_has_its_own_bucket(proxied, status_path):
    proxied(TRUSTED_PROXIES=1)
    first = visitor(HTTP_X_FORWARDED_FOR="203.0.113.1")
    second = visitor(HTTP_X_FORWARDED_FOR="203.0.113.2")

    assert codes(first, status_path, 3) == [200, 200, 429]
    assert codes(second, status_path, 2) == [200, 200]


def test_a_forged_prefix_does_not_change_the_bucket(proxied, status_path):
    proxied(TRUSTED_PROXIES=1)
    # The client sends its own X-Forwarded-For; the proxy appends the address it saw.
    honest = visitor(HTTP_X_FORWARDED_FOR="203.0.113.1")
    forging = [visitor(HTTP_X_FORWARDED_FOR=f"198.51.100.{n}, 203.0.113.1") for n in range(3)]

    assert codes(honest, status_path, 2) == [200, 200]
    assert [codes(client, status_path, 1)[0] for client in forging] == [429, 429, 429]


def test_with_a_client_ip_header_each_client_has_its_own_bucket(proxied, status_path):
    proxied(CLIENT_IP_HEADER="X-Real-IP")
    first = visitor(HTTP_X_REAL_IP="203.0.113.1", HTTP_X_FORWARDED_FOR="198.51.100.1")
    first_forging_xff = visitor(HTTP_X_REAL_IP="203.0.113.1", HTTP_X_FORWARDED_FOR="198.51.100.2")
    second = visitor(HTTP_X_REAL_IP="203.0.113.2")

    assert codes(first, status_path, 2) == [200, 200]
    assert codes(first_forging_xff, status_path, 1) == [429]
    assert codes(second, status_path, 1) == [200]


# --- the address itself ------------------------------------------------------------------


def request_with(**meta):
    return RequestFactory().get("/", REMOTE_ADDR=PROXY, **meta)


@pytest.mark.parametrize(
    ("smi", "forwarded", "expected"),
    [
        ({}, "203.0.113.1", PROXY),  # never trusted by default
        ({"TRUSTED_PROXIES": 1}, "203.0.113.1", "203.0.113.1"),
        ({"TRUSTED_PROXIES": 1}, "6.6.6.6, 203.0.113.1", "203.0.113.1"),
        ({"TRUSTED_PROXIES": 2}, "6.6.6.6, 203.0.113.1, 10.0.0.2", "203.0.113.1"),
        ({"TRUSTED_PROXIES": 2}, "203.0.113.1", PROXY),  # chain too short
        ({"TRUSTED_PROXIES": 1}, "", PROXY),
        ({"TRUSTED_PROXIES": 1}, "6.6.6.6, not-an-address", PROXY),
        ({"TRUSTED_PROXIES": 1}, "6.6.6.6, 203.0.113.1:4711", "203.0.113.1"),
        ({"TRUSTED_PROXIES": 1}, "[2001:DB8::0001]:443", "2001:db8::1"),
        ({"TRUSTED_PROXIES": 1}, "2001:db8:0::1", "2001:db8::1"),
    ],
)
def test_the_client_is_the_entry_our_outermost_proxy_added(settings, smi, forwarded, expected):
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, **smi}

    assert client_ip(request_with(HTTP_X_FORWARDED_FOR=forwarded)) == expected


def test_a_client_ip_header_wins_and_falls_back_when_missing(settings):
    settings.WAGTAIL_SMI = {
        **settings.WAGTAIL_SMI,
        "CLIENT_IP_HEADER": "X-Real-IP",
        "TRUSTED_PROXIES": 1,
    }

    assert (
        client_ip(request_with(HTTP_X_REAL_IP="203.0.113.7", HTTP_X_FORWARDED_FOR="6.6.6.6"))
        == "203.0.113.7"
    )
    assert client_ip(request_with(HTTP_X_REAL_IP="6.6.6.6, 203.0.113.7")) == "203.0.113.7"
    assert client_ip(request_with(HTTP_X_FORWARDED_FOR="6.6.6.6")) == PROXY
    assert client_ip(request_with(HTTP_X_REAL_IP="garbage")) == PROXY


@pytest.mark.parametrize("value", [-1, "1", 1.5, True])
def test_a_malformed_trusted_proxies_setting_is_refused(settings, value):
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "TRUSTED_PROXIES": value}

    with pytest.raises(ImproperlyConfigured, match="TRUSTED_PROXIES"):
        client_ip(request_with())


# --- download logs agree with the rate limits ----------------------------------------------


def test_downloads_are_logged_under_the_client_behind_the_proxy(settings, make_job):
    settings.WAGTAIL_SMI = {
        **settings.WAGTAIL_SMI,
        "TRUSTED_PROXIES": 1,
        "PUBLIC_BASE_URL": "http://testserver",
    }
    job = make_job("processing", paid_at=timezone.now(), email="b@example.com")
    name = storage.private_storage().save(f"wagtail_smi/{job.pk}/file.png", ContentFile(b"x" * 64))
    token, fields = delivery_ops.token_fields(job)
    for key, value in {
        "status": "completed",
        "result_path": name,
        "result_size_bytes": 64,
        "result_content_type": "image/png",
        **fields,
    }.items():
        setattr(job, key, value)
    job.save()

    response = visitor(HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9").get(f"/smi/download/{token}")

    assert response.status_code == 200
    assert DownloadEvent.objects.get(job=job).ip_hash == hash_ip("203.0.113.9")
