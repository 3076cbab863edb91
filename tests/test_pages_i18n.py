"""French and German ship with the package: compiled catalogues in step with their sources,
covering every message, with placeholders intact; the modal, the pages and the emails
speak the customer's language."""

from __future__ import annotations

import ast
import gettext
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from datetime import UTC, datetime
from fnmatch import fnmatch
from pathlib import Path

import pytest
from django.core import mail
from django.utils import translation

import wagtail_smi
from tests.html_support import one, text
from wagtail_smi import emails, links
from wagtail_smi.templatetags.smi_tags import assets_html, modal_config

PACKAGE = Path(wagtail_smi.__file__).parent
ROOT = PACKAGE.parent
LANGUAGES = ("fr", "de")
PLACEHOLDER = re.compile(r"%\(\w+\)[sdr]|\{\w+\}")


def catalogue(language: str) -> Path:
    return PACKAGE / "locale" / language / "LC_MESSAGES"


def messages(mo: Path) -> dict:
    """The translations a compiled catalogue holds: msgid (or (msgid, n)) -> text."""
    with mo.open("rb") as file:
        found = dict(gettext.GNUTranslations(file)._catalog)
    found.pop("", None)  # the header
    return found


def needs(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"needs GNU gettext's {tool} (apt-get install -y gettext)")
    return path


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_compiled_catalogue_is_compiled_from_its_source(language, tmp_path):
    msgfmt = needs("msgfmt")
    fresh = tmp_path / "django.mo"
    subprocess.run(
        [msgfmt, "--check-format", "-o", fresh, catalogue(language) / "django.po"], check=True
    )

    assert messages(catalogue(language) / "django.mo") == messages(fresh), (
        "run `make messages` and commit the .mo files"
    )


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_translation_keeps_its_placeholders(language):
    for key, translated in messages(catalogue(language) / "django.mo").items():
        source = key[0] if isinstance(key, tuple) else key
        expected = set(PLACEHOLDER.findall(source))
        assert set(PLACEHOLDER.findall(translated)) == expected, (source, translated)
        assert translated.strip(), source


def po_messages(po: Path) -> set[str]:
    """The msgids of a .po file (strings that span lines joined, escapes read)."""
    found, parts = set(), None
    for line in po.read_text().splitlines() + [""]:
        if line.startswith("msgid "):
            parts = [ast.literal_eval(line[len("msgid ") :])]
        elif parts is not None and line.startswith('"'):
            parts.append(ast.literal_eval(line))
        elif parts is not None:
            found.add("".join(parts))
            parts = None
    found.discard("")
    return found


def test_the_catalogues_cover_every_message_of_the_package(tmp_path):
    """What ``makemessages`` finds in the package today is translated in both languages:
    a new string fails here until ``make messages`` has run and it is translated."""
    needs("xgettext")
    copy = tmp_path / "wagtail_smi"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("locale", "__pycache__"))
    (copy / "locale").mkdir()
    subprocess.run(
        # The script, not ``python -m django``: the current folder must not be on the path
        # (the package's own ``queue`` and ``signals`` would stand in for the stdlib's).
        [Path(sys.executable).parent / "django-admin", "makemessages", "-l", "fr", "--no-location"],
        cwd=copy,
        check=True,
        capture_output=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},  # no settings module
    )
    wanted = po_messages(copy / "locale" / "fr" / "LC_MESSAGES" / "django.po")

    assert len(wanted) > 500  # the whole package, admin included
    for language in LANGUAGES:
        compiled = messages(catalogue(language) / "django.mo")
        have = {key[0] if isinstance(key, tuple) else key for key in compiled}
        missing = sorted(wanted - have)
        assert not missing, f"{language}: {len(missing)} not translated, e.g. {missing[:3]}"


def test_the_wheel_ships_the_compiled_catalogues():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["wagtail_smi"]

    for language in LANGUAGES:
        mo = f"locale/{language}/LC_MESSAGES/django.mo"
        assert (PACKAGE / mo).is_file()
        assert any(fnmatch(mo, pattern) for pattern in patterns)


# --- what customers read ------------------------------------------------------------------


@pytest.mark.parametrize(
    "language, title, becomes",
    [
        ("fr", "Acheter une copie haute résolution", "{w}×{h} devient {ow}×{oh}"),
        ("de", "Eine Kopie in hoher Auflösung kaufen", "aus {w}×{h} wird {ow}×{oh}"),
    ],
)
def test_the_modal_speaks_french_and_german(rf, site, language, title, becomes):
    request = rf.get("/")

    with translation.override(language):
        config = modal_config(request)
        html = assets_html(request)

    assert config["strings"]["title"] == title
    assert config["strings"]["becomes"] == becomes
    shipped = json.loads(one(html, "script#smi-config").get_text())  # what the script reads
    assert shipped["strings"]["title"] == title


EXPIRY = datetime(2026, 12, 1, 14, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    "language, subject, body, date",
    [
        ("fr", "est prête", "Votre copie haute résolution de", "1 décembre 2026 15:30 CET"),
        (
            "de",
            "ist fertig",
            "in hoher Auflösung steht zum Download bereit",
            "1. Dezember 2026 15:30 CET",
        ),
    ],
)
def test_the_download_email_is_written_in_the_customers_language(
    make_job, settings, language, subject, body, date
):
    settings.TIME_ZONE = "Europe/Paris"
    job = make_job("completed", email="kunde@example.com", locale=language, token_expires_at=EXPIRY)

    with translation.override("en-us"):  # the worker's language does not matter
        emails.send_download_ready(job, "T" * 64)

    [message] = mail.outbox
    assert subject in message.subject
    assert body in message.body and date in message.body
    assert body in message.alternatives[0][0]


def test_the_order_page_speaks_the_visitors_language(client, make_job):
    job = make_job("processing")

    with translation.override("de"):
        response = client.get(links.order_path(job))

    assert text(response, "h1") == "Ihre Bestellung"
    assert "wird hochskaliert" in text(response, ".smi-message")
