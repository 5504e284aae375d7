"""Support codes as people read and type them.

A code is nine decimal digits. People read it aloud in three groups
(``123 456 789``) and type it back with spaces, dashes or nothing in between,
so parsing accepts all three and formatting always shows the grouped form.
"""

from __future__ import annotations

import re

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
