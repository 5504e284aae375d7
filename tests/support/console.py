"""Running the real ``deskhand-console`` program against a test broker."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

CONSOLE = [sys.executable, "-m", "tech_console.cli"]

ConsoleRunner = Callable[..., "subprocess.CompletedProcess[str]"]
"""``run(*args, stdin=None, **env)``: one ``deskhand-console`` run, its exit status and output."""


def console_runner(broker_url: str, credentials: Path) -> ConsoleRunner:
    """A runner with ``DESKHAND_BROKER`` set and a private credentials file; ``**env`` adds variables
    (``DESKHAND_TOKEN=...`` to act as someone without signing in)."""
    env = {**os.environ, "DESKHAND_BROKER": broker_url, "DESKHAND_CONSOLE_CREDENTIALS": str(credentials)}
    env.pop("DESKHAND_TOKEN", None)

    def run(*args: str, stdin: str | None = None, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CONSOLE, *args], input=stdin, capture_output=True, text=True, env={**env, **extra_env},
            timeout=60, check=False,
        )

    return run
