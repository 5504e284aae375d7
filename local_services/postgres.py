"""A throwaway PostgreSQL cluster, on 127.0.0.1 and a free port.

Usage (``tests/conftest.py`` wraps it in the session-scoped ``postgres`` fixture; ``bench`` and
``scripts/cluster`` start their own)::

    with PostgresCluster.start() as cluster:
        with cluster.database() as url:   # a fresh, empty database, dropped afterwards
            url                           # "postgresql://deskhand:...@127.0.0.1:PORT/deskhand_1"

The cluster lives in a temporary directory: ``initdb`` writes it, ``postgres``
serves it on 127.0.0.1 only (its unix socket stays in that directory), and on
exit the server is stopped (fast shutdown, then SIGKILL) and the directory
deleted. PostgreSQL refuses to run as root, and tests run as root in CI: then
the server binaries run as the ``postgres`` account the Debian package creates
(through ``runuser``), which owns the directory. Durability is off (``fsync``,
``synchronous_commit``, ``full_page_writes``): a test cluster never outlives
a crash, and it makes creating a database per broker cheap.

The server binaries are those of the newest ``/usr/lib/postgresql/<version>/bin``
(Debian's layout; ``apt-get install postgresql``, which ``scripts/test`` does),
or of ``pg_config --bindir``. :class:`PostgresMissing` says what to install.
"""

from __future__ import annotations

import itertools
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from local_services.ports import free_port
from local_services.processes import answers_within, first_start, stop_process

DEBIAN_BINARIES = Path("/usr/lib/postgresql")
SERVER_ACCOUNT = "postgres"
"""The account the server runs as when the tests run as root (created by Debian's postgresql package)."""
SUPERUSER = "deskhand"
"""The cluster's superuser, which the brokers connect as."""
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",  # several brokers at once, each with its own pool
    "shared_buffers": "64MB",
    "log_min_messages": "warning",
    "timezone": "UTC",
}


class PostgresMissing(RuntimeError):
    """No PostgreSQL server binaries, or no account to run them as; the message says what to install."""


def server_binaries() -> Path:
    """The directory holding ``initdb`` and ``postgres``; raises :class:`PostgresMissing`."""
    versions = sorted(
        (p for p in DEBIAN_BINARIES.glob("*/bin") if (p / "initdb").is_file() and p.parent.name.isdigit()),
        key=lambda p: int(p.parent.name),
    )
    if versions:
        return versions[-1]
    pg_config = shutil.which("pg_config")
    if pg_config:
        bindir = Path(subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True).stdout.strip())
        if (bindir / "initdb").is_file():
            return bindir
    raise PostgresMissing(
        f"PostgreSQL is not installed (no {DEBIAN_BINARIES}/<version>/bin/initdb): "
        "apt-get install postgresql (./scripts/test does it)"
    )


class PostgresCluster:
    """One running ``postgres``; create it with :meth:`start`."""

    def __init__(self, root: Path, bindir: Path, run_as: list[str]) -> None:
        self.root = root
        self.bindir = bindir
        self.port = 0
        self.password = secrets.token_urlsafe(16)
        self._run_as = run_as
        self._numbers = itertools.count(1)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        """The server's output (warnings and errors)."""
        return self.root / "server.log"

    def url(self, database: str = "postgres") -> str:
        """The URL of ``database`` as an operator would write it (``postgresql://``)."""
        return f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection:
        """An autocommit connection of the superuser to ``database``."""
        return psycopg.connect(self.url(database), autocommit=True, connect_timeout=10)

    @contextmanager
    def database(self) -> Iterator[str]:
        """A new empty database for the duration of the block; its URL. Dropped afterwards."""
        name = f"deskhand_{next(self._numbers)}"
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield self.url(name)
        finally:
            with self.connect() as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    # --- life cycle -------------------------------------------------------------

    @classmethod
    @contextmanager
    def start(cls, timeout: float = 60.0) -> Iterator[PostgresCluster]:
        """Initialise a cluster in a temporary directory and serve it for the duration of the block."""
        bindir = server_binaries()
        run_as: list[str] = []
        account: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam(SERVER_ACCOUNT)
            except KeyError:
                raise PostgresMissing(
                    f"running as root and there is no '{SERVER_ACCOUNT}' account to run PostgreSQL as "
                    "(apt-get install postgresql creates it)"
                ) from None
            run_as = ["runuser", "-u", SERVER_ACCOUNT, "--"]
        with tempfile.TemporaryDirectory(prefix="deskhand-pg-") as tmp:
            root = Path(tmp)
            if account is not None:
                os.chown(root, account.pw_uid, account.pw_gid)
            cluster = cls(root, bindir, run_as)
            cluster._initdb()
            try:
                cluster._serve(timeout)
                yield cluster
            finally:
                cluster.stop()

    def _initdb(self) -> None:
        password_file = self.root / "password"
        password_file.write_text(self.password + "\n")
        shutil.chown(password_file, *self._owner())
        password_file.chmod(0o600)
        done = subprocess.run(
            [*self._run_as, str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
             f"--pwfile={password_file}", "--auth-host=scram-sha-256", "--auth-local=trust",
             "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"],
            capture_output=True, text=True,
        )
        password_file.unlink()
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}):\n{done.stdout}{done.stderr}")

    def _owner(self) -> tuple[int, int]:
        stat = self.root.stat()
        return stat.st_uid, stat.st_gid

    def _serve(self, timeout: float) -> None:
        settings = {**SERVER_SETTINGS, "unix_socket_directories": str(self.root)}
        options = [arg for name, value in settings.items() for arg in ("-c", f"{name}={value}")]

        def launch() -> PostgresCluster:
            self.port = free_port()
            with self.log_file.open("a") as log:  # a file, not a pipe: nobody has to drain it
                self.process = subprocess.Popen(
                    [*self._run_as, str(self.bindir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port),
                     *options],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )
            return self

        if first_start(launch, lambda cluster: cluster._wait_ready(timeout), lambda cluster: cluster.stop()) is None:
            raise RuntimeError(f"PostgreSQL did not start on 127.0.0.1:{self.port}:\n{self.log_file.read_text()[-4000:]}")

    def _wait_ready(self, timeout: float) -> bool:
        assert self.process is not None

        def accepts() -> bool:
            try:
                with self.connect():
                    return True
            except psycopg.OperationalError:
                return False

        return answers_within(self.process, accepts, timeout)

    def stop(self, grace: float = 10.0) -> None:
        """Fast shutdown (SIGINT: connections cut, no waiting for clients), then SIGKILL; to the process
        group, since runuser forwards the signal to the server and the group covers its children too."""
        process, self.process = self.process, None
        if process is not None:
            stop_process(process, grace, first=signal.SIGINT, group=True)
