"""Code redemption to first frame across separated networks, direct against relayed through coturn.

The rig of the netns tests (:mod:`tests.support.netns`, :mod:`tests.support.coturn`):
the broker and coturn in the relay namespace on 198.18.0.1, ``deskhand-host`` in the
user namespace on a private Xvfb, and this process, the Python console, in the tech
namespace. Every path gets the same broker settings (coturn's URLs of its leg, minted
credentials, no loopback candidates); only the network differs:

* ``direct``: the relay namespace forwards and each edge has a route to the other
  (:meth:`~tests.support.netns.NetTopology.routed`), as two networks behind one router.
  TURN over UDP is still handed out and allocated; the pair ICE selects is host to host.
* ``udp``, ``tcp``, ``tls``: the standard topology, user and tech cannot reach each other,
  so media flows only between the two peers' allocations on coturn, over that leg.

Each session is a fresh host process with ``--consent view`` (the flag answers the prompt
at once; the host offers only after consent, so how long a person takes to answer does
not change what follows it). Times, all on this machine's one clock:

* redeemed -> first frame: the broker's ``code.redeemed`` audit event to the first
  decoded frame on the technician's side;
* consent -> first frame: the broker's ``consent.changed`` event (the host's answer as
  received) to that frame. The target of issue 18: within 2 s, relayed.

The selected pair of each run is checked against its path: a run that took another
route raises rather than being counted under the wrong name.

Run (as root, with coturn installed):
``.venv/bin/python -m bench.relay_connect [--runs 5] [--paths direct,udp,tcp,tls] [--write-docs]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import av

from bench.report import machine_conditions, percentile, publish
from peer.aiortc_hooks import TURN_CA_FILE_ENV, selected_route
from protocol.route import Route
from tech_console.client import TechConsole
from tests.netns.conftest import relay_broker
from tests.support.broker import BrokerProcess
from tests.support.coturn import CoturnMissing, CoturnServer
from tests.support.live_session import live_session
from tests.support.netns import NetnsUnavailable, NetTopology
from tests.support.polling import async_wait_until
from tests.support.xvfb import XvfbServer

PATHS = ("direct", "udp", "tcp", "tls")
"""The paths measured, in the order they run and are reported."""

TARGET_SECONDS = 2.0
"""Issue 18's target: the first frame within this long after the user's consent, relayed."""

FRAME_TIMEOUT = 45.0
"""How long one run may take to its first frame before the bench gives up (far beyond any figure)."""


@dataclass(frozen=True)
class Run:
    """One session's timings (seconds) and the route it took."""

    redeemed_to_frame: float
    consent_to_frame: float
    route: Route


def turn_leg(path: str) -> str:
    """The coturn URL the broker hands out on ``path``: the direct path gets UDP's, as the UDP leg does."""
    return "udp" if path == "direct" else path


def expected_route(path: str) -> tuple[str, str, str | None]:
    """(local type, remote type, leg) the technician's side must select on ``path``."""
    return ("host", "host", None) if path == "direct" else ("relay", "relay", path)


async def one_session(net: NetTopology, broker: BrokerProcess, display_env: dict[str, str], path: str) -> Run:
    """A whole session on ``path``: host started, first frame, route checked, the trail's two moments read."""
    first_frame: list[float] = []

    def on_frame(_frame: av.VideoFrame, _arrived: float) -> None:
        if not first_frame:
            first_frame.append(time.time())  # the broker's audit times are wall-clock ones

    async with live_session(
        broker, display_env, "--consent", "view", "--insecure", subject="relay_connect benchmark",
        on_frame=on_frame, wrap=net.wrap("user"),
    ) as live:
        await live.view.wait_for_frame(FRAME_TIMEOUT)
        pc = live.view.peer_connection
        assert pc is not None
        route = await async_wait_until(lambda: selected_route(pc), "a nominated candidate pair")
        assert route is not None  # async_wait_until returns only once it is
        if (route.local_type, route.remote_type, route.turn_leg) != expected_route(path):
            raise RuntimeError(f"the {path} run took another route: {route}")
        moments = await trail_moments(live.console, live.session_id)
    frame_at = first_frame[0]
    return Run(frame_at - moments["code.redeemed"], frame_at - moments["consent.changed"], route)


async def trail_moments(console: TechConsole, session_id: str, timeout: float = 10.0) -> dict[str, float]:
    """When the broker recorded the code's redemption and the consent (epoch seconds), once sealed (every second)."""
    wanted = ("code.redeemed", "consent.changed")
    deadline = time.monotonic() + timeout
    while True:
        report = await console.audit_report(session_id)
        found: dict[str, float] = {}
        for event in report["events"]:
            if event["kind"] in wanted and event["kind"] not in found:
                found[event["kind"]] = datetime.fromisoformat(event["at"].replace("Z", "+00:00")).timestamp()
        if len(found) == len(wanted):
            return found
        if time.monotonic() > deadline:
            raise RuntimeError(f"the trail of {session_id} holds no sealed {', '.join(set(wanted) - set(found))}")
        await asyncio.sleep(0.3)


async def measure(
    net: NetTopology, coturn: CoturnServer, display_env: dict[str, str], paths: Sequence[str], runs: int
) -> dict[str, list[Run]]:
    """``runs`` sessions on each of ``paths``, one broker per path (settings differ by leg)."""
    results: dict[str, list[Run]] = {}
    for path in paths:
        routed = net.routed() if path == "direct" else contextlib.nullcontext()
        with routed, net.entered("tech"), relay_broker(net, coturn.broker_env(turn_leg(path))) as broker:
            results[path] = [await one_session(net, broker, display_env, path) for _ in range(runs)]
    return results


def coturn_version() -> str:
    """``turnserver --version`` (coturn prints just the number)."""
    try:
        done = subprocess.run(["turnserver", "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (done.stdout.strip() or done.stderr.strip()).splitlines()[-1] if (done.stdout or done.stderr) else "unknown"


def _spread(values: Sequence[float]) -> str:
    return " | ".join(f"{v:.2f} s" for v in (percentile(values, 50), percentile(values, 90), min(values), max(values)))


def report(results: dict[str, list[Run]]) -> str:
    """The figures as a Markdown table, and how often the relayed target was met."""
    rows = [
        "| path | runs | route | redeemed → frame median | p90 | min | max | consent → frame median | p90 | min | max |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for path, runs in results.items():
        routes = sorted({run.route.words() for run in runs})
        rows.append(
            f"| {path} | {len(runs)} | {', '.join(routes)} | {_spread([r.redeemed_to_frame for r in runs])} | "
            f"{_spread([r.consent_to_frame for r in runs])} |"
        )
    relayed = [run for path, runs in results.items() if path != "direct" for run in runs]
    if relayed:
        met = sum(run.consent_to_frame <= TARGET_SECONDS for run in relayed)
        rows += ["", f"Relayed runs with the first frame within {TARGET_SECONDS:g} s of consent: {met} of {len(relayed)}."]
    return "\n".join(rows)


def conditions(paths: Sequence[str], runs: int) -> list[str]:
    """What the figures were measured under."""
    return [
        *machine_conditions(),
        f"coturn {coturn_version()}; paths {', '.join(paths)}; {runs} sessions each, one after another, one broker per path",
        "network namespaces on one machine (veth links, no delay added): user and tech each linked to the relay "
        "namespace running broker and coturn; direct = the relay forwards between them, relayed = it does not",
        "host: deskhand-host --consent view on Xvfb 1920x1080, a fresh process per session; technician: the Python console",
        "redeemed/consent: the broker's code.redeemed/consent.changed audit events; frame: the first decoded on the "
        "technician's side; p90 is nearest-rank (with 5 runs, the slowest)",
    ]


def parse_options(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line: ``--runs``, ``--paths``, ``--write-docs``; exits 2 naming what is wrong."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="sessions per path (default 5)")
    parser.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated, among {', '.join(PATHS)} (default all)")
    parser.add_argument("--write-docs", action="store_true", help="replace the figures in docs/benchmarks.md")
    options = parser.parse_args(argv)
    options.paths = tuple(p.strip() for p in options.paths.split(",") if p.strip())
    unknown = [p for p in options.paths if p not in PATHS]
    if unknown or not options.paths:
        parser.error(f"paths are among {', '.join(PATHS)}, not {', '.join(unknown) or 'nothing'}")
    if not 1 <= options.runs <= 100:
        parser.error(f"runs must be between 1 and 100, not {options.runs}")
    return options


@dataclass(frozen=True)
class Rig:
    """What a relay benchmark runs in: a private Xvfb, the three namespaces, coturn, a scratch folder."""

    xvfb: XvfbServer
    net: NetTopology
    coturn: CoturnServer
    scratch: Path


@contextlib.contextmanager
def relay_rig() -> Iterator[Rig]:
    """The :class:`Rig` for the ``with`` block; both peers trust coturn's test CA for ``turns:``.

    Raises :class:`NetnsUnavailable` or :class:`CoturnMissing` when the machine cannot run it.
    """
    with tempfile.TemporaryDirectory() as tmp, XvfbServer.start(1920, 1080) as xvfb, \
            NetTopology.create() as net, CoturnServer.start(net, Path(tmp) / "coturn") as coturn:
        assert coturn.certificate is not None
        os.environ[TURN_CA_FILE_ENV] = str(coturn.certificate.cert)  # the host inherits it, the console reads it
        yield Rig(xvfb, net, coturn, Path(tmp))


UNAVAILABLE = (NetnsUnavailable, CoturnMissing)
"""What :func:`relay_rig` raises when the machine cannot run it (the benchmark says why and exits 2)."""


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    try:
        with relay_rig() as rig:
            results = asyncio.run(measure(rig.net, rig.coturn, rig.xvfb.env, options.paths, options.runs))
    except UNAVAILABLE as exc:
        print(f"relay_connect: {exc}", file=sys.stderr)
        return 2
    publish("relay_connect", conditions(options.paths, options.runs), report(results), write=options.write_docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
