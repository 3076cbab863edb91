"""The reports' daily rollups: what the orders and clicks of one day add up to.

``ReportRollup`` holds one row per (day, site, currency, image, page, resolution, licence)
with the counts and sums the reports read; ``ReportCustomer`` and ``ReportItemCustomer``
hold who bought, as a 64-bit key of the lower-cased email, so customers stay exact: a
customer who bought on several days counts once over the period (``COUNT(DISTINCT)``).
Days are calendar days in the site's time zone (``RollupState.time_zone``); rows are built
and refreshed by ``wagtail_smi.rollups``, never edited by hand.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class ReportRollup(models.Model):
    """One day's figures for one cell. Orders count on the day they were created
    (``started`` and what became of them: the funnel) and on the day they were paid
    (``orders`` and money: the revenue report); clicks on the day they were made."""

    day = models.DateField(_("day"))
    site_ref = models.PositiveIntegerField(_("site id"), null=True, blank=True)
    currency = models.CharField(_("currency"), max_length=3, blank=True)
    image_ref = models.PositiveIntegerField(_("image id"))
    page_ref = models.PositiveIntegerField(_("page id"))
    resolution = models.CharField(_("resolution"), max_length=16, blank=True)
    licence_key = models.CharField(_("licence"), max_length=32, blank=True)

    clicks = models.PositiveIntegerField(_("clicks"), default=0)
    # Orders created on the day, and what became of them.
    started = models.PositiveIntegerField(_("checkouts started"), default=0)
    started_paid = models.PositiveIntegerField(_("of which paid"), default=0)
    delivered = models.PositiveIntegerField(_("of which delivered"), default=0)
    started_refunded = models.PositiveIntegerField(_("of which refunded"), default=0)
    abandoned = models.PositiveIntegerField(_("of which abandoned"), default=0)
    # Orders paid on the day (money in minor units of ``currency``).
    orders = models.PositiveIntegerField(_("paid orders"), default=0)
    sales = models.BigIntegerField(_("sales"), default=0)
    refunds = models.BigIntegerField(_("refunds"), default=0)
    cost = models.BigIntegerField(_("upscaling cost"), default=0)
    refunded_orders = models.PositiveIntegerField(_("refunded orders"), default=0)
    # The greatest titles and payment time among the day's paid orders of the cell.
    image_title = models.CharField(_("image title"), max_length=255, blank=True)
    page_title = models.CharField(_("page title"), max_length=255, blank=True)
    last_paid_at = models.DateTimeField(_("last paid"), null=True, blank=True)

    class Meta:
        verbose_name = _("report rollup")
        verbose_name_plural = _("report rollups")
        indexes = [models.Index(fields=["day"], name="smi_rollup_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.currency} image {self.image_ref} page {self.page_ref}"


class ReportCustomer(models.Model):
    """A customer who paid on the day, per currency, for the totals (``group`` "all",
    ``key`` ""), per resolution or per licence (``group`` and its value in ``key``).

    ``previous`` is the customer's last day before this one in the same group, key and
    currency: the customers of a stretch of days are then the rows in it whose previous
    day is before it (or none), counted without ``DISTINCT``."""

    day = models.DateField(_("day"))
    group = models.CharField(_("group"), max_length=16)
    key = models.CharField(_("key"), max_length=32, blank=True)
    currency = models.CharField(_("currency"), max_length=3)
    customer = models.BigIntegerField(_("customer key"))
    previous = models.DateField(_("previous day"), null=True, blank=True)

    class Meta:
        verbose_name = _("report customer")
        verbose_name_plural = _("report customers")
        indexes = [
            models.Index(fields=["group", "day"], name="smi_rollup_customer_day"),
            models.Index(fields=["customer"], name="smi_rollup_customer_key"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.group} {self.key} {self.currency} customer {self.customer}"


class ReportItemCustomer(models.Model):
    """A customer who paid on the day, per currency and image (``group`` "image") or page
    (``group`` "page", ``ref`` the page's id)."""

    day = models.DateField(_("day"))
    currency = models.CharField(_("currency"), max_length=3)
    group = models.CharField(_("image or page"), max_length=8)
    ref = models.PositiveIntegerField(_("image or page id"))
    customer = models.BigIntegerField(_("customer key"))

    class Meta:
        verbose_name = _("report item customer")
        verbose_name_plural = _("report item customers")
        indexes = [
            models.Index(fields=["group", "day"], name="smi_rollup_item_customer_day"),
            models.Index(fields=["customer"], name="smi_rollup_item_customer_key"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.currency} {self.group} {self.ref} customer {self.customer}"


class RollupState(models.Model):
    """One row: which zone the rollups were built for, which days they hold, and how far
    the sweeper has read the orders and clicks that changed since."""

    time_zone = models.CharField(_("time zone"), max_length=64)
    # Days from ``first_day`` up to the day before ``built_until`` are built.
    first_day = models.DateField(_("first day built"), null=True, blank=True)
    built_until = models.DateField(_("built until (excluded)"), null=True, blank=True)
    # Orders updated at or after this, and clicks with a greater id, are newer than the
    # rollups: their days are read from the live tables until the next refresh.
    jobs_mark = models.DateTimeField(_("orders read until"), null=True, blank=True)
    clicks_mark = models.BigIntegerField(_("clicks read until (id)"), default=0)
    clicks_seen = models.BigIntegerField(_("last click id seen"), default=0)
    refreshed_at = models.DateTimeField(_("refreshed"), null=True, blank=True)

    class Meta:
        verbose_name = _("rollup state")
        verbose_name_plural = _("rollup states")

    def __str__(self) -> str:
        return f"rollups for {self.time_zone} until {self.built_until}"
