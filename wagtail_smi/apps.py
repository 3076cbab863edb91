from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WagtailSmiConfig(AppConfig):
    name = "wagtail_smi"
    label = "wagtail_smi"
    verbose_name = _("Sell My Images")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Imported here, not at the top: these modules use models, which only exist once
        # the app registry is ready.
        from . import checks, permissions, redaction, signals

        checks.register()
        signals.connect()
        permissions.register()
        redaction.install()
