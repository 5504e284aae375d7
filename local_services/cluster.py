"""Several brokers on this machine, as a deployment runs them: ``scripts/cluster [--port 8080] [--brokers 2]``.

Starts, each on 127.0.0.1: a throwaway PostgreSQL cluster (one database for every broker), Redis
(shared limits, the broker bus, rooms across brokers), an S3 server (SeaweedFS: recordings and
transfer chunks), the brokers on one data directory (they share its keys) and nginx in front of
them, the only address users and hosts need. Prints the console's address and the first admin's
login, then waits; Ctrl-C or SIGTERM stops everything and deletes its data. Brokers' output goes
to ``broker-N.log`` in the data directory's parent.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType

import httpx

from local_services.nginx import NginxProxy
from local_services.object_store import ObjectStore
from local_services.ports import free_port
from local_services.postgres import PostgresCluster
from local_services.processes import stop_process
from local_services.redis_server import RedisServer

PASSWORD_LINE = re.compile(r"^\s*password:\s+(\S+)$", re.MULTILINE)
"""The line of the first broker's banner with the first admin's password (``broker/cli.py``, first start only)."""


class Broker:
    """One ``deskhand-broker serve`` on 127.0.0.1 and a free port, its output in a log file."""

    def __init__(self, number: int, env: dict[str, str], data_dir: Path, log: Path) -> None:
        self.number = number
        self.port = free_port()
        self.log = log
        with log.open("w") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "broker.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                 "--data-dir", str(data_dir)],
                stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until ``/api/v1/health`` answers; raises ``RuntimeError`` with the log if the broker dies or stalls."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/api/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"broker {self.number} did not come up; {self.log}:\n{self.log.read_text()[-3000:]}")

    def first_password(self) -> str | None:
        """The first admin's password, if this broker created the account."""
        found = PASSWORD_LINE.search(self.log.read_text())
        return found.group(1) if found else None

    def stop(self, grace: float = 10.0) -> None:
        stop_process(self.process, grace)


@contextmanager
def brokers(count: int, env: dict[str, str], root: Path) -> Iterator[list[Broker]]:
    """``count`` brokers on one data directory in ``root``, started one after the other.

    One at a time: the first creates the schema, the keys and the first admin; the others find them.
    """
    started: list[Broker] = []
    try:
        for number in range(1, count + 1):
            broker = Broker(number, env, root / "data", root / f"broker-{number}.log")
            started.append(broker)
            broker.wait_ready()
        yield started
    finally:
        for broker in reversed(started):
            broker.stop()


def stop_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so every ``with`` block stops what it started."""
    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, interrupt)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8080, help="nginx's port, the cluster's address (default 8080)")
    parser.add_argument("--host", default="127.0.0.1", choices=("127.0.0.1", "0.0.0.0"),
                        help="where nginx listens (default 127.0.0.1; 0.0.0.0 for hosts on other machines)")
    parser.add_argument("--brokers", type=int, default=2, choices=range(1, 9), metavar="N", help="brokers (default 2)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    stop_on_sigterm()
    try:
        with ExitStack() as stack:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="deskhand-cluster-")))
            database = stack.enter_context(stack.enter_context(PostgresCluster.start()).database())
            redis = stack.enter_context(RedisServer.start())
            store = stack.enter_context(ObjectStore.start())
            inherited = {k: v for k, v in os.environ.items() if not k.startswith("DESKHAND_")}
            env = {**inherited, "PYTHONUNBUFFERED": "1", "DESKHAND_DATABASE_URL": database,
                   "DESKHAND_REDIS_URL": redis.url, **store.env(prefix=""), "DESKHAND_TRUSTED_PROXIES": "127.0.0.1"}
            running = stack.enter_context(brokers(args.brokers, env, root))
            proxy = stack.enter_context(
                NginxProxy.start([b.port for b in running], host=args.host, port=args.port, workers="auto"))
            print(f"Deskhand: {len(running)} brokers (127.0.0.1:{', '.join(str(b.port) for b in running)}; "
                  f"logs in {root}) on PostgreSQL, Redis and an S3 bucket ({store.url}), behind nginx "
                  f"({proxy.config_file}).")
            print(f"  console:  {proxy.base_url}/")
            print("  username: admin")
            print(f"  password: {running[0].first_password()}  (you will be asked to change it)")
            print("Ctrl-C stops everything and deletes its data.", flush=True)
            while all(b.process.poll() is None for b in running) and proxy.process.poll() is None:
                time.sleep(1)
            for broker in running:
                if broker.process.poll() is not None:  # its log goes with the data: show it now
                    print(f"broker {broker.number} exited:\n{broker.log.read_text()[-3000:]}", file=sys.stderr)
            if proxy.process.poll() is not None:
                print(f"nginx exited:\n{proxy.error_text()}", file=sys.stderr)
            print("scripts/cluster: stopping the rest", file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        print("\nscripts/cluster: stopped")
        return 0


if __name__ == "__main__":
    sys.exit(main())
