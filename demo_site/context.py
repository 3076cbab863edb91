"""Template context of the demo site."""

from django.conf import settings


def demo(request):
    """Whether the demo mailbox is on (DEBUG and a mail folder), for the order page's link."""
    return {
        "demo_mailbox_on": bool(settings.DEBUG and getattr(settings, "SMI_DEMO_MAILBOX_DIR", None))
    }
