"""Command-line values shared by the three CLIs: numbers within bounds.

Lives in ``protocol`` because it is the one package all three programs share;
it is pure parsing, like the rest of the package.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

N = TypeVar("N", int, float)


def number_in_range(kind: type[N], low: N, high: N, what: str = "value") -> Callable[[str], N]:
    """An argparse ``type=`` that accepts a ``kind`` between ``low`` and ``high`` inclusive."""

    def parse(text: str) -> N:
        try:
            value = kind(text)
        except ValueError:
            noun = "whole number" if kind is int else "number"
            raise argparse.ArgumentTypeError(f"{text!r} is not a {noun}") from None
        if kind is float and value != value:  # NaN compares false with every bound
            raise argparse.ArgumentTypeError(f"{text!r} is not a number")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{what} must be between {low:g} and {high:g}, not {value:g}")
        return value

    parse.__name__ = what.replace(" ", "_")
    return parse
