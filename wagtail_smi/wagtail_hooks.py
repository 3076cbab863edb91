"""The admin and storefront integration with Wagtail, a table of contents.

- ``admin.hooks``: orders (a read-only snippet), reports, the dashboard, the settings
  preview, icons and admin assets;
- ``admin.images``: the image library's "Put on sale" / "Take off sale" bulk actions, its
  "For sale" filter and the chooser's filter;
- ``admin.image_panel``: the "Sales" panel on an image's edit page (switch, the image's own
  prices, its figures) and the URL its form posts to;
- below: rich-text images on sale get the purchase button (``rich_text``).
"""

from wagtail import hooks

from . import rich_text
from .admin import hooks as admin_hooks  # noqa: F401  (registers its hooks)
from .admin import image_panel
from .admin import images as images_admin  # noqa: F401  (registers its hooks)
from .templatetags.smi_admin import PANEL_HOOK

hooks.register("before_serve_page", rich_text.remember_page)
hooks.register(PANEL_HOOK, image_panel.panel_html)
hooks.register("register_admin_urls", lambda: image_panel.urlpatterns)


@hooks.register("register_rich_text_features", order=10)
def sellable_rich_text_images(features):
    # After wagtail.images' own registration (order 0), so this handler wins.
    features.register_embed_type(rich_text.SellableImageEmbedHandler)
