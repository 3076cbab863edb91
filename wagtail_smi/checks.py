"""System checks for a safe configuration."""

import stripe
from django.conf import settings
from django.core import checks

from .conf import smi_settings


def check_payment_backend(app_configs, **kwargs):
    backend = smi_settings.PAYMENT_BACKEND
    if backend == "dummy" and not (settings.DEBUG or smi_settings.ALLOW_DUMMY_PAYMENTS):
        return [
            checks.Error(
                "The dummy payment backend takes no money and is refused unless DEBUG is on.",
                hint='Set WAGTAIL_SMI["PAYMENT_BACKEND"] = "stripe", or '
                'WAGTAIL_SMI["ALLOW_DUMMY_PAYMENTS"] = True for a test site.',
                id="wagtail_smi.E001",
            )
        ]
    return []


def check_private_storage(app_configs, **kwargs):
    alias = smi_settings.PRIVATE_STORAGE
    storages = getattr(settings, "STORAGES", {})
    if alias not in storages:
        return [
            checks.Error(
                f"STORAGES has no {alias!r} entry for delivered files.",
                hint="Add a private storage (not served under MEDIA_URL) to STORAGES, "
                'or point WAGTAIL_SMI["PRIVATE_STORAGE"] at one.',
                id="wagtail_smi.E002",
            )
        ]
    return []


def check_stripe_configuration(app_configs, **kwargs):
    if smi_settings.PAYMENT_BACKEND != "stripe":
        return []

    stripe_settings = smi_settings.STRIPE
    problems = []
    for key, hint in (
        ("SECRET_KEY", "the secret key from the Stripe dashboard (sk_live_… or sk_test_…)"),
        ("WEBHOOK_SECRET", "the signing secret of the /smi-webhook/stripe/ endpoint (whsec_…)"),
    ):
        if not stripe_settings.get(key):
            problems.append(
                checks.Warning(
                    f'WAGTAIL_SMI["STRIPE"]["{key}"] is empty: Stripe payments will fail.',
                    hint=f"Set it to {hint}, from the environment.",
                    id="wagtail_smi.W001" if key == "SECRET_KEY" else "wagtail_smi.W002",
                )
            )
    if stripe_settings.get("API_VERSION") != stripe.api_version:
        problems.append(
            checks.Warning(
                f"Stripe API version {stripe_settings.get('API_VERSION')!r} differs from the "
                f"{stripe.api_version!r} the installed stripe library is built for.",
                hint="Leave STRIPE API_VERSION at its default unless you have tested another.",
                id="wagtail_smi.W003",
            )
        )
    return problems


def register() -> None:
    """Called from ``AppConfig.ready()``."""
    checks.register(check_payment_backend, checks.Tags.security)
    checks.register(check_private_storage)
    checks.register(check_stripe_configuration)
