"""Who may see orders and reports, and who may act on them.

Orders and reports are guarded by the model permissions of ``PurchaseJob``:

- ``wagtail_smi.view_purchasejob``: see the orders list, an order, the reports, exports
  and the dashboard panel;
- ``wagtail_smi.change_purchasejob``: run the admin operations on orders (retry, refund,
  resend, ...; see ``operations.require_permission``).

The "Sales managers" group (data migration 0002) holds both. Plain editors hold neither.
"""

from __future__ import annotations

from wagtail.permission_policies import ModelPermissionPolicy
from wagtail.permissions import register_permission_policy

from .models import PurchaseJob

orders_permission_policy = ModelPermissionPolicy(PurchaseJob)

SALES_MANAGERS_GROUP = "Sales managers"

# Actions a report or the orders list accepts as "may see it".
VIEW_ACTIONS = ["view", "change"]


def register() -> None:
    """Called from ``AppConfig.ready()``: menus and checks work outside requests too."""
    register_permission_policy(PurchaseJob, orders_permission_policy)


def user_can_view_orders(user) -> bool:
    return bool(user and user.is_active) and orders_permission_policy.user_has_any_permission(
        user, VIEW_ACTIONS
    )


def user_can_act_on_orders(user) -> bool:
    return bool(user and user.is_active) and orders_permission_policy.user_has_permission(
        user, "change"
    )
