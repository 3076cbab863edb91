"""Signal handlers live with their concern; importing them here connects them."""

from . import catalog  # noqa: F401
