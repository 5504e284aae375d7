"""The broker's refusals as exceptions, the same way in every client.

The broker answers every refusal with one JSON shape (``protocol.api.ErrorBody``:
``error``, a code for programs, and ``message``, words for people) and, when it asks
the client to come back later, ``Retry-After``. :func:`refusal_from` turns such an
answer (or one that is not in that shape: a proxy's error page, say) into a
:class:`BrokerRefusal` of the client's own kind: joining, transfers, the console and
signalling each raise their subclass, so their callers catch what concerns them.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import ValidationError

from protocol.api import ErrorBody


class BrokerRefusal(Exception):
    """The broker refused a request, or answered in a way that cannot be used; ``message`` is for people."""

    def __init__(
        self, message: str, *, status: int | None = None, error: str | None = None, retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        """The HTTP status, when the broker answered at all."""
        self.error = error
        """The broker's error code (``rate_limited``, ``not_found``...), when its answer had one."""
        self.retry_after = retry_after
        """Seconds the broker asked to wait before asking again (``Retry-After``), when it said."""


R = TypeVar("R", bound=BrokerRefusal)


def refusal_from(kind: type[R], status: int, body: bytes | bytearray | str | None, retry_after: str | None = None) -> R:
    """The broker's answer ``status`` with ``body`` (and its ``Retry-After`` header) as a ``kind``."""
    try:
        answer = ErrorBody.model_validate_json(body or b"")
        message, error = answer.message, answer.error
    except ValidationError:
        message, error = f"the broker answered HTTP {status}", None
    wait = None
    if retry_after is not None:
        try:
            wait = max(float(retry_after), 0.0)
        except ValueError:
            wait = None
    return kind(message, status=status, error=error, retry_after=wait)
