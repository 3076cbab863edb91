"""SECRET_KEY: the demo never runs on a public one, and rotating it keeps links working.

Order keys and upscaler callback secrets are HMACs of the job id under SECRET_KEY: a key
anyone knows gives away every order. Rotation keeps the old key in SECRET_KEY_FALLBACKS,
and every link made under it (emailed order pages, callback URLs held by the upscaler,
signed original URLs) keeps working until the fallback is dropped.
"""

from __future__ import annotations

import runpy
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse
from django.utils import timezone

from tests.html_support import hrefs, one
from tests.upsampler_server import FakeUpsampler
from wagtail_smi import links, queue
from wagtail_smi.models import PurchaseJob

DEMO_SETTINGS = Path(__file__).resolve().parent.parent / "demo_site" / "settings.py"
ROTATED = "the-new-secret-key-after-rotation-0123456789abcdefghijklmnop"


def load_demo_settings(monkeypatch, var_dir, **env) -> dict:
    """Run demo_site/settings.py as a fresh process would, with this environment."""
    for name in ("DJANGO_SECRET_KEY", "DJANGO_SECRET_KEY_FALLBACKS", "DJANGO_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SMI_DEMO_VAR_DIR", str(var_dir))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(DEMO_SETTINGS))


# --- the demo's secret key ---------------------------------------------------------------


def test_without_debug_the_demo_refuses_to_start_without_a_secret_key(monkeypatch, tmp_path):
    with pytest.raises(ImproperlyConfigured, match="DJANGO_SECRET_KEY"):
        load_demo_settings(monkeypatch, tmp_path, DJANGO_DEBUG="0")

    with pytest.raises(ImproperlyConfigured, match="DJANGO_SECRET_KEY"):
        load_demo_settings(monkeypatch, tmp_path, DJANGO_SECRET_KEY="  ")


def test_without_debug_the_demo_uses_the_key_it_is_given(monkeypatch, tmp_path):
    values = load_demo_settings(
        monkeypatch,
        tmp_path,
        DJANGO_SECRET_KEY="given-key",
        DJANGO_SECRET_KEY_FALLBACKS="old-1, old-2",
    )

    assert values["SECRET_KEY"] == "given-key"
    assert values["SECRET_KEY_FALLBACKS"] == ["old-1", "old-2"]
    assert not (tmp_path / "secret_key").exists()


def test_with_debug_the_demo_makes_a_private_key_once_and_keeps_it(monkeypatch, tmp_path):
    first = load_demo_settings(monkeypatch, tmp_path, DJANGO_DEBUG="1")["SECRET_KEY"]
    again = load_demo_settings(monkeypatch, tmp_path, DJANGO_DEBUG="1")["SECRET_KEY"]
    elsewhere = load_demo_settings(monkeypatch, tmp_path / "other", DJANGO_DEBUG="1")["SECRET_KEY"]

    key_file = tmp_path / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text() == first == again
    assert len(first) >= 50
    assert elsewhere != first
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


# --- rotation: order keys ----------------------------------------------------------------


def status_url(job, key):
    return f"/smi/v1/job-status/{job.pk}?key={key}"


def order_url(job, key):
    return reverse("wagtail_smi:order_status", args=[job.pk]) + f"?key={key}"


@pytest.fixture
def emailed_order(make_job, settings):
    """A completed order and the key its customer was emailed before the rotation."""
    job = make_job(
        "completed", token_expires_at=timezone.now() + timedelta(hours=24), result_path="x.png"
    )
    return job, job.access_key, settings.SECRET_KEY


def test_an_order_key_made_before_rotation_still_unlocks_the_order(client, settings, emailed_order):
    job, old_key, old_secret = emailed_order
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = ROTATED, [old_secret]

    status = client.get(status_url(job, old_key))
    page = client.get(order_url(job, old_key))

    assert status.status_code == 200 and page.status_code == 200
    # Links handed out from now on are made with the current key.
    new_key = PurchaseJob.objects.get(pk=job.pk).access_key
    assert new_key != old_key
    assert status.json()["download_url"].endswith(f"/download/?key={new_key}")
    keys = {href.rsplit("?key=", 1)[1] for href in hrefs(page) if "?key=" in href}
    keys |= {one(page, ".smi-order")["data-status-url"].rsplit("?key=", 1)[1]}
    assert keys == {new_key}  # every link on the page, the script's status URL too
    assert client.get(status_url(job, new_key)).status_code == 200


def test_an_order_key_made_under_a_dropped_secret_is_refused(client, settings, emailed_order):
    job, old_key, _old_secret = emailed_order
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = ROTATED, []

    assert client.get(status_url(job, old_key)).status_code == 404
    assert client.get(order_url(job, old_key)).status_code == 404
    assert client.get(status_url(job, job.access_key)).status_code == 200


@pytest.mark.parametrize(
    "key", ["é" * 40, "\u00ff", "x" * 40], ids=["accented", "latin-1", "ascii"]
)
def test_a_wrong_key_of_any_text_is_a_404(client, make_job, key):
    job = make_job("paid")

    assert client.get(status_url(job, key)).status_code == 404
    assert client.get(order_url(job, key)).status_code == 404


# --- rotation: the upscaler's callback URL -----------------------------------------------


@pytest.fixture
def submitted(make_job, make_image, settings, django_capture_on_commit_callbacks):
    """A job submitted to the (fake) Upsampler, which holds the callback URL made then."""
    with FakeUpsampler(api_key="k") as server:
        settings.WAGTAIL_SMI = server.smi_settings(
            ALLOW_DUMMY_PAYMENTS=True,
            PUBLIC_BASE_URL="http://testserver",
            RATE_LIMITS_ENABLED=False,
        )
        server.pending_polls, server.result_size = None, (80, 40)
        job = make_job(
            "paid", image=make_image(20, 10), paid_at=timezone.now(), email="buyer@example.com"
        )
        with django_capture_on_commit_callbacks(execute=True):
            queue.enqueue_processing(job.pk)
        job.refresh_from_db()
        assert job.status == "processing"
        yield server, job, settings.SECRET_KEY


def deliver_callback(client, server, captured):
    server.finish()
    [(url, payload)] = server.sent_callbacks
    with captured(execute=True):
        return client.post(
            url.removeprefix("http://testserver"), payload, content_type="application/json"
        )


def test_a_callback_url_made_before_rotation_is_still_accepted(
    client, settings, submitted, django_capture_on_commit_callbacks
):
    server, job, old_secret = submitted
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = ROTATED, [old_secret]

    response = deliver_callback(client, server, django_capture_on_commit_callbacks)

    assert response.status_code == 200
    job.refresh_from_db()
    assert job.status == "completed"


def test_a_callback_url_made_under_a_dropped_secret_is_refused(
    client, settings, submitted, django_capture_on_commit_callbacks
):
    server, job, _old_secret = submitted
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = ROTATED, []
    status_calls = len(server.status_calls)

    response = deliver_callback(client, server, django_capture_on_commit_callbacks)

    assert response.status_code == 404
    job.refresh_from_db()
    assert job.status == "processing"
    assert len(server.status_calls) == status_calls


# --- rotation: signed original URLs (django.core.signing) --------------------------------


def test_a_signed_original_url_survives_rotation_while_the_old_key_is_a_fallback(
    client, settings, make_job, make_image
):
    job = make_job("processing", image=make_image(20, 10))
    path = links.original_url(job).removeprefix("http://127.0.0.1:8000")
    old_secret = settings.SECRET_KEY

    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = ROTATED, [old_secret]
    assert client.get(path).status_code == 200

    settings.SECRET_KEY_FALLBACKS = []
    assert client.get(path).status_code == 404
