"""The demo's routes plus a baseline: the cheapest possible Django JSON view."""

from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from demo_site.urls import urlpatterns as demo_urlpatterns


@csrf_exempt
def plain_json(request):
    return JsonResponse({"ok": True, "items": [1, 2, 3]})


urlpatterns = [path("bench/plain-json", plain_json), *demo_urlpatterns]
