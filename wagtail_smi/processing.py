"""The processing pipeline: paid → submitted → result fetched → delivered.

Placeholder until processing lands.
"""

from django.http import HttpResponse


def handle_upscaler_callback(request, job_id, secret):
    return HttpResponse(status=501)
