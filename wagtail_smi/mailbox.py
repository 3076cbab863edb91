"""The demo mailbox (DEBUG only): the emails the demo wrote to disk. Placeholder."""

from django.http import Http404


def mailbox(request):
    raise Http404
