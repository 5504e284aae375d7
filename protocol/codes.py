"""Support codes as people read and type them.

A code is nine decimal digits. People read it aloud in three groups
(``123 456 789``) and type it back with spaces, dashes or nothing in between,
so parsing accepts all three and formatting always shows the grouped form.

A technician may send the join link instead (``https://desk.example.com/join/#123456789``,
the broker's join page with the code in the fragment): pasted where a code is asked for,
it names the broker as well, which is all a downloaded host that was given no address needs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

CODE_DIGITS = 9
"""Number of digits in a support code (10^9 possible codes)."""

_SEPARATORS = re.compile(r"[\s\-]+")


class CodeFormatError(ValueError):
    """The text cannot be a support code; the message says why in plain words."""


def normalize_code(text: str) -> str:
    """Return the nine digits of ``text``, dropping spaces and dashes.

    Raises :class:`CodeFormatError` when anything else is present or the number
    of digits is wrong.
    """
    if not isinstance(text, str):
        raise CodeFormatError("a support code must be text")
    if len(text) > 64:
        raise CodeFormatError("a support code has 9 digits; the text given is far too long")
    digits = _SEPARATORS.sub("", text)
    if not digits:
        raise CodeFormatError("no support code given: type the 9 digits your technician read to you")
    if not digits.isascii() or not digits.isdigit():
        raise CodeFormatError(
            "a support code has only digits (spaces and dashes between groups are fine)"
        )
    if len(digits) != CODE_DIGITS:
        raise CodeFormatError(
            f"a support code has {CODE_DIGITS} digits, this one has {len(digits)}"
        )
    return digits


def format_code(code: str) -> str:
    """Show a normalised code in three groups of three: ``123 456 789``."""
    digits = normalize_code(code)
    return " ".join(digits[i : i + 3] for i in range(0, CODE_DIGITS, 3))


MAX_JOIN_LINK_CHARS = 2048
"""The longest join link taken (a broker address and a code are far shorter)."""

JOIN_PAGE = "/join"
"""Where a broker serves its join page (``/join/``), under the broker's address."""


@dataclass(frozen=True)
class JoinTarget:
    """What the user gave where a code is asked for: the code's digits, and the broker's
    address when they gave the join link (None for a code alone)."""

    code: str
    broker: str | None = None


def parse_join_target(text: str) -> JoinTarget:
    """A support code as typed, or a join link: ``https://desk.example.com/join/#123456789``
    gives the code and the broker ``https://desk.example.com`` (a broker under a path, such as
    ``https://example.com/desk/join/#…``, keeps the path). The broker's address is only parsed
    here; whether it may be used (https, or http to this machine) is the caller's check
    (:func:`protocol.transport.checked_broker_url`).

    Raises :class:`CodeFormatError` saying what is wrong with a code or a link.
    """
    if not isinstance(text, str):
        raise CodeFormatError("a support code must be text")
    stripped = text.strip()
    if "://" not in stripped:
        return JoinTarget(normalize_code(stripped))
    if len(stripped) > MAX_JOIN_LINK_CHARS:
        raise CodeFormatError("this link is far too long to be a Deskhand join link")
    not_a_join_link = "this is not a Deskhand join link: paste the link your technician sent (…/join/#123456789)"
    try:
        parts = urlsplit(stripped)
        host = parts.hostname
    except ValueError:
        raise CodeFormatError(not_a_join_link) from None
    path = parts.path.rstrip("/")
    if parts.scheme not in ("http", "https") or not host or not path.endswith(JOIN_PAGE) or parts.query:
        raise CodeFormatError(not_a_join_link)
    if parts.username is not None or parts.password is not None:
        raise CodeFormatError("a join link never holds a user name or password: paste the link your technician sent")
    if not parts.fragment:
        raise CodeFormatError("this join link has no code after its '#': paste the whole link, or type the 9 digits")
    code = normalize_code(unquote(parts.fragment))
    return JoinTarget(code, f"{parts.scheme}://{parts.netloc}{path[: -len(JOIN_PAGE)]}")
