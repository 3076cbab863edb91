"""Admin integration, a table of contents: each concern registers its own hooks."""

from . import images_admin  # noqa: F401  (image library: put on sale)
from .admin import hooks as admin_hooks  # noqa: F401  (orders, reports, dashboard)
