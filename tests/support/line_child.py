"""A helper program in a child process, driven one line at a time.

The child prints ``ready ...`` once, then answers every command line with
``ok <payload>`` or ``error <why>``. Used by the screen painter and the input
recorder, both Tk programs that must own their own X connection.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class LineChild:
    """Starts ``python -m <module>`` with ``env`` and talks to it line by line."""

    def __init__(self, module: str, env: Mapping[str, str], timeout: float = 20.0) -> None:
        self._name = module.rsplit(".", 1)[-1].replace("_", " ")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", module],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, **env}, cwd=REPO,
        )
        ready = self._line(timeout)
        if not ready.startswith("ready"):
            self.close()
            raise RuntimeError(f"{self._name} did not start: {ready!r}")
        self.ready_args = ready.split()[1:]

    def _line(self, timeout: float) -> str:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self._name} exited with {self._proc.wait(timeout)}")
        return line.rstrip("\n")

    def command(self, text: str) -> str:
        """Send one command; return the payload after ``ok ``."""
        assert self._proc.stdin is not None
        self._proc.stdin.write(text + "\n")
        self._proc.stdin.flush()
        answer = self._line(10)
        if not answer.startswith("ok"):
            raise RuntimeError(f"{self._name} refused {text!r}: {answer}")
        return answer[3:]

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                assert self._proc.stdin is not None
                self._proc.stdin.write("quit\n")
                self._proc.stdin.flush()
                self._proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()

    def __enter__(self) -> LineChild:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def serve_lines(ready: str, handlers: Mapping[str, Callable[[str], str]]) -> None:
    """The child's side: print ``ready ...``, then answer each stdin line until ``quit`` or EOF.

    ``handlers`` maps a command to a function of the rest of the line that returns
    the payload for ``ok``; a ValueError it raises (a bad argument) becomes
    ``error <why>``, as does an unknown command.
    """
    print(f"ready {ready}", flush=True)
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "quit":
            break
        try:
            handler = handlers.get(command)
            if handler is None:
                raise ValueError(f"unknown command {command!r}")
            answer = handler(argument)
        except ValueError as exc:
            print(f"error {exc}", flush=True)
            continue
        print(f"ok {answer}".rstrip(), flush=True)
