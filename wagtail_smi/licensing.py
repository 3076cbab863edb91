"""Licences on orders: what the buyer chose and agreed to, as the order keeps it.

The tiers themselves are part of the site's price list (``SmiSiteSettings.licences``, priced
by ``pricing``); an order keeps a snapshot of the one bought (``PurchaseJob.licence_*``),
so the order page, the emails, the exports and the delivered file's metadata all read the
licence as it was at checkout, whatever became of it since.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.html import strip_tags
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext


def withdrawal_waiver_text() -> str:
    """The consent an EU buyer gives to get the file at once: the same words on our
    checkout (``require_withdrawal_waiver``) and on Stripe's (``REQUIRE_TERMS_CONSENT``)."""
    return gettext(
        "I ask for the high-resolution image to be delivered immediately and acknowledge "
        "that I lose my right of withdrawal once the download is made available."
    )


def terms_text(html: str) -> str:
    """Terms kept as HTML, as one line of plain text (emails, file metadata)."""
    return " ".join(strip_tags(html or "").split())


@dataclass(frozen=True)
class OrderLicence:
    """The licence of one order, ready to show."""

    key: str
    name: str
    version: str
    summary: str
    terms_url: str
    #: The full terms as accepted (admin-written rich text, links resolved), or "".
    terms_html: SafeString

    @property
    def display(self) -> str:
        """ "Commercial use, version 2", in the language active when it is read (an email
        is rendered in the buyer's)."""
        if not self.version:
            return self.name
        return gettext("%(name)s, version %(version)s") % {
            "name": self.name,
            "version": self.version,
        }

    @property
    def terms_text(self) -> str:
        return terms_text(self.terms_html)


def order_licence(job) -> OrderLicence | None:
    """The licence an order was bought with, or None for an order from before licences."""
    if not job.licence_key:
        return None
    return OrderLicence(
        key=job.licence_key,
        name=job.licence_name or job.licence_key,
        version=job.licence_version,
        summary=job.licence_summary,
        terms_url=job.licence_terms_url,
        # Written by the site's admins in Wagtail's rich text editor (its own allow-list),
        # the same trust as every rich text the site publishes.
        terms_html=mark_safe(job.licence_terms or ""),  # noqa: S308
    )
