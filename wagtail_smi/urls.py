"""Public routes (SPEC §4). Mount with ``path("", include("wagtail_smi.urls"))``."""

from django.urls import path

from . import api, downloads, openapi, pages, webhooks

app_name = "wagtail_smi"

urlpatterns = [
    # JSON API used by the purchase modal and the order status page.
    path("smi/v1/calculate-all-prices", api.calculate_all_prices, name="calculate_all_prices"),
    path("smi/v1/create-checkout", api.create_checkout, name="create_checkout"),
    path("smi/v1/track-click", api.track_click, name="track_click"),
    path("smi/v1/job-status/<str:job_id>", api.job_status, name="job_status"),
    path("smi/v1/csrf", api.csrf_token, name="csrf_token"),
    # The OpenAPI 3.1 description of the routes above.
    path("smi/v1/openapi.json", openapi.openapi_document, name="openapi"),
    # Server-rendered pages.
    path("smi/buy/<int:image_id>/", pages.purchase_page, name="purchase_page"),
    path("smi/orders/<uuid:job_id>/", pages.order_status, name="order_status"),
    # "Email me a fresh link" once a download link has expired (POST).
    path("smi/download/<str:token>/fresh-link/", pages.fresh_link, name="fresh_link"),
    path("smi/orders/<uuid:job_id>/fresh-link/", pages.order_fresh_link, name="order_fresh_link"),
    # Files.
    path("smi/download/<str:token>", downloads.download, name="download"),
    path("smi/orders/<uuid:job_id>/download/", downloads.order_download, name="order_download"),
    path("smi/originals/<str:signed>/", downloads.original, name="original"),
    # Payment provider pages and webhooks.
    path("smi/dummy-checkout/<uuid:job_id>/", pages.dummy_checkout, name="dummy_checkout"),
    path("smi-webhook/stripe/", webhooks.stripe_webhook, name="stripe_webhook"),
    # Without the slash too: Stripe does not follow the redirect APPEND_SLASH would send.
    path("smi-webhook/stripe", webhooks.stripe_webhook),
    path(
        "smi-webhook/upsampler/<uuid:job_id>/<str:secret>/",
        webhooks.upsampler_webhook,
        name="upsampler_webhook",
    ),
]
