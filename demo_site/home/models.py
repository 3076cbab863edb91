"""Demo pages: a home page and gallery pages whose images are for sale."""

from wagtail import blocks
from wagtail.admin.panels import FieldPanel
from wagtail.fields import RichTextField, StreamField
from wagtail.images.blocks import ImageBlock
from wagtail.models import Page

from wagtail_smi.blocks import SellableImageBlock


class GalleryBody(blocks.StreamBlock):
    heading = blocks.CharBlock(form_classname="title", icon="title")
    paragraph = blocks.RichTextBlock(features=["bold", "italic", "link", "image"])
    image = ImageBlock()
    sellable_image = SellableImageBlock()


class HomePage(Page):
    intro = RichTextField(blank=True)
    body = StreamField(GalleryBody(), blank=True)

    content_panels = [*Page.content_panels, FieldPanel("intro"), FieldPanel("body")]


class GalleryPage(Page):
    intro = RichTextField(blank=True)
    body = StreamField(GalleryBody(), blank=True)

    content_panels = [*Page.content_panels, FieldPanel("intro"), FieldPanel("body")]
    parent_page_types = ["home.HomePage"]
