"""Public JSON endpoints (SPEC §4). Placeholder until the storefront lands."""

from django.http import JsonResponse


def _not_implemented(request, *args, **kwargs):
    return JsonResponse({"error": "not_implemented", "message": "Not available yet."}, status=501)


calculate_all_prices = create_checkout = track_click = job_status = csrf_token = _not_implemented
