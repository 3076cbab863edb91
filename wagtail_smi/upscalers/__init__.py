"""Upscaler backends, selected by ``WAGTAIL_SMI["UPSCALER"]`` (``CLASS`` + ``OPTIONS``).

``local`` (Pillow, in the worker, no network), ``realesrgan`` (Real-ESRGAN on the shop's
own CPU or GPU, the ``ai`` extra) and ``upsampler`` (Upsampler's Precise Upscale API over
``requests``). A site can point ``CLASS`` at its own subclass of ``BaseUpscaler``.
"""

from __future__ import annotations

from dataclasses import replace

from django.utils.module_loading import import_string

from ..conf import smi_settings
from ..pricing import COST_BY_CREDITS, COST_BY_MEGAPIXELS, PricingRules
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


def with_upscaler_costs(rules: PricingRules) -> PricingRules:
    """The rules with the configured upscaler's way of costing a copy, for margins: its
    credits (Upsampler), or its output megapixels at the site's cost per megapixel, else
    the backend's own (``OPTIONS["COST_PER_MEGAPIXEL"]``, 0 for Pillow)."""
    upscaler = get_upscaler()
    if upscaler.cost_basis == COST_BY_CREDITS:
        return replace(rules, cost_basis=COST_BY_CREDITS)
    per_megapixel = rules.cost_per_megapixel
    if per_megapixel is None:
        per_megapixel = upscaler.cost_per_megapixel
    return replace(rules, cost_basis=COST_BY_MEGAPIXELS, cost_per_megapixel=per_megapixel)


def for_upscaler(rules: PricingRules) -> PricingRules:
    """The site's rules as the configured upscaler changes them: its size limits and its
    costs. Every quote goes through this."""
    return with_upscaler_costs(within_upscaler_limits(rules))


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
    "for_upscaler",
    "get_upscaler",
    "with_upscaler_costs",
    "within_upscaler_limits",
]
