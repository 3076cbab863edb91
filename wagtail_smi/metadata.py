"""The rights a delivered file carries: copyright, the licence bought, the order.

Written with exiv2 (through pyexiv2, whose wheels ship the library) into a copy of the
validated result, in every block the format holds:

- XMP (JPEG, PNG, WebP), the IPTC Core and IPTC Extension properties: ``dc:rights``
  (copyright notice), ``xmpRights:Marked``, ``xmpRights:UsageTerms`` (the licence, its
  version, where its terms are, the order), ``xmpRights:WebStatement`` (the terms' address)
  and ``photoshop:TransmissionReference`` (IPTC's "Job Identifier": the order id).
- IPTC IIM (JPEG, PNG; WebP has no place for it): Copyright Notice (2:116), Special
  Instructions (2:40) and Original Transmission Reference (2:103), in UTF-8 and within
  each field's length.
- EXIF (JPEG, PNG, WebP): ``Copyright`` (the notice and the licence, for programs that
  read nothing else) and ``ImageUniqueID`` (the order id, the 128-bit hex form the field
  is made for).

The address written is the licence's terms (its page or its address elsewhere, as they
were at checkout), else the site's terms of sale. Never the order page: its address only
works with the order's key, and a key in a file that travels would let anyone who gets
the file download it again.

Text a buyer reads (the usage terms) is written in the language they bought in. The
metadata is written into a copy and the copy is returned: the caller's file is never
touched, so a failure here leaves the result as it was (``operations.delivery`` then
delivers it without).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext

from .licensing import order_licence
from .models import SmiSiteSettings

logger = logging.getLogger(__name__)

#: The blocks each delivered format can hold.
BLOCKS = {
    ".jpg": ("exif", "iptc", "xmp"),
    ".png": ("exif", "iptc", "xmp"),
    ".webp": ("exif", "xmp"),
}
# IPTC IIM field limits, in bytes (IIM 4.2).
IIM_COPYRIGHT_BYTES = 128
IIM_INSTRUCTIONS_BYTES = 256
IIM_REFERENCE_BYTES = 32
# ISO 2022 escape sequence for UTF-8: the IIM records are UTF-8 (1:90 CodedCharacterSet).
IIM_UTF8 = "\x1b%G"


class MetadataError(Exception):
    """The rights could not be written (the format, the library, the disk)."""


@dataclass(frozen=True)
class Rights:
    """What a delivered file says about itself, as plain values."""

    order_id: str
    #: Who owns the copyright: the site's ``copyright_holder``, else its name.
    holder: str
    #: "Commercial use, version 2"; "" for an order from before licences.
    licence: str = ""
    #: The terms' public address ("" when there is none).
    terms_url: str = ""
    #: One sentence naming the licence, its terms and the order, in the buyer's language.
    usage_terms: str = ""

    @property
    def notice(self) -> str:
        return f"© {self.holder}" if self.holder else ""

    @property
    def order_hex(self) -> str:
        """The order id as 32 hex digits: EXIF's ImageUniqueID and IIM's 32-byte field."""
        return self.order_id.replace("-", "")

    @property
    def exif_copyright(self) -> str:
        return ". ".join(part for part in (self.notice, self.usage_terms) if part)


def copyright_holder(job) -> str:
    """The site's copyright holder, else its name, else the project's site name."""
    if job.site_id:
        holder = SmiSiteSettings.for_site(job.site).get_copyright_holder()
        if holder:
            return holder
    return getattr(settings, "WAGTAIL_SITE_NAME", "") or ""


def terms_url(job) -> str:
    """Where the licence bought can be read: its own terms as kept on the order, else the
    site's terms of sale ("" when neither exists). Never the order page (see above)."""
    if job.licence_terms_url:
        return job.licence_terms_url
    if job.site_id:
        return SmiSiteSettings.for_site(job.site).terms_url or ""
    return ""


def rights_for(job) -> Rights:
    """The rights of one order's file, from its licence snapshot and its site."""
    licence = order_licence(job)
    url = terms_url(job) if licence else ""
    with translation.override(job.locale or settings.LANGUAGE_CODE):
        display = licence.display if licence else ""
        if not licence:
            usage = gettext("Order %(order)s.") % {"order": job.pk}
        elif url:
            usage = gettext("Licence: %(licence)s, terms at %(url)s. Order %(order)s.") % {
                "licence": display,
                "url": url,
                "order": job.pk,
            }
        else:
            usage = gettext("Licence: %(licence)s. Order %(order)s.") % {
                "licence": display,
                "order": job.pk,
            }
    return Rights(
        order_id=str(job.pk),
        holder=copyright_holder(job),
        licence=str(display),
        terms_url=url,
        usage_terms=str(usage),
    )


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, never inside a character."""
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")


def xmp_values(rights: Rights) -> dict:
    values = {
        "Xmp.xmpRights.Marked": "True",
        "Xmp.photoshop.TransmissionReference": rights.order_id,
        "Xmp.xmpRights.UsageTerms": {'lang="x-default"': rights.usage_terms},
    }
    if rights.notice:
        values["Xmp.dc.rights"] = {'lang="x-default"': rights.notice}
    if rights.terms_url:
        values["Xmp.xmpRights.WebStatement"] = rights.terms_url
    return values


def iptc_values(rights: Rights) -> dict:
    values = {
        "Iptc.Envelope.CharacterSet": IIM_UTF8,
        "Iptc.Application2.TransmissionReference": rights.order_hex[:IIM_REFERENCE_BYTES],
        "Iptc.Application2.SpecialInstructions": clip(rights.usage_terms, IIM_INSTRUCTIONS_BYTES),
    }
    if rights.notice:
        values["Iptc.Application2.Copyright"] = clip(rights.notice, IIM_COPYRIGHT_BYTES)
    return values


def exif_values(rights: Rights) -> dict:
    values = {"Exif.Photo.ImageUniqueID": rights.order_hex}
    if rights.exif_copyright:
        values["Exif.Image.Copyright"] = rights.exif_copyright
    return values


WRITERS = {
    "exif": ("modify_exif", exif_values),
    "iptc": ("modify_iptc", iptc_values),
    "xmp": ("modify_xmp", xmp_values),
}


def stamped_copy(path: Path, rights: Rights) -> Path:
    """A copy of the result at ``path`` with ``rights`` written into its metadata, beside
    it; the caller owns the copy. Raises ``MetadataError`` (and leaves no copy behind)
    when they cannot be written; ``path`` itself is never changed."""
    blocks = BLOCKS.get(path.suffix.lower())
    if blocks is None:
        raise MetadataError(f"no metadata is written into {path.suffix or 'this'} files")
    try:
        # pyexiv2 loads libexiv2, a C++ library, when imported: imported here so that a
        # platform where it cannot load still sells and delivers, without the metadata.
        import pyexiv2
    except ImportError as exc:  # pragma: no cover - the wheel is a dependency
        raise MetadataError(f"pyexiv2 is not available: {exc}") from exc

    copy = path.with_name(f"{path.stem}-rights{path.suffix}")
    try:
        shutil.copyfile(path, copy)
        with pyexiv2.Image(str(copy)) as image:
            for block in blocks:
                method, values = WRITERS[block]
                # Each call rewrites the file once: three blocks, three passes.
                getattr(image, method)(values(rights))
    except Exception as exc:
        copy.unlink(missing_ok=True)
        if isinstance(exc, MetadataError):
            raise
        raise MetadataError(f"{exc.__class__.__name__}: {exc}") from exc
    return copy
