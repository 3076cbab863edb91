"""Helpers for the licence tests: a site's licence tiers as stored, and reading a delivered
file's rights back with Pillow (not the library that wrote them)."""

from __future__ import annotations

import io

from PIL import Image, IptcImagePlugin

from wagtail_smi.models import SmiSiteSettings

COMMERCIAL_TERMS = (
    "<p>Use in <b>advertising</b>, products and client work. No resale of the file itself.</p>"
)
COMMERCIAL_URL = "https://shop.example/licences/commercial/"


def licence_block(
    key: str,
    name: str,
    *,
    version: str = "1",
    summary: str = "",
    terms: str = "",
    terms_url: str = "",
    multiplier: str = "1",
    default: bool = False,
) -> dict:
    """One licence tier in the StreamField's stored form."""
    return {
        "type": "licence",
        "value": {
            "key": key,
            "name": name,
            "summary": summary,
            "version": version,
            "terms": terms,
            "terms_page": None,
            "terms_url": terms_url,
            "multiplier": multiplier,
            "add_on": None,
            "resolutions": "",
            "default": default,
        },
    }


def sell_with_licences(site, *, copyright_holder: str = "Lake Studio", **fields):
    """The site sells a default personal licence and a commercial one (version 2, with
    full terms and their address), under ``copyright_holder``."""
    site_settings = SmiSiteSettings.for_site(site)
    site_settings.copyright_holder = copyright_holder
    site_settings.licences = [
        licence_block("personal", "Personal use", default=True),
        licence_block(
            "commercial",
            "Commercial use",
            version="2",
            summary="Advertising, products and client work.",
            terms=COMMERCIAL_TERMS,
            terms_url=COMMERCIAL_URL,
            multiplier="3",
        ),
    ]
    for name, value in fields.items():
        setattr(site_settings, name, value)
    site_settings.save()
    return site_settings


def rewrite_commercial_licence(site) -> None:
    """The seller changes the commercial licence after an order: a new name, version,
    terms and address."""
    site_settings = SmiSiteSettings.for_site(site)
    site_settings.licences = [
        licence_block("personal", "Personal use", default=True),
        licence_block(
            "commercial",
            "Business licence",
            version="3",
            summary="Everything but resale.",
            terms="<p>Rewritten terms: unlimited print runs.</p>",
            terms_url="https://shop.example/licences/business/",
            multiplier="4",
        ),
    ]
    site_settings.save()


def read_rights(data: bytes) -> dict:
    """What Pillow finds in a delivered file: EXIF Copyright and ImageUniqueID, the XMP
    rights properties, and the IPTC IIM fields where Pillow reads them (JPEG)."""
    with Image.open(io.BytesIO(data)) as image:
        exif = image.getexif()
        # EXIF strings are bytes; exiv2 writes UTF-8, Pillow reads them as Latin-1.
        copyright_ = exif.get(0x8298, "").encode("latin-1").decode("utf-8")
        unique_id = exif.get_ifd(0x8769).get(0xA420, "")
        description = image.getxmp()["xmpmeta"]["RDF"]["Description"]
        iptc = IptcImagePlugin.getiptcinfo(image) if image.format == "JPEG" else None
        # PNG keeps IIM in a text chunk Pillow lists but does not decode.
        png_iptc = "Raw profile type iptc" in image.info
        found = {
            "format": image.format,
            "size": image.size,
            "exif_copyright": copyright_,
            "exif_unique_id": unique_id,
            "xmp_rights": lang_alt(description.get("rights")),
            "xmp_usage_terms": lang_alt(description.get("UsageTerms")),
            "xmp_web_statement": description.get("WebStatement", ""),
            "xmp_marked": description.get("Marked", ""),
            "xmp_job_id": description.get("TransmissionReference", ""),
            "png_iptc": png_iptc,
        }
    if iptc is not None:
        found["iptc"] = {key: value.decode("utf-8") for key, value in iptc.items()}
    return found


def lang_alt(value) -> str:
    """The x-default text of an XMP language alternative, as Pillow's getxmp() gives it."""
    if not value:
        return ""
    item = value["Alt"]["li"]
    if isinstance(item, list):
        item = next(i for i in item if i.get("lang") == "x-default")
    return item["text"]
