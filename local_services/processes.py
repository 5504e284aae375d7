"""What every throwaway service here does alike: start on a free port (again when another process
took it first), wait until it answers, and stop."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

START_ATTEMPTS = 3
"""Starts tried: a free port picked here may be taken by another process before the service binds it."""


def first_start(launch: Callable[[], T], ready: Callable[[T], bool], stop: Callable[[T], None],
                attempts: int = START_ATTEMPTS) -> T | None:
    """``launch()`` until what it started is ``ready``, at most ``attempts`` times (each failed one
    stopped); what started, or None when none did."""
    for _attempt in range(attempts):
        service = launch()
        if ready(service):
            return service
        stop(service)
    return None


def answers_within(process: subprocess.Popen[Any], probe: Callable[[], bool], timeout: float,
                   interval: float = 0.05) -> bool:
    """Ask ``probe`` until it says yes; False when ``process`` exits first or ``timeout`` seconds pass.
    A probe that raises ``OSError`` (refused, reset) has not been answered yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            if probe():
                return True
        except OSError:
            pass
        time.sleep(interval)
    return False


def stop_process(process: subprocess.Popen[Any], grace: float, *, first: int = signal.SIGTERM,
                 group: bool = False) -> None:
    """Signal ``first`` (SIGTERM), then SIGKILL if it is still running after ``grace`` seconds; waits for it
    either way. ``group``: to its whole process group (started with ``start_new_session=True``), for a
    server whose children outlive it (nginx's workers, PostgreSQL's backends behind ``runuser``)."""
    if process.poll() is not None:
        return

    def send(signum: int) -> None:
        if group:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)

    send(first)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        process.wait()
