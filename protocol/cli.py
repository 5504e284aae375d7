"""What the three command-line programs share: bounded numbers, the log format, transport options.

Lives in ``protocol`` because it is the one package all three programs share.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

from protocol.terminal_text import multi_line, one_line

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
            shown = (lambda n: f"{n:g}") if kind is float else str  # whole numbers in full, not 4.6e+18
            raise argparse.ArgumentTypeError(f"{what} must be between {shown(low)} and {shown(high)}, not {shown(value)}")
        return value

    parse.__name__ = what.replace(" ", "_")
    return parse


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class PrintableLogFormatter(logging.Formatter):
    """:data:`LOG_FORMAT` with each record's message on one printable line (:func:`protocol.terminal_text.one_line`).

    Log messages carry what peers sent (names, reasons, file names): a newline in one
    must not start a forged record, an escape sequence must not reach the terminal.
    Tracebacks keep their lines (:func:`~protocol.terminal_text.multi_line`).
    """

    def __init__(self) -> None:
        super().__init__(LOG_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        return one_line(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        return multi_line(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 - logging's name
        return multi_line(super().formatStack(stack_info))


def configure_logging(level: str | int) -> None:
    """Log to stderr in the one format all Deskhand programs use, each message one printable line."""
    handler = logging.StreamHandler()
    handler.setFormatter(PrintableLogFormatter())
    logging.basicConfig(level=level.upper() if isinstance(level, str) else level, handlers=[handler])


WAITS_SIGNAL = signal.SIGUSR1
"""The signal on which a running program writes what it is waiting for (:func:`report_waits_on_signal`)."""


def report_waits_on_signal(loop: asyncio.AbstractEventLoop) -> None:
    """On :data:`WAITS_SIGNAL`, write to stderr where each of ``loop``'s tasks and each thread is
    waiting: what to look at when a program does not end (``kill -USR1 <pid>``)."""

    def report() -> None:
        sys.stderr.write(format_waits(loop))
        sys.stderr.flush()

    loop.add_signal_handler(WAITS_SIGNAL, report)


def format_waits(loop: asyncio.AbstractEventLoop) -> str:
    """Every task of ``loop`` with the chain of awaits it is suspended in, then every thread's stack."""
    lines = ["--- asyncio tasks, each where it waits ---"]
    for task in sorted(asyncio.all_tasks(loop), key=lambda t: t.get_name()):
        lines.append(f"task {task.get_name()} {task.get_coro()!r}")
        lines.extend(f"    {step}" for step in _awaits(task.get_coro()))
    lines.append("--- threads ---")
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        lines.append(f"thread {names.get(ident, ident)}")
        lines.extend(f"    {line.rstrip()}" for line in traceback.format_stack(frame))
    return "\n".join(lines) + "\n"


def _awaits(awaitable: Any) -> list[str]:
    """Where a suspended coroutine waits, outermost first: down its chain of awaits to what it waits on."""
    steps: list[str] = []
    while awaitable is not None and len(steps) < 100:
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
        if frame is None:
            steps.append(f"waiting on {awaitable!r}"[:300])
            break
        steps.append(f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom", None)
    return steps
