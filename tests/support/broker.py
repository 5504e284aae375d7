"""A real broker in its own process, on 127.0.0.1 and a free port, with its own data directory.

Usage (the pytest fixtures in ``tests/conftest.py`` wrap exactly this)::

    with BrokerProcess.start({"DESKHAND_ICE_LOOPBACK": "true"}) as broker:
        broker.base_url        # "http://127.0.0.1:PORT" (no trailing slash)
        broker.api             # base_url + "/api/v1"
        broker.ws_url(sid)     # "ws://127.0.0.1:PORT/api/v1/sessions/<sid>/signal"
        broker.http.get("/tickets", headers=...)   # an httpx.Client on broker.api
        broker.admin_password  # the first admin's password, parsed from the broker's output
                               # (counted as changed: see "The first admin" below)
        broker.data_dir        # its fresh data directory (deleted afterwards)
        broker.db_path         # data_dir / "deskhand.sqlite3"
        broker.database_url    # DESKHAND_DATABASE_URL if given, else the sqlite:/// URL of db_path
        token = broker.login() # a bearer token of "admin"
        broker.sql("SELECT kind FROM audit_events WHERE kind = ?", "auth.login")

On PostgreSQL: give ``DESKHAND_DATABASE_URL`` of an empty database (the ``broker_db``
fixture of ``tests/conftest.py`` does); :meth:`BrokerProcess.sql` then runs there, with
the same ``?`` statements (see :mod:`tests.support.database`).

With ``DESKHAND_TLS_CERT_FILE`` (and ``_KEY_FILE``) in the overrides the broker
serves HTTPS: ``base_url`` is then ``https://…``, and :attr:`BrokerProcess.http`
and the readiness check trust that certificate (a self-signed test certificate
is its own CA; see :mod:`tests.support.tls`).

The process is ``python -m broker.cli serve --host 127.0.0.1 --port 0 --data-dir ...``;
``start(env, host=PUBLIC_IP, wrap=net.wrap("relay"))`` runs it on another address and behind
an argv prefix (inside a network namespace: :mod:`tests.support.netns`; the test then
talks to it from a namespace that reaches that address, see :meth:`NetTopology.entered`).
It gets the test runner's environment minus every inherited ``DESKHAND_*``
variable (a developer's own ``DESKHAND_DATABASE_URL`` must never reach a test
broker), plus ``DESKHAND_EXPIRY_SWEEP_SECONDS=1``, plus the overrides given to
:meth:`BrokerProcess.start`. Its stdout and stderr are drained by a thread (so
a full pipe never blocks it) and kept in :attr:`BrokerProcess.output`; a
broker that does not come up raises :class:`BrokerStartError` with that output.
:meth:`BrokerProcess.stop` sends SIGTERM, then SIGKILL after a grace period;
:meth:`BrokerProcess.kill` sends SIGKILL at once (a broker dying without a goodbye).

The first admin: a broker refuses everything but changing the password to an account
whose password someone else set (``403 password_change_required``), the generated
first password included. So that tests can sign in with :attr:`BrokerProcess.admin_password`
and get on, a fresh broker's first admin is marked as having changed it, straight in
the database (as :func:`tests.support.accounts.make_user` writes accounts); tests of the
gate itself put the mark back with :func:`tests.support.accounts.require_password_change`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from broker.settings import Settings
from broker.storage.blobs import Blobs
from peer.signalling import websocket_url
from tests.support.database import holds_accounts, run_sql

URL_LINE = re.compile(r"^\s*console:\s+(https?://\S+?)/?$")
"""The line of ``deskhand-broker serve`` that names its address (see ``broker/cli.py``)."""

PASSWORD_LINE = re.compile(r"^\s*password:\s+(\S+)$")
"""The line that shows the first admin's password, printed on first start only."""

DEFAULT_ENV = {"DESKHAND_EXPIRY_SWEEP_SECONDS": "1"}
"""Settings every test broker gets unless overridden (a quick sweeper keeps expiry tests short)."""

DB_FILE = "deskhand.sqlite3"
FIRST_ADMIN_SETTLED = "UPDATE users SET must_change_password = FALSE WHERE username = 'admin'"
"""Counts the first admin's generated password as changed (see the module's docstring)."""


class BrokerStartError(RuntimeError):
    """The broker exited or did not answer in time; the message holds its output."""


class BrokerCalls:
    """What tests call on a broker, whichever way it runs: needs ``http``, ``admin_password`` and ``database_url``."""

    http: Any
    admin_password: str
    database_url: str

    def login(self, username: str = "admin", password: str | None = None) -> str:
        """A bearer token of ``username`` (the first admin by default); raises on refusal."""
        response = self.http.post(
            "/auth/login",
            json={"username": username, "password": self.admin_password if password is None else password},
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def audit_data(self, session_id: str, kind: str) -> list[dict[str, Any]]:
        """The ``data`` of the session's audit events of ``kind``, oldest first (parsed here: SQLite's and
        PostgreSQL's JSON functions differ)."""
        rows = self.sql("SELECT data FROM audit_events WHERE session_id = ? AND kind = ? ORDER BY id", session_id, kind)
        return [json.loads(str(data)) for (data,) in rows]

    def sql(self, statement: str, *params: object) -> list[tuple[object, ...]]:
        """Run one statement on the broker's real database and commit; returns the rows.

        For checks (what was stored) and for moving the clock (``expires_at`` into the past).
        SQLite's ``?`` placeholders, on PostgreSQL too: :func:`tests.support.database.run_sql`.
        """
        return run_sql(self.database_url, statement, *params)


class BrokerProcess(BrokerCalls):
    """One running ``deskhand-broker serve``; create it with :meth:`start`."""

    def __init__(
        self, env: Mapping[str, str] | None, data_dir: Path, host: str = "127.0.0.1", wrap: Sequence[str] = ()
    ) -> None:
        self.data_dir = data_dir
        self._host = host
        self._wrap = list(wrap)
        self.base_url = ""
        self.admin_password = ""
        self.output: list[str] = []
        """Every line the broker wrote so far (stdout and stderr together), across restarts."""
        self._env = env
        cert = (env or {}).get("DESKHAND_TLS_CERT_FILE")
        self.verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=cert) if cert else True
        """What httpx verifies this broker's certificate with: its own certificate when it serves HTTPS."""
        self.database_url = (env or {}).get("DESKHAND_DATABASE_URL") or f"sqlite:///{data_dir / DB_FILE}"
        """The broker's database: ``DESKHAND_DATABASE_URL`` when given, else its SQLite file."""
        self._fresh = not holds_accounts(self.database_url)
        self._http: httpx.Client | None = None
        self._changed = threading.Condition()
        self.process: subprocess.Popen[str]
        self._drainer: threading.Thread

    def blobs(self) -> Blobs:
        """Where this broker keeps recordings and transfer chunks (its data directory, or its bucket), to
        read what it stored."""
        store = {name.removeprefix("DESKHAND_").lower(): value for name, value in (self._env or {}).items()
                 if name.startswith("DESKHAND_OBJECT_STORE_")}
        return Settings(data_dir=self.data_dir, **store).open_blobs()

    def _launch(self, port: int) -> None:
        self.process = subprocess.Popen(
            [*self._wrap, sys.executable, "-m", "broker.cli", "serve",
             "--host", self._host, "--port", str(port), "--data-dir", str(self.data_dir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=broker_environment(self._env),
        )
        self._drainer = threading.Thread(target=self._drain, name="broker-output", daemon=True)
        self._drainer.start()

    # --- what tests use ---------------------------------------------------------

    @property
    def db_path(self) -> Path:
        """The broker's SQLite database file."""
        return self.data_dir / DB_FILE

    @property
    def api(self) -> str:
        """The base of the REST API, e.g. ``http://127.0.0.1:PORT/api/v1``."""
        return self.base_url + "/api/v1"

    @property
    def http(self) -> httpx.Client:
        """A keep-alive HTTP client whose paths are relative to :attr:`api`.

        ``broker.http.post("/tickets", json=..., headers=...)``. One client per broker:
        creating an httpx client costs ~40 ms (it loads the CA bundle), a request ~3 ms.
        TCP_NODELAY: without it, requests on a reused connection wait ~40 ms for a
        delayed ACK (Nagle's algorithm).
        """
        if self._http is None:
            transport = httpx.HTTPTransport(
                socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)], verify=self.verify
            )
            self._http = httpx.Client(base_url=self.api, timeout=15, transport=transport)
        return self._http

    def ws_url(self, session_id: str) -> str:
        """The signalling WebSocket URL of ``session_id``."""
        return websocket_url(self.base_url, f"/api/v1/sessions/{session_id}/signal")

    def output_text(self, last: int = 60) -> str:
        """The last ``last`` lines of output, for failure messages."""
        return "\n".join(self.output[-last:])

    # --- life cycle -------------------------------------------------------------

    @classmethod
    @contextmanager
    def start(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        data_dir: Path | None = None,
        port: int = 0,
        timeout: float = 30.0,
        host: str = "127.0.0.1",
        wrap: Sequence[str] = (),
    ) -> Iterator[BrokerProcess]:
        """Run a broker for the duration of the ``with`` block.

        ``env`` adds or overrides ``DESKHAND_*`` settings. ``data_dir`` reuses a
        directory (no admin password is printed when it already holds a
        database); by default a temporary one is created and removed. The block
        is entered once the broker answers ``/api/v1/health``, at most
        ``timeout`` seconds after launch. ``port`` 0 picks a free one; give the
        port of an earlier run to restart "the same" broker. ``host`` is the address it
        listens on; ``wrap`` an argv prefix it runs behind (``ip netns exec NAME``).
        """
        with tempfile.TemporaryDirectory(prefix="deskhand-broker-") as tmp:
            broker = cls(env, data_dir if data_dir is not None else Path(tmp) / "data", host, wrap)
            broker._launch(port)
            try:
                broker._wait_ready(timeout)
                if broker._fresh:
                    broker.sql(FIRST_ADMIN_SETTLED)
                yield broker
            finally:
                broker.stop()

    def restart(self, timeout: float = 30.0) -> None:
        """Start the broker again after :meth:`stop`: same port, same data, same admin password.

        Peers that were connected see the broker come back at the address they
        know, as after a real restart; :attr:`output` keeps the earlier lines.
        """
        port = int(self.base_url.rsplit(":", 1)[1])
        self.stop()
        self.base_url, self._fresh = "", False
        self._launch(port)
        self._wait_ready(timeout)

    def stop(self, grace: float = 10.0) -> int:
        """SIGTERM, then SIGKILL if it is still running after ``grace`` seconds; the exit code."""
        if self._http is not None:
            self._http.close()
            self._http = None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._drainer.join(5)
        return self.process.returncode

    def kill(self) -> int:
        """SIGKILL: the broker dies at once, closing no connection politely; the exit code.
        :meth:`restart` brings it back."""
        if self._http is not None:
            self._http.close()
            self._http = None
        self.process.kill()
        self.process.wait()
        self._drainer.join(5)
        return self.process.returncode

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.rstrip("\n")
            with self._changed:
                self.output.append(line)
                if not self.base_url and (m := URL_LINE.match(line)):
                    self.base_url = m.group(1)
                elif not self.admin_password and (m := PASSWORD_LINE.match(line)):
                    self.admin_password = m.group(1)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def _banner_read(self) -> bool:
        return bool(self.base_url) and (bool(self.admin_password) or not self._fresh)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        # The banner (address, then the password) is printed before the server starts.
        with self._changed:
            while not self._banner_read() and self.process.poll() is None and time.monotonic() < deadline:
                self._changed.wait(min(0.5, max(deadline - time.monotonic(), 0)))
        if not self._banner_read():
            wanted = "its 'console:' URL" + (" and admin password" if self._fresh else "")
            if self.process.poll() is not None:
                self._fail(f"exited before printing {wanted}")
            self._fail(f"did not print {wanted} within {timeout:g} s")
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._fail("exited before answering /api/v1/health")
            try:
                if httpx.get(self.api + "/health", timeout=2, verify=self.verify).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self._fail(f"did not answer /api/v1/health within {timeout:g} s")

    def _fail(self, what: str) -> None:
        code = self.stop(grace=2)
        raise BrokerStartError(f"the broker {what} (exit code {code}); its output:\n{self.output_text()}")


def audit_verify(data_dir: Path, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``deskhand-broker audit verify`` on the data directory (its keys) and the database and store that
    ``env`` (a broker's ``DESKHAND_*`` settings) name."""
    command = [sys.executable, "-m", "broker.cli", "audit", "verify", "--data-dir", str(data_dir)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120,
                          env=broker_environment({**(env or {}), "DESKHAND_AUDIT_CHECKPOINT_SECONDS": "1"}))


def broker_environment(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a test broker: ours without ``DESKHAND_*``, then defaults, then ``overrides``."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("DESKHAND_")}
    return {**inherited, "PYTHONUNBUFFERED": "1", **DEFAULT_ENV, **(overrides or {})}
