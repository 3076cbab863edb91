"""System checks for a safe configuration."""

from django.conf import settings
from django.core import checks

from .conf import smi_settings


@checks.register(checks.Tags.security, deploy=False)
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


@checks.register()
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
