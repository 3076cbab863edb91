"""Create the demo content: an admin user, a home page and a gallery of sellable images.

Idempotent: running it again finds the same user, images and pages and leaves them be.
"""

from __future__ import annotations

import io
import math

from django.contrib.auth import get_user_model
from django.core.files.images import ImageFile
from django.core.management.base import BaseCommand
from django.db import transaction
from PIL import Image as PILImage
from PIL import ImageDraw
from wagtail.images import get_image_model
from wagtail.models import Page, Site

from demo_site.credentials import ADMIN_PASSWORD, ADMIN_USERNAME
from demo_site.home.models import GalleryPage, HomePage
from wagtail_smi.catalog import rebuild_all_listings
from wagtail_smi.conf import smi_settings
from wagtail_smi.models import ImageForSale

# (title, width, height, hue): made locally with Pillow, no downloads.
DEMO_IMAGES = [
    ("Aurora over the fjord", 1000, 1000, 200),
    ("Harbour at dusk", 2000, 1500, 20),
    ("Meadow in spring", 640, 480, 110),
    ("Desert dunes", 1200, 800, 40),
    ("City lights", 800, 1200, 270),
]
RICH_TEXT_IMAGE = ("Lighthouse (rich text)", 900, 600, 330)


def render_demo_image(width: int, height: int, hue: int) -> bytes:
    """A deterministic landscape-like picture: gradient sky, sun, and rolling hills."""
    img = PILImage.new("RGB", (width, height))
    draw = ImageDraw.Draw(img)

    def hsv(h, s, v):
        import colorsys

        r, g, b = colorsys.hsv_to_rgb((h % 360) / 360, s, v)
        return int(r * 255), int(g * 255), int(b * 255)

    for y in range(height):
        t = y / max(height - 1, 1)
        draw.line([(0, y), (width, y)], fill=hsv(hue + 40 * t, 0.35 + 0.4 * t, 0.95 - 0.45 * t))
    r = min(width, height) // 8
    cx, cy = int(width * 0.72), int(height * 0.3)
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=hsv(hue + 180, 0.25, 1.0))
    for layer in range(3):
        base = height * (0.62 + 0.12 * layer)
        amp = height * (0.06 - 0.015 * layer)
        points = [(0, height)]
        for x in range(0, width + 1, max(width // 60, 1)):
            points.append((x, base + amp * math.sin(x / width * math.pi * (2 + layer) + layer)))
        points.append((width, height))
        draw.polygon(points, fill=hsv(hue - 60 + 25 * layer, 0.5, 0.55 - 0.12 * layer))
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()


class Command(BaseCommand):
    help = "Create (or find) the demo admin user, pages and sellable images."

    @transaction.atomic
    def handle(self, *args, **options):
        self.ensure_admin()
        images = [self.ensure_image(*spec) for spec in DEMO_IMAGES]
        rich_image = self.ensure_image(*RICH_TEXT_IMAGE)
        ImageForSale.objects.get_or_create(image=rich_image)
        home = self.ensure_home(images[0])
        gallery = self.ensure_gallery(home, images, rich_image)
        # Listings are kept in step on publish; rebuilding also covers a database whose
        # pages were published before the listings existed.
        rebuild_all_listings()
        base = smi_settings.PUBLIC_BASE_URL.rstrip("/")
        self.stdout.write(self.style.SUCCESS("Demo content ready."))
        self.stdout.write(f"  Site:    {base}/  (gallery: {base}{gallery.url})")
        self.stdout.write(f"  Admin:   {base}/admin/")
        self.stdout.write(f"  Login:   {ADMIN_USERNAME} / {ADMIN_PASSWORD}")

    def ensure_admin(self):
        User = get_user_model()
        user, created = User.objects.get_or_create(
            username=ADMIN_USERNAME,
            defaults={"email": "admin@example.com", "is_staff": True, "is_superuser": True},
        )
        if created:
            user.set_password(ADMIN_PASSWORD)
            user.save()
        return user

    def ensure_image(self, title: str, width: int, height: int, hue: int):
        Image = get_image_model()
        existing = Image.objects.filter(title=title).first()
        if existing:
            return existing
        data = render_demo_image(width, height, hue)
        filename = title.lower().split(" (")[0].replace(" ", "-") + ".jpg"
        image = Image(title=title)
        image.file = ImageFile(io.BytesIO(data), name=filename)
        image.save()
        return image

    def ensure_home(self, hero) -> HomePage:
        home = HomePage.objects.first()
        root = Page.get_first_root_node()
        if home is None:
            home = HomePage(
                title="Sell My Images demo",
                slug="smi-home",
                intro="<p>Every image on these pages can be bought as an upscaled, "
                "high-resolution copy. Click <b>Buy high-res</b> under an image.</p>",
                body=[
                    {
                        "type": "sellable_image",
                        "value": {
                            "image": hero.pk,
                            "caption": hero.title,
                            "resolutions": [],
                            "for_sale": True,
                        },
                    }
                ],
            )
            root.add_child(instance=home)
            home.save_revision().publish()
        site = Site.objects.filter(is_default_site=True).first()
        if site is None:
            Site.objects.create(
                hostname="localhost",
                port=80,
                root_page=home,
                is_default_site=True,
                site_name="wagtail-smi demo",
            )
        elif site.root_page_id != home.pk:
            old_root = site.root_page
            site.root_page = home
            site.site_name = "wagtail-smi demo"
            site.save()
            # Remove Wagtail's stock welcome page, which nothing links to any more.
            if old_root.specific_class is Page and not old_root.get_children().exists():
                old_root.delete()
        return home

    def ensure_gallery(self, home: HomePage, images, rich_image) -> GalleryPage:
        gallery = GalleryPage.objects.child_of(home).filter(slug="gallery").first()
        if gallery is not None:
            return gallery
        body = [
            {"type": "heading", "value": "Landscapes"},
            *[
                {
                    "type": "sellable_image",
                    "value": {
                        "image": image.pk,
                        "caption": f"{image.title} ({image.width}×{image.height})",
                        "resolutions": [],
                        "for_sale": True,
                    },
                }
                for image in images
            ],
            {
                "type": "paragraph",
                "value": (
                    "<p>This lighthouse sits in rich text; it is on sale site-wide from the "
                    "image library.</p>"
                    f'<embed embedtype="image" id="{rich_image.pk}" alt="Lighthouse" '
                    'format="fullwidth"/>'
                ),
            },
        ]
        gallery = GalleryPage(
            title="Gallery",
            slug="gallery",
            intro="<p>Five landscapes, each for sale at 4x and 8x.</p>",
            body=body,
        )
        home.add_child(instance=gallery)
        gallery.save_revision().publish()
        return gallery
