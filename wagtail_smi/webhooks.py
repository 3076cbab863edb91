"""Webhook edges: read the request, let the provider verify it, apply it, answer.

Stripe's answers: 200 ``{"status": outcome}`` when handled, ignored or already seen; 400
for a missing, stale or wrong signature or a body that is not an event; 413 for a body
over the limit; 409 ``retry_later`` for an event that came before its order was ready
(Stripe sends it again); 503 ``not_configured`` while no signing secret is set.
"""

from __future__ import annotations

import json
import re

from django.http import HttpResponse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import operations
from .http import json_answer, json_error, operation_error
from .payments import WebhookRejected, get_payment_provider

REJECTION_STATUSES = {"too_large": 413, "not_configured": 503}

CALLBACK_MAX_BYTES = 64 * 1024
_UPSCALER_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


@csrf_exempt
@require_POST
def stripe_webhook(request) -> HttpResponse:
    provider = get_payment_provider("stripe")
    try:
        provider.check_webhook_headers(request.headers)
        event = provider.parse_event(request.body, request.headers)
    except WebhookRejected as exc:
        response = json_error(exc.code, exc.message, REJECTION_STATUSES.get(exc.code, 400))
        if exc.code == "not_configured":
            # Django would log every 5xx answer as an error (mailing the admins when DEBUG
            # is off); the provider has already said it once for this process.
            response._has_been_logged = True
        return response
    try:
        outcome = operations.apply_payment_event(event, provider)
    except operations.RetryLater as exc:
        return operation_error(exc)
    return json_answer({"status": outcome})


@csrf_exempt
@require_POST
def upsampler_webhook(request, job_id, secret: str) -> HttpResponse:
    """A hint only: the job's status is confirmed with the upscaler's API before acting."""
    if not operations.upscaler_callback(job_id, secret, named_id=callback_job_id(request)):
        return json_error("not_found", _("Not found."), 404)
    return json_answer({"received": True})


def callback_job_id(request) -> str:
    """The upscaler's job id a callback's JSON body names, or ``""`` (a claim to confirm)."""
    body = request.body
    if not body or len(body) > CALLBACK_MAX_BYTES:
        return ""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return ""
    value = data.get("id") if isinstance(data, dict) else None
    value = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    return value if _UPSCALER_JOB_ID.fullmatch(value) else ""
