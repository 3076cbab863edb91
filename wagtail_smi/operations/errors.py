"""Why an operation did not happen, in words fit for the person who asked.

Operations never build HTTP answers: an edge maps each class to its status (a JSON error,
an admin message, a command's exit code). ``message`` is translated and safe to show.
"""

from __future__ import annotations


class OperationError(Exception):
    """An operation refused or failed; ``code`` is stable, ``message`` is for people."""

    code = "operation_failed"

    def __init__(self, message: str, *, code: str | None = None, field: str = "") -> None:
        super().__init__(message)
        self.message = str(message)
        if code:
            self.code = code
        self.field = field


class NotFound(OperationError):
    """There is no such order, or it is not for the asker to see."""

    code = "not_found"


class InvalidInput(OperationError):
    """The request itself is wrong (``field`` names the culprit)."""

    code = "invalid"


class NotAllowed(OperationError):
    """The order's state does not allow this now."""

    code = "not_allowed"


class ServiceUnavailable(OperationError):
    """A service the operation needs (payment provider, upscaler) did not answer."""

    code = "service_unavailable"


class RetryLater(OperationError):
    """Reported too early (an event about an order not ready for it): send it again later."""

    code = "retry_later"
