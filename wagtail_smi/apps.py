from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WagtailSmiConfig(AppConfig):
    name = "wagtail_smi"
    label = "wagtail_smi"
    verbose_name = _("Sell My Images")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import checks, redaction, signals  # noqa: F401  (checks, signal handlers)

        redaction.install()
