"""Per-site settings: the price list of SPEC §3 (strategy, resolutions, licences, collection
prices) and the storefront's switches.

Licences and collection prices are StreamFields on the settings, like the resolutions: they
belong to one site, are edited and saved together with the prices they change (so the
preview prices unsaved values exactly), and need no admin views of their own. Orders never
point at a licence block: they keep a snapshot of it (``licence_snapshot``), so editing or
deleting a licence changes no order.

Secrets never live here; they come from ``WAGTAIL_SMI`` (see ``wagtail_smi.conf``).
"""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from wagtail import blocks
from wagtail.admin.panels import FieldPanel, HelpPanel, MultiFieldPanel
from wagtail.contrib.settings.models import BaseSiteSetting, register_setting
from wagtail.fields import StreamField
from wagtail.images import get_image_model
from wagtail.rich_text import expand_db_html

from ..pricing import (
    COST_PLUS,
    DEFAULT_LICENCES,
    DEFAULT_RESOLUTIONS,
    STRATEGY_CHOICES,
    LicenceOption,
    PricingRules,
    ResolutionOption,
    default_licence,
    minor_unit_exponent,
    parse_major_units,
    to_major_units,
)
from .catalog import ImageForSale, ImagePrice, SaleListing, SaleRefusal, sale_refusal
from .settings_form import SmiSiteSettingsForm

KEY_VALIDATOR = RegexValidator(
    r"^[a-z0-9][a-z0-9_-]*$", _("Use lowercase letters, digits, - and _ only, e.g. 4x.")
)


class MoneyBlock(blocks.FieldBlock):
    """An amount typed in major units (29.00) and stored as integer minor units (2900).

    The block cannot know the site's currency: it converts with ``exponent`` decimals (2
    unless told), and the settings form gives its own copy of the blocks the exponent of
    the currency being saved (``settings_form.with_currency_exponent``).
    """

    def __init__(self, required=False, help_text=None, exponent=2, **kwargs):
        self._required = required
        self._help_text = help_text
        super().__init__(**kwargs)
        self.set_exponent(exponent)

    def set_exponent(self, exponent: int) -> None:
        self.exponent = exponent
        self.field = forms.DecimalField(
            required=self._required,
            help_text=self._help_text,
            min_value=Decimal(0),
            max_value=Decimal(10_000_000),
            decimal_places=exponent,
            widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
        )

    def to_python(self, value):
        if value in (None, ""):
            return None
        return int(value)

    def get_prep_value(self, value):
        return None if value in (None, "") else int(value)

    def value_for_form(self, value):
        if isinstance(value, int) and not isinstance(value, bool):
            return to_major_units(value, self.exponent)
        return value

    def value_from_form(self, value):
        if value in (None, ""):
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        try:
            return parse_major_units(str(value), self.exponent)
        except ValueError:
            return value  # left as typed: the form field's validation says what is wrong

    class Meta:
        icon = "tag"
        default = None


class ResolutionBlock(blocks.StructBlock):
    key = blocks.CharBlock(
        label=_("Key"),
        max_length=16,
        help_text=_("Short name used in URLs and the API, e.g. 4x"),
        validators=[KEY_VALIDATOR],
    )
    factor = blocks.IntegerBlock(label=_("Upscale factor"), min_value=2, max_value=16)
    label = blocks.CharBlock(label=_("Label"), max_length=64)
    description = blocks.CharBlock(label=_("Description"), max_length=255, required=False)
    enabled = blocks.BooleanBlock(label=_("Offered"), required=False, default=True)
    price = MoneyBlock(
        label=_("Fixed price"),
        required=False,
        help_text=_(
            "In the site's currency, e.g. 29.00. Used when the pricing strategy is "
            "“Fixed price per resolution”."
        ),
    )

    class Meta:
        icon = "image"
        label = _("Resolution")
        label_format = "{label} ({key})"


class LicenceBlock(blocks.StructBlock):
    key = blocks.CharBlock(
        label=_("Key"),
        max_length=32,
        help_text=_("Short name used in the API and on orders, e.g. commercial"),
        validators=[
            RegexValidator(
                r"^[a-z0-9][a-z0-9_-]*$",
                _("Use lowercase letters, digits, - and _ only, e.g. commercial."),
            )
        ],
    )
    name = blocks.CharBlock(label=_("Name"), max_length=128)
    summary = blocks.CharBlock(
        label=_("Summary"),
        max_length=255,
        required=False,
        help_text=_("One line the buyer reads beside the price."),
    )
    version = blocks.CharBlock(
        label=_("Version"),
        max_length=32,
        default="1",
        help_text=_("Change it when you change the terms: orders keep the version they bought."),
    )
    terms = blocks.RichTextBlock(
        label=_("Full terms"),
        required=False,
        features=["h3", "bold", "italic", "ol", "ul", "link"],
    )
    terms_page = blocks.PageChooserBlock(label=_("Or: a page with the terms"), required=False)
    terms_url = blocks.URLBlock(
        label=_("Or: the terms' address elsewhere"),
        required=False,
        help_text=_("For a licence published elsewhere, such as a Creative Commons licence."),
    )
    multiplier = blocks.DecimalBlock(
        label=_("Price multiplier"),
        default=Decimal(1),
        min_value=0,
        max_value=1000,
        decimal_places=2,
        help_text=_("The resolution's price is multiplied by this: 1 keeps it, 3 triples it."),
    )
    add_on = MoneyBlock(
        label=_("Fixed add-on"),
        required=False,
        help_text=_("Added after the multiplier, in the site's currency, e.g. 20.00."),
    )
    resolutions = blocks.CharBlock(
        label=_("Sold with these resolutions"),
        required=False,
        max_length=255,
        help_text=_("Resolution keys separated by commas, e.g. 8x. Empty: every resolution."),
    )
    default = blocks.BooleanBlock(
        label=_("Default licence"),
        required=False,
        help_text=_("Pre-selected, and the price shown first. Exactly one licence is the default."),
    )

    class Meta:
        icon = "doc-full"
        label = _("Licence")
        label_format = "{name} ({key})"


def collection_choices():
    """Every collection, indented by depth (read when the settings form is shown)."""
    # Not at import time: this module loads while the app registry fills, before
    # ``wagtail.models`` may be read.
    from wagtail.models import Collection

    return [
        (str(collection.pk), "— " * max(collection.depth - 2, 0) + collection.name)
        for collection in Collection.objects.filter(depth__gt=1).order_by("path")
    ]


class CollectionPriceBlock(blocks.StructBlock):
    collection = blocks.ChoiceBlock(label=_("Collection"), choices=collection_choices)
    resolution = blocks.CharBlock(
        label=_("Resolution key"), max_length=16, validators=[KEY_VALIDATOR]
    )
    price = MoneyBlock(label=_("Price"), required=True)

    class Meta:
        icon = "folder-open-inverse"
        label = _("Collection price")
        label_format = "{resolution}: {price}"


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
                "price": option.price_cents,
            },
        )
        for option in DEFAULT_RESOLUTIONS
    ]


def default_licences():
    """The demo's tiers: Personal use (the default, ×1) and Commercial use (×3)."""
    return [
        (
            "licence",
            {
                "key": licence.key,
                "name": str(licence.name),
                "summary": str(licence.summary),
                "version": licence.version,
                "multiplier": str(licence.multiplier),
                "add_on": licence.add_on_cents or None,
                "resolutions": ", ".join(licence.resolutions),
                "default": licence.default,
            },
        )
        for licence in DEFAULT_LICENCES
    ]


PREVIEW_IMAGES_SHOWN = 200


def images_visible_to(user):
    """The images ``user`` may choose or edit in the admin (Wagtail's collection
    permissions); every image when no user is given (scripts)."""
    image_model = get_image_model()
    if user is None:
        return image_model.objects.all()
    # Not at import time: ``wagtail.permissions`` imports ``wagtail.models``, which this
    # module must not read while the app registry fills.
    from wagtail.permissions import policy_registry

    policy = policy_registry.get_by_type(image_model)
    return policy.instances_user_has_any_permission_for(user, ["choose", "change"])


def preview_images(user=None):
    """The images a seller may want to see priced: for sale site-wide, on sale through a
    live page, or with prices of their own (by title, at most ``PREVIEW_IMAGES_SHOWN``),
    among those ``user`` may see."""
    listed = SaleListing.objects.filter(page__live=True).values("image_id")
    return (
        images_visible_to(user)
        .filter(
            Q(pk__in=ImageForSale.objects.values("image_id"))
            | Q(pk__in=ImagePrice.objects.values("image_id"))
            | Q(pk__in=listed)
        )
        .select_related("collection")
        .order_by("title", "pk")[:PREVIEW_IMAGES_SHOWN]
    )


class PricePreviewPanel(HelpPanel):
    """The live price preview, with a choice of the library's images for sale: an image
    is priced with its own and its collection's prices, as its buyers see it."""

    def __init__(self, template="wagtail_smi/admin/price_preview_panel.html", **kwargs):
        super().__init__(template=template, **kwargs)

    class BoundPanel(HelpPanel.BoundPanel):
        def get_context_data(self, parent_context=None):
            context = super().get_context_data(parent_context)
            user = getattr(self.request, "user", None)
            context["preview_images"] = preview_images(user) if user is not None else []
            return context


def split_keys(text: str | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(k.strip() for k in (text or "").split(",") if k.strip()))


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
    pricing_strategy = models.CharField(
        _("pricing strategy"),
        max_length=16,
        choices=STRATEGY_CHOICES,
        default=COST_PLUS,
        help_text=_(
            "How a resolution is priced when neither the image nor its collection has its "
            "own price."
        ),
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
    # Stored in minor units; the settings form shows and takes major units.
    minimum_price_cents = models.PositiveIntegerField(
        _("minimum price"),
        default=50,
        help_text=_("In the currency above, e.g. 0.50. Applies to cost-plus prices."),
    )
    cost_per_megapixel = models.DecimalField(
        _("self-hosted upscaling cost per output megapixel"),
        max_digits=10,
        decimal_places=4,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0"))],
        help_text=_(
            "What one output megapixel costs you with an upscaler that runs on your own "
            "machines (Pillow, Real-ESRGAN): electricity, machine time. Empty: the upscaler's "
            "own setting (0 unless configured). Used for margins."
        ),
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
    licences = StreamField(
        [("licence", LicenceBlock())],
        default=default_licences,
        verbose_name=_("licences"),
        help_text=_("What a buyer may do with the copy, and how each licence changes the price."),
    )
    collection_prices = StreamField(
        [("collection_price", CollectionPriceBlock())],
        default=list,
        blank=True,
        verbose_name=_("collection prices"),
        help_text=_(
            "A price for a resolution of every image in a collection (and its "
            "sub-collections). An image's own price wins over its collection's."
        ),
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
    require_withdrawal_waiver = models.BooleanField(
        _("ask buyers to waive the right of withdrawal"),
        default=False,
        help_text=_(
            "EU consumers may withdraw from a purchase for 14 days unless they ask for "
            "immediate delivery and acknowledge losing that right. When on, checkout requires "
            "that consent and the order records when it was given."
        ),
    )
    copyright_holder = models.CharField(
        _("copyright holder"),
        max_length=255,
        blank=True,
        help_text=_("Written into every delivered file with its licence. Empty: the site's name."),
    )
    support_email = models.EmailField(_("support email"), blank=True)

    base_form_class = SmiSiteSettingsForm

    panels = [
        FieldPanel("enabled"),
        MultiFieldPanel(
            [
                FieldPanel("currency"),
                FieldPanel("pricing_strategy"),
                FieldPanel("cost_per_credit"),
                FieldPanel("credits_per_megapixel"),
                FieldPanel("markup_percent"),
                FieldPanel("minimum_price_cents"),
                FieldPanel("cost_per_megapixel"),
                FieldPanel("max_output_megapixels"),
                FieldPanel("min_short_side"),
            ],
            heading=_("Pricing"),
        ),
        FieldPanel("resolutions"),
        FieldPanel("licences"),
        FieldPanel("collection_prices"),
        MultiFieldPanel(
            [PricePreviewPanel()],
            heading=_("Price preview"),
        ),
        MultiFieldPanel(
            [
                FieldPanel("download_expiry_hours"),
                FieldPanel("button_text"),
                FieldPanel("terms_url"),
                FieldPanel("require_withdrawal_waiver"),
                FieldPanel("copyright_holder"),
                FieldPanel("support_email"),
            ],
            heading=_("Storefront"),
        ),
    ]

    class Meta:
        verbose_name = _("Sell My Images")

    # --- the price list ---------------------------------------------------------------

    def resolution_options(self) -> tuple[ResolutionOption, ...]:
        options = []
        for block in self.resolutions:
            value = block.value
            price = value.get("price")
            options.append(
                ResolutionOption(
                    key=value["key"],
                    factor=int(value["factor"]),
                    label=value["label"],
                    description=value.get("description") or "",
                    enabled=bool(value.get("enabled")),
                    price_cents=int(price) if isinstance(price, int) else None,
                )
            )
        return tuple(options)

    def licence_options(self) -> tuple[LicenceOption, ...]:
        """The site's licence tiers (the built-in two when none is defined)."""
        options = tuple(
            LicenceOption(
                key=value["key"],
                name=value["name"],
                summary=value.get("summary") or "",
                version=value.get("version") or "",
                multiplier=Decimal(value.get("multiplier") or 1),
                add_on_cents=int(value.get("add_on") or 0),
                resolutions=split_keys(value.get("resolutions")),
                default=bool(value.get("default")),
                terms_url=_terms_url(value),
            )
            for value in (block.value for block in self.licences)
        )
        return options or DEFAULT_LICENCES

    def collection_price_map(self) -> dict[int, dict[str, int]]:
        """Collection id → {resolution key: price in minor units}."""
        found: dict[int, dict[str, int]] = {}
        for block in self.collection_prices:
            value = block.value
            collection_id, price = value.get("collection"), value.get("price")
            if not str(collection_id or "").isdigit() or not isinstance(price, int):
                continue
            found.setdefault(int(collection_id), {})[value["resolution"]] = price
        return found

    def pricing_rules(self) -> PricingRules:
        return PricingRules(
            currency=self.currency.lower(),
            cost_per_credit=self.cost_per_credit,
            credits_per_megapixel=self.credits_per_megapixel,
            markup_percent=self.markup_percent,
            minimum_price_cents=self.minimum_price_cents,
            max_output_megapixels=self.max_output_megapixels,
            resolutions=self.resolution_options(),
            strategy=self.pricing_strategy or COST_PLUS,
            licences=self.licence_options(),
            cost_per_megapixel=self.cost_per_megapixel,
        )

    @property
    def currency_exponent(self) -> int:
        return minor_unit_exponent(self.currency or "usd")

    # --- licences on orders -------------------------------------------------------------

    def licence_block(self, key: str):
        for block in self.licences:
            if block.value["key"] == key:
                return block.value
        return None

    def licence_snapshot(self, key: str) -> dict[str, str]:
        """The order fields that keep a licence as it reads now (``PurchaseJob.licence_*``):
        its key, name, version, summary, full terms (the rich text as HTML, links resolved)
        and terms URL. Unknown keys give the built-in tier of that key, if any."""
        value = self.licence_block(key)
        if value is None:
            builtin = next((item for item in DEFAULT_LICENCES if item.key == key), None)
            if builtin is None:
                raise KeyError(key)
            return {
                "licence_key": builtin.key,
                "licence_name": str(builtin.name),
                "licence_version": builtin.version,
                "licence_summary": str(builtin.summary),
                "licence_terms": "",
                "licence_terms_url": builtin.terms_url,
            }
        terms = value.get("terms")
        return {
            "licence_key": value["key"],
            "licence_name": value["name"][:128],
            "licence_version": (value.get("version") or "")[:32],
            "licence_summary": (value.get("summary") or "")[:255],
            "licence_terms": expand_db_html(terms.source) if terms else "",
            "licence_terms_url": _terms_url(value)[:2048],
        }

    def licence_terms_html(self, key: str) -> str:
        """A licence's full terms as HTML ("" when it has none of its own)."""
        value = self.licence_block(key)
        terms = value.get("terms") if value else None
        return expand_db_html(terms.source) if terms else ""

    def default_licence_key(self) -> str:
        chosen = default_licence(self.licence_options())
        return chosen.key if chosen else ""

    def get_copyright_holder(self) -> str:
        return self.copyright_holder or getattr(self.site, "site_name", "") or ""

    # --- the storefront -------------------------------------------------------------------

    def sale_refusal(self, image) -> SaleRefusal | None:
        """Why this site does not sell ``image`` (not raster, too small), or None."""
        return sale_refusal(image, min_short_side=self.min_short_side)

    def get_button_text(self) -> str:
        return self.button_text or gettext("Buy high-res")


def _terms_url(value) -> str:
    """Where a licence's terms can be read: its page, else its address elsewhere."""
    page = value.get("terms_page")
    if page is not None:
        try:
            url = page.specific_deferred.get_full_url() or ""
        except Exception:  # a page outside every site has no address
            url = ""
        if url:
            return url
    return value.get("terms_url") or ""
