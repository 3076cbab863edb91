"""Webhook edges: parse, verify, hand to one domain function, answer."""

from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import processing
from .payments import get_payment_provider


@csrf_exempt
@require_POST
def stripe_webhook(request) -> HttpResponse:
    """Signature-checked and idempotent; see ``PaymentProvider.handle_webhook``."""
    return get_payment_provider("stripe").handle_webhook(request)


@csrf_exempt
@require_POST
def upsampler_webhook(request, job_id, secret: str) -> HttpResponse:
    """A hint only: the job's status is confirmed with the upscaler's API before acting."""
    return processing.handle_upscaler_callback(request, job_id, secret)
