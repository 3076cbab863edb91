"""The "Sales" panel on an image's edit page: sell it or not, its own prices, its figures.

Wagtail has no hook for the image edit page, so the app's ``wagtailimages/images/edit.html``
extends Wagtail's and asks for panels with ``{% smi_image_edit_panels image %}``, which
renders what the ``smi_image_edit_panel`` hook returns; ``wagtail_hooks`` registers
``panel_html`` there and ``urlpatterns`` for the panel's own form. The panel is a form of
its own (after the image's form), posted to ``save`` so that saving the image and selling
it stay two separate decisions.

Who may do what (the edit page itself already needs "change" on the image):

- the on/off switch (``ImageForSale``): whoever may change the image, as with the
  listing's "Put on sale" bulk action;
- the image's own prices: only who may also change the shop's settings
  (``wagtail_smi.change_smisitesettings``). A price is the shop's decision, like the price
  list it overrides; an editor who may retitle a picture may not reprice it;
- the sales figures (revenue, margin): only who may see orders and reports
  (``permissions.user_can_view_orders``), the rule the reports follow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST
from wagtail.admin.widgets.switch import SwitchInput
from wagtail.images import get_image_model
from wagtail.models import Site
from wagtail.permissions import policy_registry

from .. import analytics, catalog, permissions, pricing
from ..models import ImageClick, ImageForSale, SaleListing

PRICE_PERMISSION = "wagtail_smi.change_smisitesettings"
PRICE_PREFIX = "price_"
# What a person types for an amount: digits, and decimals after a point or a comma.
AMOUNT = re.compile(r"[0-9]{1,9}(?:[.,][0-9]+)?")


def can_change_image(user, image) -> bool:
    """Wagtail's own rule for the image (its collection permissions), as registered by the
    images app: looked up when asked, since this module loads before that app is ready."""
    policy = policy_registry.get(image)
    return policy.user_has_permission_for_instance(user, "change", image)


def can_set_prices(user) -> bool:
    return bool(user and user.is_active and user.has_perm(PRICE_PERMISSION))


def selling_site(request):
    """The site whose settings price the image here: the admin's own, else the default."""
    return Site.find_for_request(request) or Site.objects.filter(is_default_site=True).first()


# --- the form -------------------------------------------------------------------------------


class SalesForm(forms.Form):
    """The switch, and one price per resolution in major units (empty: no price of its
    own, the collection's or the site's applies). Prices are fields only for users who may
    set them; ``cleaned_prices`` gives minor units, or None to clear."""

    for_sale = forms.BooleanField(
        label=gettext_lazy("On sale on every page that shows it"),
        required=False,
        widget=SwitchInput,
    )

    def __init__(self, *args, resolutions=(), currency: str = "usd", with_prices: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.currency = currency
        self.resolutions = tuple(resolutions)
        if not with_prices:
            return
        for option in self.resolutions:
            self.fields[PRICE_PREFIX + option.key] = forms.CharField(
                label=_("Price of %(label)s (%(key)s)")
                % {"label": option.label, "key": option.key},
                required=False,
                max_length=16,
                widget=forms.TextInput(attrs={"inputmode": "decimal", "size": 8}),
            )

    def price_field(self, key: str):
        name = PRICE_PREFIX + key
        return self[name] if name in self.fields else None

    def clean(self):
        cleaned = super().clean()
        places = pricing.minor_unit_exponent(self.currency)
        for name in self.fields:
            if not name.startswith(PRICE_PREFIX) or name in self.errors:
                continue
            typed = (cleaned.get(name) or "").strip()
            if not typed:
                cleaned[name] = None
                continue
            try:
                if not AMOUNT.fullmatch(typed):
                    raise ValueError("not a plain amount")
                cleaned[name] = pricing.parse_major_units(typed.replace(",", "."), self.currency)
            except ValueError:
                self.add_error(
                    name,
                    _(
                        "Enter an amount in %(currency)s with at most %(places)s decimals, "
                        "such as %(example)s, or leave it empty."
                    )
                    % {
                        "currency": self.currency.upper(),
                        "places": places,
                        "example": f"{29:.{places}f}",
                    },
                )
        return cleaned

    def cleaned_prices(self) -> dict[str, int | None]:
        return {
            name[len(PRICE_PREFIX) :]: self.cleaned_data[name]
            for name in self.fields
            if name.startswith(PRICE_PREFIX)
        }


# --- what the panel shows ---------------------------------------------------------------------


@dataclass(frozen=True)
class PriceRow:
    key: str
    label: str
    output: str
    price: str
    source: str
    cost: str
    margin: str
    field: forms.BoundField | None
    available: bool
    reason: str


SOURCE_LABELS = {
    pricing.SOURCE_IMAGE: gettext_lazy("this image's price"),
    pricing.SOURCE_COLLECTION: gettext_lazy("its collection's price"),
    pricing.COST_PLUS: gettext_lazy("cost plus markup"),
    pricing.FIXED: gettext_lazy("the site's fixed price"),
}


def price_rows(image, site, form: SalesForm) -> list[PriceRow]:
    """Each resolution as it sells now (the one quote function), with cost and margin for
    the default licence, and the field to set the image's own price."""
    quotes, _currency = catalog.image_offer(image, site).quotes()
    rows = []
    for key, quote in quotes.items():
        figures = pricing.seller_figures(quote)
        rows.append(
            PriceRow(
                key=key,
                label=str(quote.label),
                output=f"{quote.output_width:,} × {quote.output_height:,} px",
                price=figures["price_display"],
                source=str(SOURCE_LABELS.get(quote.price_source, quote.price_source)),
                cost=figures["cost_display"],
                margin=figures["margin_display"],
                field=form.price_field(key),
                available=quote.available,
                reason=quote.reason,
            )
        )
    return rows


@dataclass(frozen=True)
class SalesFigures:
    clicks: int
    money: list[analytics.Figures]

    @property
    def orders(self) -> int:
        return sum(figures.orders for figures in self.money)

    @property
    def per_currency(self) -> list[dict]:
        return [
            {
                "currency": figures.currency,
                "net": figures.net,
                "net_display": figures.money("net"),
                "margin": figures.margin,
                "margin_display": figures.money("margin"),
            }
            for figures in self.money
        ]


def sales_figures(image) -> SalesFigures:
    """Clicks on its buttons and its paid orders, all time, money per currency (the
    reports' definitions: ``analytics``)."""
    paid = analytics.paid_orders(analytics.resolve_period("all")).filter(image_ref=image.pk)
    rows = paid.values("currency").annotate(**analytics.MONEY_SUMS, orders=Count("id"))
    return SalesFigures(
        clicks=ImageClick.objects.filter(image_ref=image.pk).count(),
        money=sorted(
            (analytics.Figures.from_row(row) for row in rows), key=lambda f: (-f.net, f.currency)
        ),
    )


def build_form(request, image, site, data=None) -> SalesForm:
    settings_row = catalog.site_settings(site)
    initial = {"for_sale": catalog.is_on_sale_site_wide(image)}
    places = settings_row.currency_exponent
    for key, cents in catalog.image_prices(image).items():
        initial[PRICE_PREFIX + key] = f"{pricing.to_major_units(cents, places):.{places}f}"
    return SalesForm(
        data,
        initial=initial,
        resolutions=[o for o in settings_row.resolution_options() if o.enabled],
        currency=settings_row.currency.lower(),
        with_prices=can_set_prices(request.user),
    )


def panel_context(request, image, form: SalesForm | None = None) -> dict:
    site = selling_site(request)
    form = form or build_form(request, image, site)
    pages = (
        SaleListing.objects.filter(image_id=image.pk, page__live=True)
        .values("page_id")
        .distinct()
        .count()
    )
    show_figures = permissions.user_can_view_orders(request.user)
    return {
        "image": image,
        "form": form,
        "action_url": reverse("wagtail_smi_image_sales", args=(image.pk,)),
        "rows": price_rows(image, site, form) if site is not None else [],
        "can_set_prices": can_set_prices(request.user),
        "currency": form.currency.upper(),
        "live_pages": pages,
        "sold_by_block": SaleListing.objects.filter(
            image_id=image.pk, page__live=True, via_block=True
        ).exists(),
        "figures": sales_figures(image) if show_figures else None,
        "reports_url": reverse("wagtail_smi_reports:images") + "?period=all"
        if show_figures
        else "",
    }


def panel_html(request, image) -> str:
    """The panel, for the ``smi_image_edit_panel`` hook (empty for anyone who may not
    change the image)."""
    if request is None or image is None or not can_change_image(request.user, image):
        return ""
    return render_to_string(
        "wagtail_smi/images_admin/sales_panel.html", panel_context(request, image), request=request
    )


# --- saving ---------------------------------------------------------------------------------


@require_POST
def save(request, image_id: int):
    image = get_object_or_404(get_image_model(), pk=image_id)
    if not can_change_image(request.user, image):
        raise PermissionDenied
    site = selling_site(request)
    form = build_form(request, image, site, data=request.POST)
    if not form.is_valid():
        messages.error(request, _("The sale settings could not be saved due to errors."))
        return TemplateResponse(
            request,
            "wagtail_smi/images_admin/sales_page.html",
            {**panel_context(request, image, form), "edit_url": _edit_url(image)},
            status=400,
        )
    if form.cleaned_data["for_sale"]:
        ImageForSale.objects.get_or_create(image=image, defaults={"created_by": request.user})
    else:
        ImageForSale.objects.filter(image=image).delete()
    prices = form.cleaned_prices()
    if prices:
        catalog.set_image_prices(image, prices)
    messages.success(request, _("Sale settings of '%(title)s' saved.") % {"title": image.title})
    return redirect(_edit_url(image) + "#smi-sales")


def _edit_url(image) -> str:
    return reverse("wagtailimages:edit", args=(image.pk,))


urlpatterns = [
    path("smi/images/<int:image_id>/sales/", save, name="wagtail_smi_image_sales"),
]
