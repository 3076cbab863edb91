"""The dummy provider's local checkout page. Placeholder until payments land."""

from django.http import HttpResponse


def dummy_checkout(request, job_id):
    return HttpResponse("Not available yet.", status=501)
