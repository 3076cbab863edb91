"""The demo's admin account: made by ``smi_demo_content``, printed by it and by ``serve.py``
(what ``make demo`` runs), so the login is on screen once the site is up."""

ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "smi-demo-admin"  # noqa: S105 (a demo account, printed for the user)
