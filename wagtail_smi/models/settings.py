"""Per-site settings: the pricing rules of SPEC §3 and the storefront's switches.

Secrets never live here; they come from ``WAGTAIL_SMI`` (see ``wagtail_smi.conf``).
"""

from __future__ import annotations

from decimal import Decimal

from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from wagtail import blocks
from wagtail.admin.panels import FieldPanel, HelpPanel, MultiFieldPanel
from wagtail.contrib.settings.models import BaseSiteSetting, register_setting
from wagtail.fields import StreamField

from ..pricing import DEFAULT_RESOLUTIONS, PricingRules, ResolutionOption
from .catalog import SaleRefusal, sale_refusal
from .settings_form import SmiSiteSettingsForm


class ResolutionBlock(blocks.StructBlock):
    key = blocks.CharBlock(
        label=_("Key"),
        max_length=16,
        help_text=_("Short name used in URLs and the API, e.g. 4x"),
        validators=[
            RegexValidator(
                r"^[a-z0-9][a-z0-9_-]*$",
                _("Use lowercase letters, digits, - and _ only, e.g. 4x."),
            )
        ],
    )
    factor = blocks.IntegerBlock(label=_("Upscale factor"), min_value=2, max_value=16)
    label = blocks.CharBlock(label=_("Label"), max_length=64)
    description = blocks.CharBlock(label=_("Description"), max_length=255, required=False)
    enabled = blocks.BooleanBlock(label=_("Offered"), required=False, default=True)

    class Meta:
        icon = "image"
        label = _("Resolution")


def default_resolutions():
    return [
        (
            "resolution",
            {
                "key": option.key,
                "factor": option.factor,
                "label": str(option.label),
                "description": str(option.description),
                "enabled": option.enabled,
            },
        )
        for option in DEFAULT_RESOLUTIONS
    ]


@register_setting(icon="image")
class SmiSiteSettings(BaseSiteSetting):
    enabled = models.BooleanField(
        _("selling enabled"), default=True, help_text=_("Show purchase buttons on this site.")
    )
    currency = models.CharField(
        _("currency"),
        max_length=3,
        default="usd",
        help_text=_("Lowercase ISO 4217 code, as Stripe uses it (usd, eur, gbp...)."),
    )
    cost_per_credit = models.DecimalField(
        _("cost per upscaler credit"),
        max_digits=10,
        decimal_places=4,
        default=Decimal("0.04"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text=_("What one upscaler credit costs you, in the currency above."),
    )
    credits_per_megapixel = models.DecimalField(
        _("credits per output megapixel"),
        max_digits=10,
        decimal_places=4,
        default=Decimal("0.25"),
        validators=[MinValueValidator(Decimal("0"))],
    )
    markup_percent = models.DecimalField(
        _("markup (%)"),
        max_digits=8,
        decimal_places=2,
        default=Decimal("200"),
        validators=[MinValueValidator(Decimal("0"))],
    )
    minimum_price_cents = models.PositiveIntegerField(
        _("minimum price (minor units)"),
        default=50,
        help_text=_("In the currency's smallest unit: 50 means 0.50 USD."),
    )
    max_output_megapixels = models.PositiveIntegerField(
        _("largest output (megapixels)"),
        default=400,
        validators=[MinValueValidator(1)],
        help_text=_("Resolutions whose output would be larger are shown as unavailable."),
    )
    resolutions = StreamField(
        [("resolution", ResolutionBlock())],
        default=default_resolutions,
        verbose_name=_("resolutions offered"),
    )
    min_short_side = models.PositiveIntegerField(
        _("smallest image sold (pixels, short side)"),
        default=100,
        validators=[MinValueValidator(1)],
        help_text=_(
            "Images whose shorter side has fewer pixels get no purchase button: upscaled, "
            "they would disappoint."
        ),
    )
    download_expiry_hours = models.PositiveIntegerField(
        _("download link valid for (hours)"), default=24, validators=[MinValueValidator(1)]
    )
    button_text = models.CharField(
        _("button text"),
        max_length=64,
        blank=True,
        default="",
        help_text=_("Leave empty for the default, “Buy high-res”."),
    )
    terms_url = models.URLField(
        _("terms URL"), blank=True, help_text=_("When set, buyers must accept these terms.")
    )
    support_email = models.EmailField(_("support email"), blank=True)

    base_form_class = SmiSiteSettingsForm

    panels = [
        FieldPanel("enabled"),
        MultiFieldPanel(
            [
                FieldPanel("currency"),
                FieldPanel("cost_per_credit"),
                FieldPanel("credits_per_megapixel"),
                FieldPanel("markup_percent"),
                FieldPanel("minimum_price_cents"),
                FieldPanel("max_output_megapixels"),
                FieldPanel("min_short_side"),
            ],
            heading=_("Pricing"),
        ),
        FieldPanel("resolutions"),
        MultiFieldPanel(
            [HelpPanel(template="wagtail_smi/admin/price_preview_panel.html")],
            heading=_("Price preview"),
        ),
        MultiFieldPanel(
            [
                FieldPanel("download_expiry_hours"),
                FieldPanel("button_text"),
                FieldPanel("terms_url"),
                FieldPanel("support_email"),
            ],
            heading=_("Storefront"),
        ),
    ]

    class Meta:
        verbose_name = _("Sell My Images")

    def resolution_options(self) -> tuple[ResolutionOption, ...]:
        options = []
        for block in self.resolutions:
            value = block.value
            options.append(
                ResolutionOption(
                    key=value["key"],
                    factor=int(value["factor"]),
                    label=value["label"],
                    description=value.get("description") or "",
                    enabled=bool(value.get("enabled")),
                )
            )
        return tuple(options)

    def pricing_rules(self) -> PricingRules:
        return PricingRules(
            currency=self.currency.lower(),
            cost_per_credit=self.cost_per_credit,
            credits_per_megapixel=self.credits_per_megapixel,
            markup_percent=self.markup_percent,
            minimum_price_cents=self.minimum_price_cents,
            max_output_megapixels=self.max_output_megapixels,
            resolutions=self.resolution_options(),
        )

    def sale_refusal(self, image) -> SaleRefusal | None:
        """Why this site does not sell ``image`` (not raster, too small), or None."""
        return sale_refusal(image, min_short_side=self.min_short_side)

    def get_button_text(self) -> str:
        return self.button_text or gettext("Buy high-res")
