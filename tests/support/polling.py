"""Waiting for something another process does on its own time (a sweeper, an audit write)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(probe: Callable[[], T], what: str, timeout: float = 10.0, interval: float = 0.05) -> T:
    """Call ``probe`` until it returns something truthy and return that; fail after ``timeout`` s.

    ``what`` completes the failure message: "timed out after 10 s waiting for <what>".
    """
    deadline = time.monotonic() + timeout
    while not (result := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; last result: {result!r}")
        time.sleep(interval)
    return result


async def async_wait_until(probe: Callable[[], T], what: str, timeout: float = 10.0, interval: float = 0.05) -> T:
    """:func:`wait_until` for async tests: sleeps without blocking the event loop."""
    deadline = time.monotonic() + timeout
    while not (result := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; last result: {result!r}")
        await asyncio.sleep(interval)
    return result
