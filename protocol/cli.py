"""What the three command-line programs share: bounded numbers and the log format.

Lives in ``protocol`` because it is the one package all three programs share.
"""

from __future__ import annotations

import argparse
import logging
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


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str | int) -> None:
    """Log to stderr in the one format all Deskhand programs use."""
    logging.basicConfig(level=level.upper() if isinstance(level, str) else level, format=LOG_FORMAT)
