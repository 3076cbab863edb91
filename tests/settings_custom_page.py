"""The test settings with a custom base page model (Wagtail 8's ``WAGTAIL_PAGE_MODEL``), for
the test that the package works on such a site. The demo's own pages subclass Wagtail's
``Page`` and are left out."""

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

INSTALLED_APPS = [app for app in INSTALLED_APPS if not app.startswith("demo_site.home")]
INSTALLED_APPS += ["wagtail.test.basepage"]
WAGTAIL_PAGE_MODEL = "basepage.BasePage"
