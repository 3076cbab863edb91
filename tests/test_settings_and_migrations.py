"""Site settings defaults (SPEC §3), the WAGTAIL_SMI dict, and migrations."""

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import override_settings

from wagtail_smi.conf import smi_settings
from wagtail_smi.models import SmiSiteSettings
from wagtail_smi.pricing import PricingRules, quote_all


@pytest.mark.django_db
def test_site_settings_defaults_equal_the_spec(site):
    settings = SmiSiteSettings.for_site(site)
    assert settings.enabled is True
    assert settings.currency == "usd"
    assert settings.cost_per_credit == Decimal("0.04")
    assert settings.credits_per_megapixel == Decimal("0.25")
    assert settings.markup_percent == Decimal("200")
    assert settings.minimum_price_cents == 50
    assert settings.max_output_megapixels == 400
    assert settings.download_expiry_hours == 24
    options = settings.resolution_options()
    assert [(o.key, o.factor, o.label, o.enabled) for o in options] == [
        ("4x", 4, "Standard Quality", True),
        ("8x", 8, "Premium Quality", True),
    ]
    assert settings.pricing_rules() == PricingRules()


@pytest.mark.django_db
def test_saved_settings_drive_the_quotes(site):
    settings = SmiSiteSettings.for_site(site)
    settings.markup_percent = Decimal("100")
    settings.save()
    rules = SmiSiteSettings.for_site(site).pricing_rules()
    # 1000×1000 at 8x: 16 credits × 0.04 × 2 = 1.28.
    assert quote_all(1000, 1000, rules)["8x"].price_cents == 128


def test_conf_defaults_and_reload_on_override():
    assert smi_settings.STRIPE["MAX_NETWORK_RETRIES"] == 2
    with override_settings(WAGTAIL_SMI={"PUBLIC_BASE_URL": "https://shop.example"}):
        assert smi_settings.PUBLIC_BASE_URL == "https://shop.example"
        # Nested dicts merge over the defaults instead of replacing them.
        assert smi_settings.STRIPE["API_VERSION"]
    assert smi_settings.PUBLIC_BASE_URL == "http://127.0.0.1:8000"


def test_unknown_keys_are_refused():
    from django.core.exceptions import ImproperlyConfigured

    with override_settings(WAGTAIL_SMI={"PUBLIK_BASE_URL": "x"}):
        with pytest.raises(ImproperlyConfigured):
            smi_settings.PUBLIC_BASE_URL


def missing_migrations() -> str:
    """What ``makemigrations`` would write for the models as they are ("" when nothing):
    at verbosity 3 a dry run prints each migration file in full."""
    out = StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", verbosity=3, stdout=out, stderr=out)
    except SystemExit:  # --check exits with 1 when it finds changes
        return out.getvalue()
    return ""


@pytest.mark.django_db
def test_no_missing_migrations():
    diff = missing_migrations()
    if diff:
        pytest.fail(
            f"The models have changes no migration records; run makemigrations:\n\n{diff}",
            pytrace=False,
        )


@pytest.mark.django_db
def test_the_migrations_check_shows_the_migration_it_would_write(settings, tmp_path, monkeypatch):
    # An app whose migrations folder is empty: the check must fail and print the operations.
    (tmp_path / "no_smi_migrations").mkdir()
    (tmp_path / "no_smi_migrations" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    settings.MIGRATION_MODULES = {"wagtail_smi": "no_smi_migrations"}

    diff = missing_migrations()

    assert "Migrations for 'wagtail_smi':" in diff
    assert "class Migration(migrations.Migration):" in diff
    assert "name='PurchaseJob'" in diff or 'name="PurchaseJob"' in diff


def test_stripe_backend_without_secrets_warns():
    from wagtail_smi.checks import check_stripe_configuration

    with override_settings(WAGTAIL_SMI={"PAYMENT_BACKEND": "stripe"}):
        ids = {w.id for w in check_stripe_configuration(None)}
    assert {"wagtail_smi.W001", "wagtail_smi.W002"} <= ids
    assert "wagtail_smi.W003" not in ids
    with override_settings(
        WAGTAIL_SMI={
            "PAYMENT_BACKEND": "stripe",
            "STRIPE": {"SECRET_KEY": "sk", "WEBHOOK_SECRET": "wh"},
        }
    ):
        assert check_stripe_configuration(None) == []


def test_dummy_backend_is_refused_without_debug():
    from wagtail_smi.checks import check_payment_backend

    with override_settings(DEBUG=False, WAGTAIL_SMI={"PAYMENT_BACKEND": "dummy"}):
        assert [e.id for e in check_payment_backend(None)] == ["wagtail_smi.E001"]
    with override_settings(DEBUG=True, WAGTAIL_SMI={"PAYMENT_BACKEND": "dummy"}):
        assert check_payment_backend(None) == []


def test_a_site_with_a_custom_base_page_model_checks_and_migrates(tmp_path):
    """Wagtail 8 lets a site swap the page model (``WAGTAIL_PAGE_MODEL``): the package's
    relations follow it, its system checks pass and its migrations apply."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings_custom_page",
        "SMI_DEMO_VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    script = (
        "import django; django.setup()\n"
        "from django.core.management import call_command\n"
        "call_command('check', fail_level='ERROR')\n"
        "call_command('migrate', verbosity=0)\n"
        "from wagtail_smi.models import PurchaseJob, SaleListing\n"
        "print(PurchaseJob._meta.get_field('page').related_model._meta.label,"
        " SaleListing._meta.get_field('page').related_model._meta.label)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[-1].split() == ["basepage.BasePage", "basepage.BasePage"]
