"""A private Xvfb server on a free display number.

Usage (the session-scoped ``xvfb`` fixture in ``tests/conftest.py`` wraps this)::

    with XvfbServer.start(1920, 1080) as xvfb:
        xvfb.display                       # e.g. ":5"
        subprocess.run([...], env={**os.environ, **xvfb.env})   # env == {"DISPLAY": ":5"}

``Xvfb -displayfd`` picks the display itself and writes its number to a pipe,
so parallel runs never fight over ``:99``. ``-noreset`` keeps the server alive
when the last client disconnects (reconnections fail at random otherwise);
``-nolisten tcp`` keeps it off the network. Xvfb's own messages go to a
temporary file, never to a pipe nobody reads (keyboard-map warnings pile up
over a long run and a full pipe would freeze the server).
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

from tests.support.processes import end_process

PACKAGE = "xvfb"
"""The Debian/Ubuntu package that provides the ``Xvfb`` binary."""


class XvfbMissing(RuntimeError):
    """Xvfb is not installed; the message names the package."""


class XvfbStartError(RuntimeError):
    """Xvfb is installed but did not come up; the message holds what it said."""


@dataclass
class XvfbServer:
    """A running Xvfb; ``env`` holds the ``DISPLAY`` to give to clients."""

    display: str
    process: subprocess.Popen[bytes]

    @property
    def env(self) -> dict[str, str]:
        """``{"DISPLAY": display}``, to merge into a child process's environment."""
        return {"DISPLAY": self.display}

    @classmethod
    @contextmanager
    def start(cls, width: int = 1920, height: int = 1080, timeout: float = 15.0) -> Iterator[XvfbServer]:
        """Run Xvfb with one ``width`` x ``height`` x 24 screen for the ``with`` block.

        Raises :class:`XvfbMissing` when the binary is absent and
        :class:`XvfbStartError` when it does not report a display in ``timeout`` seconds.
        """
        binary = shutil.which("Xvfb")
        if binary is None:
            raise XvfbMissing(f"Xvfb is not installed: apt-get install {PACKAGE} (./scripts/test does it)")
        with tempfile.TemporaryFile() as log:
            read_fd, write_fd = os.pipe()
            try:
                process = subprocess.Popen(
                    [binary, "-displayfd", str(write_fd), "-screen", "0", f"{width}x{height}x24",
                     "-noreset", "-nolisten", "tcp"],
                    pass_fds=(write_fd,), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                )
            finally:
                os.close(write_fd)
            try:
                number = _read_display_number(read_fd, process, log, timeout)
                yield cls(display=f":{number}", process=process)
            finally:
                os.close(read_fd)
                end_process(process)


def _read_display_number(fd: int, process: subprocess.Popen[bytes], log: IO[bytes], timeout: float) -> int:
    """The display number Xvfb writes to ``fd`` (a line of digits)."""
    deadline = time.monotonic() + timeout
    data = b""
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise XvfbStartError(f"Xvfb reported no display within {timeout:g} s: {_tail(log)}")
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, 64)
        if not chunk:  # Xvfb closed the pipe: it has exited
            try:
                code = process.wait(5)
            except subprocess.TimeoutExpired:
                code = None
            raise XvfbStartError(f"Xvfb exited (code {code}) before reporting a display: {_tail(log)}")
        data += chunk
    return int(data.strip())


def _tail(log: IO[bytes], size: int = 2000) -> str:
    log.flush()
    log.seek(0)
    return log.read().decode(errors="replace")[-size:].strip() or "(no output)"
