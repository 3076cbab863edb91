"""Every URL the package hands to someone else: customers (emails, answers), the payment
provider (success and cancel pages) and the upscaler (originals, callbacks).

Absolute URLs are built on ``WAGTAIL_SMI["PUBLIC_BASE_URL"]``, the address the outside
world reaches the site at; ``*_path`` functions give the site-relative form for pages.
"""

from __future__ import annotations

from django.urls import NoReverseMatch, reverse

from . import tokens
from .utils import absolute_url


def order_path(job) -> str:
    """The order status page, unlocked by the order's key (Stripe's success URL)."""
    return reverse("wagtail_smi:order_status", args=[job.pk]) + "?key=" + job.access_key


def order_url(job) -> str:
    return absolute_url(order_path(job))


def checkout_cancelled_path(job) -> str:
    """Where the payment provider sends a buyer who cancels: the order page, which then
    says that nothing was charged."""
    return order_path(job) + "&checkout=cancelled"


def checkout_cancelled_url(job) -> str:
    return absolute_url(checkout_cancelled_path(job))


def fresh_link_path(job) -> str:
    """The order page's "email me a fresh link" form (unlocked by the order's key)."""
    return reverse("wagtail_smi:order_fresh_link", args=[job.pk]) + "?key=" + job.access_key


def token_fresh_link_path(token: str) -> str:
    """The same form on an expired emailed link's page (the token names the order)."""
    return reverse("wagtail_smi:fresh_link", args=[token])


def job_status_path(job) -> str:
    return reverse("wagtail_smi:job_status", args=[job.pk]) + "?key=" + job.access_key


def order_download_url(job) -> str:
    """The order page's Download button (the emailed token link is ``download_url``)."""
    return absolute_url(
        reverse("wagtail_smi:order_download", args=[job.pk]) + "?key=" + job.access_key
    )


def download_url(token: str) -> str:
    return absolute_url(reverse("wagtail_smi:download", args=[token]))


def original_url(job) -> str:
    """A signed, short-lived URL of the job's original, for an upscaler that cannot read
    the image storage."""
    return absolute_url(reverse("wagtail_smi:original", args=[tokens.sign_original(job.pk)]))


def callback_url(job) -> str:
    return absolute_url(
        reverse("wagtail_smi:upsampler_webhook", args=[str(job.pk), job.callback_secret])
    )


def dummy_checkout_url(job) -> str:
    return absolute_url(
        reverse("wagtail_smi:dummy_checkout", args=[job.pk]) + "?key=" + job.access_key
    )


# An image id no real URL contains: ``purchase_path`` reverses once with it, then fills in.
_SENTINEL_ID = 918273645


def purchase_path(image_id: int, page_id: int, request=None) -> str:
    """The no-JS purchase page of an image on a page. Given the ``request``, the URL is
    reversed once per request and filled in for each image (a page may have hundreds)."""
    parts = getattr(request, "_smi_purchase_parts", None)
    if parts is None:
        path = reverse("wagtail_smi:purchase_page", args=[_SENTINEL_ID])
        parts = path.split(str(_SENTINEL_ID), 1)
        if request is not None:
            request._smi_purchase_parts = parts
    return f"{parts[0]}{image_id}{parts[1]}?page={page_id}"


def page_url(page, site) -> str:
    return absolute_url(page.relative_url(site) or "/")


def admin_order_url(job) -> str:
    """The order in the admin, or the admin's home when the orders admin is not mounted."""
    for name, args in (("smi_orders:inspect", [job.pk]), ("wagtailadmin_home", [])):
        try:
            return absolute_url(reverse(name, args=args))
        except NoReverseMatch:
            continue
    return absolute_url("/admin/")
