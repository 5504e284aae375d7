"""A real broker in its own process, on 127.0.0.1 and a free port, with its own data directory.

    with BrokerProcess.start({"DESKHAND_ICE_LOOPBACK": "true"}) as broker:
        broker.base_url        # http://127.0.0.1:PORT
        broker.admin_password  # the first admin's password, parsed from its output
        broker.data_dir, broker.db_path
        token = broker.login()  # a technician token for 'admin'

Its output is drained by a thread (so the pipe never fills) and kept for the
failure message.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

_URL = re.compile(r"^\s*console:\s+(http://\S+?)/?$")
_PASSWORD = re.compile(r"^\s*password:\s+(\S+)$")


@dataclass
class BrokerProcess:
    process: subprocess.Popen[str]
    data_dir: Path
    base_url: str = ""
    admin_password: str = ""
    output: list[str] = field(default_factory=list)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "deskhand.sqlite3"

    @property
    def api(self) -> str:
        return self.base_url + "/api/v1"

    def login(self, username: str = "admin", password: str | None = None) -> str:
        """A bearer token for ``username`` (the first admin by default)."""
        response = httpx.post(
            self.api + "/auth/login",
            json={"username": username, "password": password or self.admin_password},
            timeout=15,
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def sql(self, statement: str, *params: object) -> list[tuple[object, ...]]:
        """Run SQL against the broker's real SQLite file (for checks and clock moves)."""
        with sqlite3.connect(self.db_path, timeout=30) as conn:
            rows = conn.execute(statement, params).fetchall()
            conn.commit()
        return rows

    @classmethod
    @contextmanager
    def start(
        cls, env: Mapping[str, str] | None = None, *, data_dir: Path | None = None, timeout: float = 30.0
    ) -> Iterator["BrokerProcess"]:
        with tempfile.TemporaryDirectory(prefix="deskhand-broker-") as tmp:
            directory = data_dir or Path(tmp) / "data"
            process = subprocess.Popen(
                [sys.executable, "-m", "broker.cli", "serve", "--host", "127.0.0.1", "--port", "0",
                 "--data-dir", str(directory)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                env={**os.environ, "DESKHAND_EXPIRY_SWEEP_SECONDS": "1", **(env or {})},
            )
            broker = cls(process=process, data_dir=directory)
            ready = threading.Event()
            threading.Thread(target=broker._drain, args=(ready,), daemon=True).start()
            try:
                broker._wait_ready(ready, timeout)
                yield broker
            finally:
                broker.stop()

    def _drain(self, ready: threading.Event) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line.rstrip("\n"))
            if (m := _URL.match(line)) is not None:
                self.base_url = m.group(1)
            elif (m := _PASSWORD.match(line)) is not None:
                self.admin_password = m.group(1)
            elif "Application startup complete" in line:
                ready.set()
        ready.set()

    def _wait_ready(self, ready: threading.Event, timeout: float) -> None:
        ready.wait(timeout)
        if self.process.poll() is not None or not self.base_url:
            raise RuntimeError("broker did not start:\n" + "\n".join(self.output[-40:]))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.api + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("broker never answered /health:\n" + "\n".join(self.output[-40:]))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
