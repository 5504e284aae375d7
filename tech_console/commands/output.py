"""How the console prints: every line through ``one_line``, JSON escaped, status on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import TextIO

from rich.console import Console

from protocol.terminal_text import one_line

err = Console(stderr=True, highlight=False)
"""Spinners and progress bars: on stderr, so that standard output holds only the result."""

Lines = str | Iterable[str]
"""What a command prints: one line, or lines. Never a string with line breaks in it: see :func:`say`."""


def say(lines: Lines, file: TextIO | None = None) -> None:
    """Print ``lines`` (a string is one line), each through :func:`protocol.terminal_text.one_line`.

    Every line with data in it goes through here, so that what peers and users
    wrote (chat, names, file names, reasons, subjects) can neither start a line of its
    own (a forged report line) nor reach the terminal as a control sequence.
    """
    shown = [lines] if isinstance(lines, str) else lines
    print("\n".join(one_line(line) for line in shown), file=file or sys.stdout)


def print_json(data: object) -> None:
    """``data`` as JSON; every non-ASCII character escaped, so that it is safe on a terminal too."""
    print(json.dumps(data, indent=2))
