"""Refusals: a rule's "no", said without knowing HTTP.

A rule (transfers, tickets, the directory, ...) that will not do what it was asked raises a
:class:`Refusal` of the kind that says why: the thing is not there (:class:`NotFound`), its
state forbids it (:class:`Conflict`), the caller may not (:class:`Forbidden`), the input is
wrong (:class:`Invalid`), ... Each carries a stable ``code`` for programs and a ``message``
for people that names the fix. ``broker/errors.py`` is the one place that turns a kind into
an HTTP status and the API's error body (:data:`broker.errors.REFUSAL_STATUS`); the admin
CLI prints the message. A rule never picks a status, and a route never translates a refusal.

Pure: no I/O, no framework.
"""

from __future__ import annotations


class Refusal(Exception):
    """A rule refused: ``code`` is stable for programs, ``message`` a sentence naming the fix.

    ``detail`` is optional structured data for the caller (as in ``protocol.api.ErrorBody``).
    Raise one of the kinds below, not this base.
    """

    def __init__(self, code: str, message: str, *, detail: object | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail


class Invalid(Refusal):
    """What was sent is wrong: a value, a name, a combination. Sending it again will not help."""


class Unreadable(Refusal):
    """What was sent does not hold up as a whole (a confirmation code that does not confirm)."""


class Unauthenticated(Refusal):
    """The caller did not show who they are, or what they showed is not valid."""


class Forbidden(Refusal):
    """The caller is known but may not do this."""


class NotFound(Refusal):
    """The thing does not exist, or the caller may not know that it does."""


class Conflict(Refusal):
    """The thing's present state does not allow this (already done, taken, exists, last one)."""


class Gone(Refusal):
    """The thing existed but has ended or expired: it will not come back."""


class TooLarge(Refusal):
    """Over a size limit or a quota."""


class Retryable(Refusal):
    """A refusal that may pass later; ``retry_after`` (seconds), when known, tells when."""

    def __init__(self, code: str, message: str, *, retry_after: int | None = None, detail: object | None = None) -> None:
        super().__init__(code, message, detail=detail)
        self.retry_after = retry_after


class RateLimited(Retryable):
    """Too many of these from this caller, or running at once: wait, then ask again."""


class Busy(Retryable):
    """The broker cannot take this now, whoever asks: try again later."""


class OutOfSpace(Refusal):
    """The broker has no room to store this."""


def not_found(what: str) -> NotFound:
    """The refusal for ``what`` (e.g. ``"ticket 7"``) missing or hidden from the caller: one wording for all."""
    return NotFound("not_found", f"{what} does not exist or is not visible to you")
