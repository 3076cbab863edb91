"""Keep download tokens, order keys and callback secrets out of Django's request logs.

Our URLs carry credentials by design (SPEC §4: ``/smi/download/<token>``, ``?key=``,
``/smi-webhook/upsampler/<job>/<secret>/``). Django logs the path of every 4xx/5xx answer
(``django.request``) and runserver logs each request line (``django.server``): this filter
masks the credential part of such lines before any handler sees them.
"""

from __future__ import annotations

import logging
import re

REDACTED = "[redacted]"
PATTERNS = [
    (re.compile(r"(/smi/download/)[^/?\s\"']+"), r"\1" + REDACTED),
    (re.compile(r"([?&]key=)[^&\s\"']+"), r"\1" + REDACTED),
    (re.compile(r"(/smi-webhook/upsampler/[^/\s]+/)[^/?\s\"']+"), r"\1" + REDACTED),
    (re.compile(r"(/smi/originals/)[^/?\s\"']+"), r"\1" + REDACTED),
]
LOGGERS = ("django.request", "django.server")


def redact(text: str) -> str:
    for pattern, replacement in PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


def install() -> None:
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecretsFilter) for f in logger.filters):
            logger.addFilter(RedactSecretsFilter())
