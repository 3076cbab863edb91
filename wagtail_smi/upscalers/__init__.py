"""Upscaler backends, selected by ``WAGTAIL_SMI["UPSCALER"]`` (``CLASS`` + ``OPTIONS``).

``local`` (Pillow, in the worker, no network), ``realesrgan`` (Real-ESRGAN on the shop's
own CPU or GPU, the ``ai`` extra) and ``upsampler`` (Upsampler's Precise Upscale API over
``requests``). A site can point ``CLASS`` at its own subclass of ``BaseUpscaler``.
"""

from __future__ import annotations

from dataclasses import replace

from django.utils.module_loading import import_string

from ..conf import smi_settings
from ..pricing import PricingRules
from .base import (
    FAILED,
    IN_PROGRESS,
    IN_QUEUE,
    SUCCESS,
    BaseUpscaler,
    FinalUpscalerError,
    RetryableUpscalerError,
    StatusResult,
    SubmitResult,
    UpscaleRequest,
    UpscalerError,
)

ALIASES = {
    "local": "wagtail_smi.upscalers.local.LocalUpscaler",
    "realesrgan": "wagtail_smi.upscalers.realesrgan.RealEsrganUpscaler",
    "upsampler": "wagtail_smi.upscalers.upsampler.UpsamplerUpscaler",
}


def get_upscaler() -> BaseUpscaler:
    config = smi_settings.UPSCALER or {}
    dotted = config.get("CLASS") or ALIASES["local"]
    cls = import_string(ALIASES.get(dotted, dotted))
    return cls(config.get("OPTIONS") or {})


def within_upscaler_limits(rules: PricingRules) -> PricingRules:
    """The site's pricing rules, with the largest output lowered to what the configured
    upscaler can produce: every quote (dialog, checkout, emails) then shows a size it
    cannot make as unavailable, with the reason, instead of selling it and refunding.

    One limit serves every resolution the rules offer, so it is the smallest of the
    upscaler's limits at their factors."""
    upscaler = get_upscaler()
    factors = {option.factor for option in rules.resolutions if option.enabled}
    limits = [upscaler.max_output_megapixels_for(factor) for factor in sorted(factors)] or [
        upscaler.max_output_megapixels
    ]
    limits = [limit for limit in limits if limit is not None]
    capacity = min(limits) if limits else None
    if capacity is None or capacity >= rules.max_output_megapixels:
        return rules
    return replace(rules, max_output_megapixels=max(capacity, 0))


__all__ = [
    "FAILED",
    "IN_PROGRESS",
    "IN_QUEUE",
    "SUCCESS",
    "BaseUpscaler",
    "FinalUpscalerError",
    "RetryableUpscalerError",
    "StatusResult",
    "SubmitResult",
    "UpscaleRequest",
    "UpscalerError",
    "get_upscaler",
    "within_upscaler_limits",
]
