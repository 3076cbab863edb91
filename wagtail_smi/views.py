"""Server-rendered storefront pages. Placeholder until the storefront lands."""

from django.http import HttpResponse


def _not_implemented(request, *args, **kwargs):
    return HttpResponse("Not available yet.", status=501)


purchase_page = order_status = _not_implemented
