"""File delivery endpoints. Placeholder until delivery lands."""

from django.http import HttpResponse


def _not_implemented(request, *args, **kwargs):
    return HttpResponse("Not available yet.", status=501)


download = order_download = original = _not_implemented
