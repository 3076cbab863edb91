"""Rebuild what is for sale from every live page's published content."""

from django.core.management.base import BaseCommand

from wagtail_smi.catalog import rebuild_all_listings


class Command(BaseCommand):
    help = (
        "Walk every live page and rebuild the table of images for sale (after an upgrade, "
        "or for pages published before wagtail-smi was installed). Safe to run at any time."
    )

    def handle(self, *args, **options):
        count = rebuild_all_listings()
        self.stdout.write(self.style.SUCCESS(f"{count} image listings on live pages."))
