"""A private Xvfb server on a free display number.

``Xvfb -displayfd`` picks the display itself and writes its number to a pipe,
so parallel runs never fight over ``:99``. ``-noreset`` keeps the server alive
when the last client disconnects (reconnections fail at random otherwise).
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


class XvfbMissing(RuntimeError):
    """Xvfb is not installed; the message names the package."""


@dataclass
class XvfbServer:
    """A running Xvfb; ``env`` holds the ``DISPLAY`` to give to clients."""

    display: str
    process: subprocess.Popen[bytes]

    @property
    def env(self) -> dict[str, str]:
        return {"DISPLAY": self.display}

    @classmethod
    @contextmanager
    def start(cls, width: int = 1920, height: int = 1080, timeout: float = 15.0) -> Iterator["XvfbServer"]:
        binary = shutil.which("Xvfb")
        if binary is None:
            raise XvfbMissing("Xvfb is not installed: apt-get install xvfb (./scripts/test does it)")
        read_fd, write_fd = os.pipe()
        process = subprocess.Popen(
            [binary, "-displayfd", str(write_fd), "-screen", "0", f"{width}x{height}x24",
             "-noreset", "-nolisten", "tcp"],
            pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        os.close(write_fd)
        try:
            number = _read_display_number(read_fd, process, timeout)
            server = cls(display=f":{number}", process=process)
            yield server
        finally:
            os.close(read_fd)
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _read_display_number(fd: int, process: subprocess.Popen[bytes], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    data = b""
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or process.poll() is not None:
            err = process.stderr.read().decode(errors="replace") if process.poll() is not None and process.stderr else ""
            raise RuntimeError(f"Xvfb did not start within {timeout:g} s: {err[-500:]}")
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            chunk = os.read(fd, 64)
            if not chunk:
                continue
            data += chunk
    return int(data.strip())
