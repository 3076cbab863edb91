"""Keep download tokens, order keys and callback secrets out of every log line.

Our URLs carry credentials by design (SPEC §4: ``/smi/download/<token>``, ``?key=``,
``/smi-webhook/upsampler/<job>/<secret>/``, signed ``/smi/originals/``). Many loggers
print paths or URLs: ``django.request`` (4xx/5xx), ``django.server`` (runserver's request
lines), ``django.security.csrf`` (the path, and the Referer on a failed Referer check),
``django.security.<ExceptionName>`` for every ``SuspiciousOperation``, and in-process
servers' access logs (``gunicorn.access``, ``uvicorn.access``).

The masking is a log record factory, not a logger filter: a filter added to a logger only
sees records created on that very logger, never those propagated from its children
(``django.security.csrf`` passes ``django.security`` by), and ``django.security``'s
children are named after exception classes, so no list of names is complete. A factory
sees every record as it is made, whatever the logger, handler or later logging config,
before any filter or handler reads its message. (Django's error emails also print the
request itself, outside the message: keep ``ADMINS`` to people trusted with orders.)
"""

from __future__ import annotations

import logging
import re

REDACTED = "[redacted]"
PATTERNS = [
    (re.compile(r"(/smi/download/)[^/?\s\"']+"), r"\1" + REDACTED),
    (re.compile(r"([?&]key=)[^&#\s\"']+"), r"\1" + REDACTED),
    (re.compile(r"(/smi-webhook/upsampler/[^/\s]+/)[^/?\s\"']+"), r"\1" + REDACTED),
    (re.compile(r"(/smi/originals/)[^/?\s\"']+"), r"\1" + REDACTED),
]
# Cheap test before the patterns: most log lines mention none of our URLs.
MARKERS = re.compile(r"/smi|key=")


def redact(text: str) -> str:
    for pattern, replacement in PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Replace the record's message by its masked text when it holds a credential."""
    try:
        message = record.getMessage()
    except Exception:  # a malformed call: leave it to the handler's own error reporting
        return record
    if MARKERS.search(message):
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
    return record


def install() -> None:
    """Wrap the current log record factory once (idempotent; keeps any other wrapper)."""
    current = logging.getLogRecordFactory()
    if getattr(current, "smi_redacting", False):
        return

    def factory(*args, **kwargs) -> logging.LogRecord:
        return redact_record(current(*args, **kwargs))

    factory.smi_redacting = True
    logging.setLogRecordFactory(factory)
