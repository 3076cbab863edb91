"""The demo's routes plus the gating bench's baselines: the cheapest Django JSON view and a
bare ``FileResponse`` of the file the download row serves (``SMI_BENCH_FILE``)."""

import os

from django.http import FileResponse, Http404, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from demo_site.urls import urlpatterns as demo_urlpatterns


@csrf_exempt
def plain_json(request):
    return JsonResponse({"ok": True, "items": [1, 2, 3]})


def plain_file(request):
    name = os.environ.get("SMI_BENCH_FILE", "")
    if not name:
        raise Http404
    return FileResponse(open(name, "rb"), as_attachment=True, filename="bench.png")


urlpatterns = [
    path("bench/plain-json", plain_json),
    path("bench/plain-file", plain_file),
    *demo_urlpatterns,
]
