"""The operations layer: every use case that changes an order, one function each.

Edges (the JSON API, the storefront pages, the webhooks, the queue's tasks, the admin,
management commands) parse and authorise, call one of these, and answer. Inputs are ids
and plain values; outputs are orders or small results; failures are ``OperationError``
subclasses carrying a message fit for the person who asked. Nothing here sees a request
or builds a response, and nothing else changes an order.

Admin operations check no permissions themselves (the queue and the sweeper call some of
them too): an edge acting for a person calls ``require_permission`` first, as Wagtail's
own actions keep ``check()`` apart from ``execute()``.
"""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied

from .. import permissions
from ..models.states import REDELIVER, REFUND, RESEND_LINK, RESOLVE, RETRY, REVOKE, TAKE_IN_HAND
from .callbacks import upscaler_callback
from .checkout import CheckoutUnavailable, start_checkout
from .clicks import record_click
from .customers import ANONYMISE, anonymise_customer
from .delivery import DeliveryError, install_result, redeliver, resend_link, revoke
from .downloads import DownloadRefused, check_downloadable, record_download
from .errors import (
    InvalidInput,
    NotAllowed,
    NotFound,
    OperationError,
    RetryLater,
    ServiceUnavailable,
)
from .maintenance import cleanup, sweep
from .payments import abandon_checkout, apply_payment_event, mark_paid, mark_payment_failed
from .processing import process_job
from .refunds import RefundNotPossible, record_provider_refund, record_refund_failure, refund
from .resolution import resolve_by_hand, retry, take_in_hand

ADMIN_OPERATIONS = (RETRY, REFUND, RESEND_LINK, REDELIVER, RESOLVE, REVOKE, ANONYMISE, TAKE_IN_HAND)


def require_permission(user: AbstractBaseUser | AnonymousUser, operation: str) -> None:
    """Raise ``PermissionDenied`` unless ``user`` may run this admin operation."""
    if operation not in ADMIN_OPERATIONS or not permissions.user_can_act_on_orders(user):
        raise PermissionDenied


__all__ = [
    "ADMIN_OPERATIONS",
    "CheckoutUnavailable",
    "DeliveryError",
    "DownloadRefused",
    "InvalidInput",
    "NotAllowed",
    "NotFound",
    "OperationError",
    "RefundNotPossible",
    "RetryLater",
    "ServiceUnavailable",
    "abandon_checkout",
    "anonymise_customer",
    "apply_payment_event",
    "check_downloadable",
    "cleanup",
    "install_result",
    "mark_paid",
    "mark_payment_failed",
    "process_job",
    "record_click",
    "record_download",
    "record_provider_refund",
    "record_refund_failure",
    "redeliver",
    "refund",
    "require_permission",
    "resend_link",
    "resolve_by_hand",
    "retry",
    "revoke",
    "start_checkout",
    "sweep",
    "take_in_hand",
    "upscaler_callback",
]
