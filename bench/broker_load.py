"""One broker under load: idle signalling sockets held, pairings a second, writes a second.

Each measurement runs against a fresh broker (``deskhand-broker serve`` as
:class:`tests.support.broker.BrokerProcess` starts it, on 127.0.0.1 and a free port,
with its own data directory) and a load generator in a process of its own
(:mod:`bench.load_generator`: asyncio, httpx and websockets). CPU is ``utime + stime``
from ``/proc`` (:mod:`bench.cpu`) of the broker (with any worker processes it starts)
and of the generator, in % of one core; memory is the broker's resident set.

* **idle sockets**: N sessions a technician started and a host joined, each host's
  signalling WebSocket open and greeted, no technician; set up a few at a time. Then the
  broker's RSS growth per socket, its CPU over a quiet hold, and the latency of an
  authenticated ``GET /auth/me`` sent at a steady rate over a second hold.
* **pairings**: W workers, each pairing back to back for a fixed window: the technician
  starts a session, the host joins with the code, both open signalling, the host's consent
  reaches the technician, offer, answer and ICE candidates are relayed, the technician ends
  and the host is told (:data:`bench.load_generator.PAIRING_STEPS`). Pairings a second (only
  those that finished inside the window), per-step latencies, errors by kind.
* **writes**: W hosts, each in a session of its own, writing back to back for a fixed
  window: event batches (``POST .../events``) as a host's reporter sends them once a
  second, then recording segments (``PUT .../recording/{index}``, a real one-second VP8
  segment as the host records it).

With ``--brokers N`` (N >= 2) only pairings are measured, each worker count twice: against one
broker and against N brokers, both behind nginx (:mod:`local_services.nginx`, so the proxy's cost
is in both rows), on PostgreSQL and Redis; the N brokers share one data directory, one database and
one Redis, and nginx hands their requests and sockets round robin (a technician and a host of one
session often meet across two brokers, through Redis). CPU is then also that of nginx and PostgreSQL.

Every step has a timeout (``--request-timeout``) and every phase a deadline, so a broker
that stalls yields timeouts and error counts, never a hung benchmark. Figures only:
nothing here passes or fails.

Run: ``.venv/bin/python -m bench.broker_load [--quick] [--idle-sessions 1000,5000,10000]
[--workers 10,50,200] [--writers 8,32,64] [--database postgresql [--database-url URL]] [--brokers 2]
[--write-docs]`` (``--write-docs`` replaces only this benchmark's section of docs/benchmarks.md, or
with ``--brokers`` its several-brokers subsection). On PostgreSQL each
row gets a new database of a throwaway cluster (``local_services/postgres.py``), or, with
``--database-url``, every row uses that (empty) database.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from importlib.metadata import version
from importlib.util import find_spec
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bench.cpu import CpuSample, resident_bytes
from bench.load_generator import PAIRING_STEPS, TICKETS, GeneratorProcess, raise_fd_limit
from bench.report import ROOT, machine_conditions, percentile, publish
from bench.segment_check import segment as recorded_segment
from broker.settings import Settings
from local_services import nginx
from local_services.nginx import NginxProxy
from local_services.redis_server import RedisServer
from protocol.cli import number_in_range
from tests.support.broker import BrokerProcess, audit_verify

DOCS_SECTION = "broker_load"
CLUSTER_DOCS_SECTION = "broker_load_cluster"
"""The subsection of the ``--brokers`` rows."""
SETTLE_SECONDS = 2.0
"""Pause after opening idle sockets, before memory is read: greetings and audits finish
(shorter when the hold is: a smoke run measures nothing)."""
FD_HEADROOM = 1000
"""Open files the broker and the generator need besides the idle sockets (database, clients, logs)."""
WARM_UP_GETS = 20
"""Authenticated GETs before each measurement (first imports, caches, connections)."""
BENCH_SETTINGS = {
    "DESKHAND_EXPIRY_SWEEP_SECONDS": str(Settings.model_fields["expiry_sweep_seconds"].default),
    # One host writes far more than a live one would; its own limit is not what is measured.
    "DESKHAND_PEER_EVENTS_PER_SECOND": "100000",
    "DESKHAND_PEER_EVENT_BURST": "10000000",
}
"""Broker settings of the benchmark: the shipped defaults (tests/support/broker.py sweeps every
second; the benchmark puts the shipped sweep back) but the per-peer event rate, raised."""
CLUSTER_SETTINGS = {"DESKHAND_CODE_FAILURES_PER_SOURCE": "1000"}
"""Added with ``--brokers`` (Redis): there a join being checked counts as a failure of its address until it
succeeds (broker/throttling/shared_failures.py), and every worker's host joins from 127.0.0.1, so 50 at once
pass the per-source limit (10): they wait for each other's checks (429s, before the shared window learnt to
wait for attempts in flight). Raised, the figures measure pairing, not that queue; real hosts join from
addresses of their own."""
PHASES = ("idle", "pairings", "writes")
SEGMENT_PICTURES = ("still", "text", "noise")


@dataclass(frozen=True)
class Sizes:
    """How much each phase does."""

    idle: tuple[int, ...]
    workers: tuple[int, ...]
    writers: tuple[int, ...]
    hold_seconds: float
    pairing_seconds: float
    write_seconds: float


FULL = Sizes(idle=(1000, 5000, 10000), workers=(10, 50, 200), writers=(8, 32, 64),
             hold_seconds=10, pairing_seconds=20, write_seconds=10)
QUICK = Sizes(idle=(200,), workers=(10,), writers=(4,), hold_seconds=3, pairing_seconds=5, write_seconds=3)
"""``--quick``: every phase, small (a smoke run; well under two minutes on an idle machine)."""


@dataclass(frozen=True)
class Options:
    """Everything a run needs, checked."""

    sizes: Sizes
    phases: tuple[str, ...] = PHASES
    database: str = "sqlite"
    database_url: str | None = None
    brokers: int = 1
    """Above 1: pairings on one broker against this many, behind nginx, on PostgreSQL and Redis."""
    request_timeout: float = 10.0
    probe_rate: float = 20.0
    setup_concurrency: int = 8
    setup_seconds: float = 600.0
    events_per_batch: int = 4
    segment_picture: str = "text"
    settings: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


# --- measuring -------------------------------------------------------------------------------


DatabaseFactory = Callable[[], AbstractContextManager[str | None]]
"""Gives each broker its database: a URL for ``DESKHAND_DATABASE_URL``, or None for SQLite in its data directory."""


@dataclass(frozen=True)
class Services:
    """What the run's rigs share: where each gets its database, and (``--brokers``) one Redis."""

    database: DatabaseFactory
    database_pid: int | None = None
    """The throwaway PostgreSQL server's process (its CPU is measured in the ``--brokers`` rows)."""
    redis: RedisServer | None = None


@contextmanager
def shared_services(options: Options) -> Iterator[Services]:
    """Where the run's brokers keep their data, and the Redis of ``--brokers``.

    SQLite: a fresh file in each broker's data directory. PostgreSQL with ``--database-url``:
    that database for every broker. PostgreSQL without: a throwaway cluster
    (``local_services/postgres.py``) for the run, a new database for each rig.
    """
    with ExitStack() as stack:
        redis = stack.enter_context(RedisServer.start()) if options.brokers > 1 else None
        if options.database == "sqlite":
            yield Services(lambda: nullcontext(None), redis=redis)
        elif options.database_url is not None:
            url = options.database_url
            yield Services(lambda: nullcontext(url), redis=redis)
        else:
            from local_services.postgres import PostgresCluster  # checked by parse_options

            cluster = stack.enter_context(PostgresCluster.start())
            assert cluster.process is not None
            yield Services(cluster.database, cluster.process.pid, redis)


class Meter:
    """CPU of named groups of processes between its creation and :meth:`read`, in % of one core each group."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self._start = {name: [CpuSample.take(pid) for pid in pids] for name, pids in groups.items()}

    def read(self) -> dict[str, float]:
        """``{group: % of one core}`` (a group of two processes can exceed 100 %)."""
        return {name: sum(CpuSample.take(start.pid).percent_since(start) for start in starts)
                for name, starts in self._start.items()}


@dataclass(frozen=True)
class Rig:
    """The brokers of one measurement, nginx in front of them if any, and the load generator."""

    brokers: list[BrokerProcess]
    proxy: NginxProxy | None
    generator: GeneratorProcess
    database_pid: int | None
    env: dict[str, str]
    """The brokers' settings (their database, Redis, store)."""

    @property
    def broker(self) -> BrokerProcess:
        """The first (or only) broker."""
        return self.brokers[0]

    def verify_trail(self) -> str:
        """Stop the brokers and run ``deskhand-broker audit verify`` on what they wrote: "passed", or its last line."""
        for broker in self.brokers:
            broker.stop()
        checked = audit_verify(self.broker.data_dir, self.env)
        said = (checked.stdout + checked.stderr).strip().splitlines()
        return "passed" if checked.returncode == 0 else f"FAILED: {said[-1] if said else checked.returncode}"

    def meter(self) -> Meter:
        """CPU from now of the brokers (``broker_cpu``, together), the generator, nginx and PostgreSQL."""
        groups = {"broker_cpu": [b.process.pid for b in self.brokers], "generator_cpu": [self.generator.pid]}
        if self.proxy is not None:
            groups["nginx_cpu"] = [self.proxy.process.pid]  # the master: its workers are counted with it
            if self.database_pid is not None:
                groups["postgres_cpu"] = [self.database_pid]
        return Meter(groups)


class Rigs:
    """Fresh brokers, each rig with a load generator: one for each measurement."""

    def __init__(self, options: Options, services: Services) -> None:
        self.options = options
        self._services = services
        self._admin_password: str | None = None

    @contextmanager
    def fresh(self, brokers: int = 1) -> Iterator[Rig]:
        """``brokers`` new brokers and a load generator against them (through nginx with ``--brokers``), warmed up.

        Several brokers share one database, one data directory (its keys) and Redis, as
        ``scripts/cluster`` runs them.
        """
        options, services = self.options, self._services
        env = {**BENCH_SETTINGS, **(CLUSTER_SETTINGS if options.brokers > 1 else {}), **options.settings}
        with ExitStack() as stack:
            url = stack.enter_context(services.database())
            if url is not None:
                env["DESKHAND_DATABASE_URL"] = url
            data_dir = None
            if services.redis is not None:
                services.redis.flush()  # no limit or room left from the last rig
                env |= {"DESKHAND_REDIS_URL": services.redis.url, "DESKHAND_TRUSTED_PROXIES": "127.0.0.1"}
                data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="deskhand-bench-"))) / "data"
            # One after the other: the first creates the schema, the keys and the first admin.
            started = [stack.enter_context(BrokerProcess.start(env, data_dir=data_dir, timeout=60))
                       for _ in range(brokers)]
            proxy = None
            if options.brokers > 1:
                proxy = stack.enter_context(NginxProxy.start([int(b.base_url.rsplit(":", 1)[1]) for b in started],
                                                             workers="auto"))
            # A broker prints the first admin's password on an empty database only: on
            # one every row shares (--database-url), later rows sign in with the first's.
            password = started[0].admin_password or self._admin_password
            if password is None:
                raise RuntimeError("the database already holds accounts: give the benchmark an empty one")
            self._admin_password = password
            generator = stack.enter_context(GeneratorProcess(
                proxy.base_url if proxy else started[0].base_url, started[0].login(password=password),
                options.request_timeout))
            generator.call("prepare", deadline=60)
            generator.call("probe", deadline=60, rate=2 * WARM_UP_GETS, seconds=0.5)
            yield Rig(started, proxy, generator, services.database_pid, env)


def measure_idle(rigs: Rigs, count: int) -> dict[str, Any]:
    """Hold ``count`` sessions' host sockets; memory, CPU while idle, GET latency."""
    options = rigs.options
    sizes = options.sizes
    with rigs.fresh() as rig:
        generator, pid = rig.generator, rig.broker.process.pid
        before = resident_bytes(pid)
        opened = generator.call("open_idle", deadline=options.setup_seconds + 120, count=count,
                                concurrency=options.setup_concurrency, seconds=options.setup_seconds)
        time.sleep(min(SETTLE_SECONDS, sizes.hold_seconds))
        after = resident_bytes(pid)
        quiet = rig.meter()
        time.sleep(sizes.hold_seconds)
        cpu = quiet.read()
        probe = generator.call("probe", deadline=sizes.hold_seconds + 2 * options.request_timeout + 30,
                               rate=options.probe_rate, seconds=sizes.hold_seconds)
        closed = generator.call("close_idle", deadline=300)
    return {"wanted": count, "held": opened["held"], "held_to_the_end": closed["open_until_now"], "setup_seconds": opened["seconds"],
            "setup_errors": opened["errors"], "rss_before": before, "rss_after": after,
            **cpu, "probe": probe}


def measure_pairings(rigs: Rigs, workers: int, brokers: int = 1) -> dict[str, Any]:
    """``workers`` pairing back to back for the window, against ``brokers`` brokers."""
    options = rigs.options
    seconds = options.sizes.pairing_seconds
    with rigs.fresh(brokers) as rig:
        meter = rig.meter()
        result = rig.generator.call("pairings", deadline=seconds + options.request_timeout * (len(PAIRING_STEPS) + 1) + 60,
                                    workers=workers, seconds=seconds)
        result.update(meter.read())
        result["trail"] = rig.verify_trail()
    result["workers"], result["brokers"] = workers, brokers
    return result


def measure_writes(rigs: Rigs, writers: int, segment: bytes) -> list[dict[str, Any]]:
    """``writers`` hosts writing event batches, then recording segments, each for the window."""
    options = rigs.options
    seconds = options.sizes.write_seconds
    rows = []
    with rigs.fresh() as rig:
        for kind in ("events", "segments"):
            meter = rig.meter()
            result = rig.generator.call(
                "writes", deadline=options.setup_seconds + seconds + 2 * options.request_timeout + 60,
                kind=kind, writers=writers, seconds=seconds, setup_seconds=options.setup_seconds,
                events_per_batch=options.events_per_batch, segment=segment if kind == "segments" else b"")
            result.update(meter.read())
            result["kind"], result["writers"] = kind, writers
            rows.append(result)
    return rows


@dataclass
class Results:
    """Every phase's raw results, as the generator reported them (plus CPU and memory)."""

    idle: list[dict[str, Any]] = field(default_factory=list)
    pairings: list[dict[str, Any]] = field(default_factory=list)
    writes: list[dict[str, Any]] = field(default_factory=list)
    segment_bytes: int = 0
    services: list[str] = field(default_factory=list)
    """Versions of the services besides the brokers (``--brokers``: Redis, nginx)."""


def run(options: Options, progress: Callable[[str], None] = lambda _line: None) -> Results:
    """Every phase asked for, each measurement on a fresh broker; the raw results."""
    raise_fd_limit()  # the broker inherits it
    results = Results()
    with shared_services(options) as services:
        rigs = Rigs(options, services)
        if services.redis is not None:
            with services.redis.client() as client:
                results.services.append(f"Redis {client.info()['redis_version']}")
            results.services.append(subprocess.run([nginx.program(), "-v"], capture_output=True, text=True)
                                    .stderr.strip().removeprefix("nginx version: "))
        if "idle" in options.phases:
            for count in options.sizes.idle:
                progress(f"idle: {count} sessions' sockets")
                results.idle.append(measure_idle(rigs, count))
        if "pairings" in options.phases:
            for workers in options.sizes.workers:
                for brokers in sorted({1, options.brokers}):
                    progress(f"pairings: {workers} workers, {brokers} broker(s), {options.sizes.pairing_seconds:g} s")
                    results.pairings.append(measure_pairings(rigs, workers, brokers))
        if "writes" in options.phases:
            segment = recorded_segment(options.segment_picture, 1920, 1080)
            results.segment_bytes = len(segment)
            for writers in options.sizes.writers:
                progress(f"writes: {writers} writers, {options.sizes.write_seconds:g} s each kind")
                results.writes.extend(measure_writes(rigs, writers, segment))
    return results


# --- reporting -------------------------------------------------------------------------------


def _ms(seconds: Sequence[float]) -> str:
    """p50 / p95 / p99 of ``seconds``, in milliseconds."""
    if not seconds:
        return "-"
    return " / ".join(f"{1000 * percentile(seconds, q):.0f}" for q in (50, 95, 99)) + " ms"


def _errors(errors: dict[str, int]) -> str:
    if not errors:
        return "0"
    return "; ".join(f"{kind} × {n}" for kind, n in sorted(errors.items(), key=lambda item: -item[1]))


def idle_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| sockets held (still open at the end) | set up in | broker RSS growth per socket | broker CPU, idle | generator CPU, idle "
             "| GET /auth/me p50 / p95 / p99 | GETs answered | errors (set-up; GETs) |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        probe, held = row["probe"], row["held"]
        per_socket = (row["rss_after"] - row["rss_before"]) / held / 1024 if held else 0.0
        lines.append(
            f"| {held} of {row['wanted']} ({row['held_to_the_end']}) | {row['setup_seconds']:.0f} s | {per_socket:.1f} KiB "
            f"({row['rss_before'] / 2**20:.0f} -> {row['rss_after'] / 2**20:.0f} MiB) | {row['broker_cpu']:.1f} % "
            f"| {row['generator_cpu']:.1f} % | {_ms(probe['latencies'].get('get', []))} "
            f"| {probe['done']} of {probe['done'] + sum(probe['errors'].values())} "
            f"| {_errors(row['setup_errors'])}; {_errors(probe['errors'])} |")
    return "\n".join(lines)


def pairing_tables(rows: list[dict[str, Any]]) -> str:
    lines = ["| workers | pairings/s | pairings in the window (after it; cut off) | pairing p50 / p95 / p99 "
             "| failed pairings | broker CPU | generator CPU |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {row['workers']} | {row['done'] / row['window']:.1f} | {row['done']} ({row['late']}; {row['cut_off']}) "
            f"| {_ms(row['latencies'].get('pairing', []))} | {sum(row['errors'].values())} "
            f"| {row['broker_cpu']:.0f} % | {row['generator_cpu']:.0f} % |")
    return "\n".join(lines) + "\n\n" + pairing_steps(rows)


def _label(row: dict[str, Any]) -> str:
    """``10 workers``, or with ``--brokers`` ``10 workers, 2 brokers``."""
    brokers = row.get("brokers", 1)
    return f"{row['workers']} workers" + (f", {brokers} broker{'s' if brokers > 1 else ''}" if "nginx_cpu" in row else "")


def pairing_steps(rows: list[dict[str, Any]]) -> str:
    """Each step's latency, one column a row; then each row's errors."""
    lines = ["| step, p50 / p95 / p99 | " + " | ".join(_label(row) for row in rows) + " |", "|---|" + "---|" * len(rows)]
    for step in PAIRING_STEPS:
        lines.append(f"| {step} | " + " | ".join(_ms(row["latencies"].get(step, [])) for row in rows) + " |")
    lines.append("")
    lines += [f"- errors at {_label(row)}: {_errors(row['errors'])}" for row in rows]
    lines += [f"- `audit verify` after {_label(row)}: {row['trail']}" for row in rows if "trail" in row]
    return "\n".join(lines)


def cluster_tables(rows: list[dict[str, Any]]) -> str:
    """The ``--brokers`` rows: one broker and several, both behind nginx, and how many times the first the second does."""
    lines = ["| workers | brokers behind nginx | pairings/s | pairings in the window (after it; cut off) "
             "| pairing p50 / p95 / p99 | failed pairings | brokers' CPU | nginx CPU | PostgreSQL CPU | generator CPU |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {row['workers']} | {row['brokers']} | {row['done'] / row['window']:.1f} | {row['done']} ({row['late']}; "
            f"{row['cut_off']}) | {_ms(row['latencies'].get('pairing', []))} | {sum(row['errors'].values())} "
            f"| {row['broker_cpu']:.0f} % | {row['nginx_cpu']:.0f} % | {row.get('postgres_cpu', 0):.0f} % "
            f"| {row['generator_cpu']:.0f} % |")
    lines.append("")
    for one, more in zip(rows[::2], rows[1::2], strict=True):
        ratio = (more["done"] / more["window"]) / (one["done"] / one["window"]) if one["done"] else float("nan")
        lines.append(f"- at {one['workers']} workers: {more['brokers']} brokers pair {ratio:.2f}× as many a second as one")
    return "\n".join(lines) + "\n\n" + pairing_steps(rows)


def write_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| writes | writers | writes/s | p50 / p95 / p99 | errors | broker CPU | generator CPU |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {'event batches' if row['kind'] == 'events' else 'segments'} | {row['writers']} "
            f"| {row['done'] / row['window']:.0f} | {_ms(row['latencies'].get('write', []))} "
            f"| {_errors(row['errors'])} | {row['broker_cpu']:.0f} % | {row['generator_cpu']:.0f} % |")
    return "\n".join(lines)


def _code_version() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                               text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "code: (not a git checkout)"
    return f"code: commit {commit}{' with uncommitted changes' if dirty else ''}"


def redacted(url: str) -> str:
    """``url`` without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def conditions(options: Options, results: Results) -> list[str]:
    sizes = options.sizes
    libraries = ", ".join(f"{name} {version(name)}" for name in ("fastapi", "uvicorn", "SQLAlchemy", "websockets", "httpx"))
    if options.database == "sqlite":
        database = f"SQLite {sqlite3.sqlite_version}, the broker's embedded default, in its fresh data directory"
    elif options.database_url is not None:
        database = f"PostgreSQL at {redacted(options.database_url)}, one database for every row (later rows find earlier rows' data)"
    else:
        database = "PostgreSQL, a throwaway cluster on 127.0.0.1 (local_services/postgres.py), a new database for each row"
    if options.brokers > 1:
        database += ", shared by the row's brokers"
    extra = ", ".join(f"{k}={v}" for k, v in sorted(options.settings.items()))
    lines = [
        *machine_conditions(),
        f"load average at the end: {' '.join(f'{n:.2f}' for n in os.getloadavg())}",
        _code_version(),
        f"server: {libraries}; database: {database}",
        (f"brokers: 1 or {options.brokers} `deskhand-broker serve` on 127.0.0.1, fresh for each row, on one data "
         f"directory, one database and one Redis ({results.services[0]}; DESKHAND_REDIS_URL), behind nginx "
         f"({results.services[1]}, local_services/nginx.py: worker_processes auto, keep-alive to the brokers, round robin, "
         "DESKHAND_TRUSTED_PROXIES=127.0.0.1); the generator talks to nginx only; DESKHAND_CODE_FAILURES_PER_SOURCE=1000 "
         "(every host joins from 127.0.0.1, and with Redis a join being checked counts against its address); "
         if options.brokers > 1 else "broker: one `deskhand-broker serve` on 127.0.0.1, fresh for each row, ")
        + "shipped settings but DESKHAND_PEER_EVENTS_PER_SECOND/BURST raised (one peer's own rate is not measured)"
        + (f"; also {extra}" if extra else ""),
        f"load generator: one process (asyncio, httpx + websockets), one technician token for all sessions, "
        f"sessions on {TICKETS} tickets; each step times out after {options.request_timeout:g} s and counts as an error; "
        "a 429 or 503 is counted, then its Retry-After waited",
        "CPU: utime+stime from /proc, % of one core; memory: the broker's VmRSS",
    ]
    if options.brokers > 1:
        lines.append(f"all on this machine's {os.cpu_count()} cores: the brokers, nginx, PostgreSQL, Redis and the load "
                     "generator compete for them (brokers' CPU is the brokers' together; nginx's counts its workers; "
                     "PostgreSQL's its backends)")
    if results.idle:
        lines.append(f"idle sockets: host signalling sockets, set up {options.setup_concurrency} at a time; "
                     f"CPU over a quiet {sizes.hold_seconds:g} s, then GET /auth/me at {options.probe_rate:g}/s "
                     f"for {sizes.hold_seconds:g} s")
    if results.pairings:
        lines.append(f"pairings: a {sizes.pairing_seconds:g} s window per worker count; steps "
                     f"{', '.join(PAIRING_STEPS)}; only pairings finished inside the window are counted")
    if results.writes:
        lines.append(f"writes: a {sizes.write_seconds:g} s window per kind and writer count, one session per writer; "
                     f"{options.events_per_batch} events a batch; segments of {results.segment_bytes / 1000:.0f} kB "
                     f"(one second of a 1920x1080 '{options.segment_picture}' screen, VP8 at 2 fps)")
    lines += list(options.notes)
    return lines


def report(options: Options, results: Results, *, write: bool) -> None:
    if options.brokers > 1:
        publish(CLUSTER_DOCS_SECTION, conditions(options, results), "**Pairings, one broker and "
                f"{options.brokers} behind nginx**\n\n" + cluster_tables(results.pairings), write=write)
        return
    tables = []
    if results.idle:
        tables.append("**Idle signalling sockets held**\n\n" + idle_table(results.idle))
    if results.pairings:
        tables.append("**Pairings**\n\n" + pairing_tables(results.pairings))
    if results.writes:
        tables.append("**Writes**\n\n" + write_table(results.writes))
    publish(DOCS_SECTION, conditions(options, results), "\n\n".join(tables), write=write)


# --- the command line ------------------------------------------------------------------------


def counts(low: int, high: int, what: str) -> Callable[[str], tuple[int, ...]]:
    """An argparse ``type=`` for a comma-separated list of whole numbers between ``low`` and ``high``."""
    one = number_in_range(int, low, high, what)

    def parse(text: str) -> tuple[int, ...]:
        values = tuple(one(part.strip()) for part in text.split(",") if part.strip())
        if not values:
            raise argparse.ArgumentTypeError(f"{what}: give at least one number")
        return values

    parse.__name__ = what.replace(" ", "_")
    return parse


def phase_list(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [name for name in names if name not in PHASES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"phases are among {', '.join(PHASES)}, not {text!r}")
    return names


def broker_setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.startswith("DESKHAND_") or name == "DESKHAND_DATABASE_URL":
        raise argparse.ArgumentTypeError(
            f"a setting is DESKHAND_NAME=VALUE (not the database URL: --database-url), not {text!r}")
    return name, value


def parse_options(argv: Sequence[str] | None = None) -> tuple[Options, bool]:
    """The options of a run, and whether to write the docs; exits 2 naming what is wrong."""
    parser = argparse.ArgumentParser(prog="python -m bench.broker_load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="every phase, small (a smoke run); flags below override")
    parser.add_argument("--phases", type=phase_list, help="which of idle,pairings,writes (default all)")
    parser.add_argument("--idle-sessions", type=counts(1, 100_000, "idle sessions"),
                        help="sessions' sockets to hold, one run each (default 1000,5000,10000)")
    parser.add_argument("--workers", type=counts(1, 2000, "workers"), help="pairing workers (default 10,50,200)")
    parser.add_argument("--writers", type=counts(1, 2000, "writers"), help="writers (default 8,32,64)")
    parser.add_argument("--hold-seconds", type=number_in_range(float, 0.5, 600, "hold seconds"),
                        help="idle hold, and the GET probe after it (default 10)")
    parser.add_argument("--pairing-seconds", type=number_in_range(float, 0.5, 600, "pairing seconds"),
                        help="window per worker count (default 20)")
    parser.add_argument("--write-seconds", type=number_in_range(float, 0.5, 600, "write seconds"),
                        help="window per writer count and kind (default 10)")
    parser.add_argument("--probe-rate", type=number_in_range(float, 0.5, 1000, "probe rate"), default=20.0,
                        help="GET /auth/me a second during the idle hold (default 20)")
    parser.add_argument("--request-timeout", type=number_in_range(float, 0.5, 120, "request timeout"), default=10.0,
                        help="seconds before a step counts as timed out (default 10)")
    parser.add_argument("--setup-concurrency", type=number_in_range(int, 1, 64, "setup concurrency"), default=8,
                        help="sessions set up at a time (default 8: the join limit counts joins in flight)")
    parser.add_argument("--setup-seconds", type=number_in_range(float, 5, 7200, "setup seconds"), default=600.0,
                        help="deadline to set up the idle sockets or the writers' sessions (default 600)")
    parser.add_argument("--events-per-batch", type=number_in_range(int, 1, 500, "events per batch"), default=4)
    parser.add_argument("--segment-picture", choices=SEGMENT_PICTURES, default="text",
                        help="what the uploaded one-second segment shows (default text: ~330 kB)")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), help="default sqlite (postgresql with --brokers)")
    parser.add_argument("--database-url", help="with --database postgresql: DESKHAND_DATABASE_URL of an empty "
                        "database every broker uses (the benchmark fills it); without, a throwaway cluster")
    parser.add_argument("--brokers", type=number_in_range(int, 1, 8, "brokers"), default=1,
                        help="above 1: pairings against one broker and this many behind nginx, on PostgreSQL and Redis")
    parser.add_argument("--setting", type=broker_setting, action="append", default=[], metavar="DESKHAND_NAME=VALUE",
                        help="another broker setting (repeatable), e.g. DESKHAND_WS_PING_SECONDS=60")
    parser.add_argument("--note", action="append", default=[], help="a line added to the conditions (repeatable)")
    parser.add_argument("--write-docs", action="store_true", help="replace this benchmark's section of docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.brokers > 1:
        if args.database == "sqlite":
            parser.error("--brokers runs on PostgreSQL (--database postgresql, the default with --brokers)")
        if args.phases not in (None, ("pairings",)):
            parser.error("--brokers measures pairings only (--phases pairings)")
        try:
            nginx.program()
        except nginx.NginxMissing as exc:
            parser.error(f"--brokers puts nginx in front: {exc}")
    args.database = args.database or ("postgresql" if args.brokers > 1 else "sqlite")
    args.phases = args.phases or (("pairings",) if args.brokers > 1 else PHASES)

    if args.database == "postgresql" and not args.database_url and find_spec("local_services.postgres") is None:
        parser.error("--database postgresql needs --database-url postgresql://... (an empty database) in a "
                     "checkout without local_services/postgres.py (a throwaway cluster)")
    if args.database == "sqlite" and args.database_url:
        parser.error("--database-url goes with --database postgresql (SQLite lives in the broker's data directory)")
    if args.database_url and not urlsplit(args.database_url).scheme.startswith("postgresql"):
        parser.error(f"--database-url must be a postgresql:// URL, not {redacted(args.database_url)!r}")
    base = QUICK if args.quick else FULL
    sizes = replace(
        base,
        **{name: value for name, value in (
            ("idle", args.idle_sessions), ("workers", args.workers), ("writers", args.writers),
            ("hold_seconds", args.hold_seconds), ("pairing_seconds", args.pairing_seconds),
            ("write_seconds", args.write_seconds)) if value is not None},
    )
    limit = raise_fd_limit()
    if "idle" in args.phases and max(sizes.idle) > limit - FD_HEADROOM:
        parser.error(f"{max(sizes.idle)} idle sockets need more open files than the limit allows "
                     f"({limit}, less {FD_HEADROOM} for the rest); raise 'ulimit -Hn' or hold fewer")
    options = Options(
        sizes=sizes, phases=args.phases, database=args.database, database_url=args.database_url,
        request_timeout=args.request_timeout, probe_rate=args.probe_rate, setup_concurrency=args.setup_concurrency,
        setup_seconds=args.setup_seconds, events_per_batch=args.events_per_batch,
        segment_picture=args.segment_picture, settings=dict(args.setting), notes=tuple(args.note), brokers=args.brokers,
    )
    return options, args.write_docs


def main(argv: Sequence[str] | None = None) -> int:
    options, write = parse_options(argv)
    started = time.monotonic()
    results = run(options, progress=lambda line: print(f"[{time.monotonic() - started:5.0f} s] {line}", flush=True))
    print()
    report(options, results, write=write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
