"""A throwaway ``redis-server`` on 127.0.0.1 (Debian's ``redis-server`` package; ``scripts/test`` installs it).

Usage (``tests/conftest.py`` wraps it in the session-scoped ``redis_server`` fixture)::

    with RedisServer.start() as server:
        server.url           # "redis://127.0.0.1:PORT/0": give it to brokers as DESKHAND_REDIS_URL
        server.flush()       # forget every key (between tests)

Nothing is saved to disk (no RDB, no AOF): the server's data lives as long as the run.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from local_services.ports import free_port


class RedisMissing(RuntimeError):
    """``redis-server`` is not installed."""


class RedisServer:
    """One running ``redis-server``; create it with :meth:`start`."""

    def __init__(self, root: Path, port: int, process: subprocess.Popen[bytes]) -> None:
        self.root = root
        self.port = port
        self.process = process

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def flush(self) -> None:
        with self.client() as client:
            client.flushall()

    @classmethod
    @contextmanager
    def start(cls, timeout: float = 10.0) -> Iterator[RedisServer]:
        program = shutil.which("redis-server")
        if program is None:
            raise RedisMissing("redis-server is not installed: apt-get install redis-server (./scripts/test does it)")
        with tempfile.TemporaryDirectory(prefix="deskhand-redis-") as tmp:
            root = Path(tmp)
            for _attempt in range(3):  # another process may take the free port before the server binds it
                port = free_port()
                with (root / "redis.log").open("a") as log:
                    process = subprocess.Popen(
                        [program, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
                         "--dir", str(root), "--protected-mode", "yes"],
                        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    )
                server = cls(root, port, process)
                if server._wait_ready(timeout):
                    break
                server.stop()
            else:
                raise RuntimeError(f"redis-server did not start:\n{(root / 'redis.log').read_text()[-4000:]}")
            try:
                yield server
            finally:
                server.stop()

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with self.client() as client:
                    if client.ping():
                        return True
            except redis.ConnectionError:
                time.sleep(0.05)
        return False

    def stop(self, grace: float = 5.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
