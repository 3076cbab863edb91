"""The demo mailbox: the emails the demo wrote to disk with Django's file backend.

Demo-only: mounted by ``demo_site.urls``, and answering only when DEBUG is on and the
``SMI_DEMO_MAILBOX_DIR`` setting names a folder; a 404 otherwise.
``?message=<file>:<n>`` shows one message (HTML in a sandboxed frame, plus the text part).
"""

from __future__ import annotations

import email
import email.policy
from email.utils import parsedate_to_datetime
from pathlib import Path

from django.conf import settings
from django.http import Http404
from django.shortcuts import render

SEPARATOR = b"-" * 79
MAX_FILES = 200


def _messages(folder: Path) -> list[dict]:
    files = sorted(folder.glob("*.log"), key=lambda p: p.stat().st_mtime, reverse=True)[:MAX_FILES]
    messages = []
    for path in files:
        raw = path.read_bytes()
        for index, chunk in enumerate(part for part in raw.split(SEPARATOR) if part.strip()):
            parsed = email.message_from_bytes(
                chunk.strip(b"\n") + b"\n", policy=email.policy.default
            )
            try:
                sent = parsedate_to_datetime(parsed["Date"]) if parsed["Date"] else None
            except (TypeError, ValueError):
                sent = None
            messages.append(
                {
                    "id": f"{path.name}:{index}",
                    "subject": str(parsed["Subject"] or ""),
                    "to": str(parsed["To"] or ""),
                    "from": str(parsed["From"] or ""),
                    "date": sent,
                    "message": parsed,
                }
            )
    messages.sort(key=lambda m: m["date"].timestamp() if m["date"] else 0, reverse=True)
    return messages


def _part(message, subtype: str) -> str:
    body = message.get_body(preferencelist=(subtype,))
    return body.get_content() if body is not None else ""


def mailbox(request):
    folder = getattr(settings, "SMI_DEMO_MAILBOX_DIR", None)
    if not settings.DEBUG or not folder or not Path(folder).is_dir():
        raise Http404
    messages = _messages(Path(folder))
    wanted = request.GET.get("message")
    selected = None
    if wanted:
        selected = next((m for m in messages if m["id"] == wanted), None)
        if selected is None:
            raise Http404
        selected = selected | {
            "html": _part(selected["message"], "html"),
            "text": _part(selected["message"], "plain"),
        }
    return render(
        request,
        "demo/mailbox.html",
        {"messages": messages, "selected": selected},
    )
