"""Starting and ending the child processes tests start (Xvfb, coturn, whatever runs in a namespace)."""

from __future__ import annotations

import select
import subprocess
from typing import Any


def end_process(process: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; reaped either way."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_ready(process: subprocess.Popen[str], what: str, timeout: float = 15.0) -> None:
    """Wait for the child's first line of output to be ``ready`` (text mode, stdout piped), else raise
    naming ``what``, what it said and how it ended."""
    assert process.stdout is not None
    readable, _, _ = select.select([process.stdout], [], [], timeout)
    line = process.stdout.readline() if readable else ""
    if line.strip() != "ready":
        raise RuntimeError(f"{what} did not start (said {line!r}, exit {process.poll()})")
