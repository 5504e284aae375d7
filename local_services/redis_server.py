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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from local_services.ports import free_port
from local_services.processes import answers_within, first_start, stop_process


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
            server = first_start(lambda: cls._launch(program, root), lambda s: s._wait_ready(timeout),
                                 lambda s: s.stop())
            if server is None:
                raise RuntimeError(f"redis-server did not start:\n{(root / 'redis.log').read_text()[-4000:]}")
            try:
                yield server
            finally:
                server.stop()

    @classmethod
    def _launch(cls, program: str, root: Path) -> RedisServer:
        port = free_port()
        with (root / "redis.log").open("a") as log:
            process = subprocess.Popen(
                [program, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
                 "--dir", str(root), "--protected-mode", "yes"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        return cls(root, port, process)

    def _wait_ready(self, timeout: float) -> bool:
        return answers_within(self.process, self._pings, timeout)

    def _pings(self) -> bool:
        try:
            with self.client() as client:
                return bool(client.ping())
        except redis.ConnectionError:
            return False

    def stop(self, grace: float = 5.0) -> None:
        stop_process(self.process, grace)
