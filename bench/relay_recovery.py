"""A relayed session's link cut and restored: how soon it is noticed, and how soon picture and control return.

The rig of :mod:`bench.relay_connect`: the broker and coturn in the relay namespace on
198.18.0.1, ``deskhand-host`` in the user namespace on a private Xvfb, this process, the
Python console, in the tech namespace, media relayed over coturn's UDP leg. In each
session the user's link is cut for each of the given lengths in turn and restored; the
session goes on without a new code. Times on this machine's monotonic clock, read on the
technician's side (polled every 20 ms):

* noticed: cut -> the console says it is reconnecting (3 s without a pong, by design);
* picture back: link back -> the first frame decoded after it. Issue 18's target: within 5 s;
* reconnected: link back -> the console hears the host again;
* control back: link back -> control is possible again. A cut that leaves the recording
  more than ``DESKHAND_RECORDING_MAX_LAG_SECONDS`` (5 s) behind makes the host pause control
  ("control is paused") until the recording has caught up on the gap ("recording caught
  up"); otherwise control is back once reconnected (a pause notice is waited for 2 s).

After each session the trail must verify and mark each gap (``media.interrupted``, then
``media.restored``, never ``media.lost``); a session where it does not raises.

Run (as root, with coturn installed):
``.venv/bin/python -m bench.relay_recovery [--runs 3] [--cuts 10,20,30] [--write-docs]``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.relay_connect import UNAVAILABLE, coturn_version, relay_rig
from bench.report import machine_conditions, percentile, publish
from broker.settings import Settings
from tests.netns.conftest import relay_broker, trail_verifies
from tests.support.broker import BrokerProcess
from tests.support.coturn import CoturnServer
from tests.support.live_session import Live, live_session
from tests.support.netns import NetTopology

CUTS = (10.0, 20.0, 30.0)
"""The cut lengths (seconds) of each session, in order; issue 18 asks for recovery from up to 30 s."""

TARGET_SECONDS = 5.0
"""Issue 18's target: the picture back within this long after the link."""

RECOVERY_TIMEOUT = 60.0
"""How long after the link is back the bench waits for each moment before giving up."""

MAX_LAG_SECONDS = float(Settings.model_fields["recording_max_lag_seconds"].default)
"""The broker's default allowed recording lag (a longer cut pauses control until the recording catches up)."""


@dataclass(frozen=True)
class Recovery:
    """One cut's timings (seconds)."""

    cut: float
    noticed: float
    picture_back: float
    reconnected: float
    control_back: float
    paused: bool
    """Control paused until the recording caught up on the gap."""


PAUSE_GRACE_SECONDS = 2.0
"""How long after reconnecting the bench waits for a pause notice that may still be on its way."""

Seen = dict[str, float]


async def moments(probes: dict[str, Callable[[], bool]], until: Callable[[Seen, float], bool], timeout: float) -> Seen:
    """The ``time.monotonic()`` at which each probe first held, polled every 20 ms until ``until(seen, now)``."""
    deadline = time.monotonic() + timeout
    seen: Seen = {}
    while True:
        now = time.monotonic()
        seen.update({name: now for name, probe in probes.items() if name not in seen and probe()})
        if until(seen, now):
            return seen
        if now > deadline:
            raise RuntimeError(f"not within {timeout:g} s; seen only: {', '.join(seen) or 'nothing'}")
        await asyncio.sleep(0.02)


async def one_cut(net: NetTopology, live: Live, cut: float) -> Recovery:
    """Cut the user's link for ``cut`` seconds, restore it, and time what follows."""
    view = live.view
    notices_before = len(view.notices)

    def told(text: str) -> Callable[[], bool]:
        return lambda: any(text in notice for notice in view.notices[notices_before:])

    net.cut("user")
    try:
        cut_at = time.monotonic()
        noticed = await moments({"noticed": lambda: view.reconnecting}, lambda seen, _now: "noticed" in seen, cut)
        await asyncio.sleep(max(0.0, cut_at + cut - time.monotonic()))
    finally:
        net.restore("user")
    back_at = time.monotonic()

    def settled(seen: Seen, now: float) -> bool:
        # Picture and host back, no pause notice for a while after, or the pause over.
        return ("picture" in seen and "reconnected" in seen and now >= seen["reconnected"] + PAUSE_GRACE_SECONDS
                and ("paused" not in seen or "caught up" in seen))

    seen = await moments({
        "picture": lambda: view.latest_frame_at > back_at,
        "reconnected": lambda: not view.reconnecting,
        "paused": told("control is paused"),
        "caught up": told("recording caught up"),
    }, settled, RECOVERY_TIMEOUT)
    paused = "paused" in seen
    control_at = max(seen["reconnected"], seen["caught up"]) if paused else seen["reconnected"]
    return Recovery(cut, noticed["noticed"] - cut_at, seen["picture"] - back_at, seen["reconnected"] - back_at,
                    control_at - back_at, paused)


async def one_session(net: NetTopology, broker: BrokerProcess, display_env: dict[str, str], cuts: Sequence[float],
                      scratch: Path) -> list[Recovery]:
    """A relayed session through every cut in ``cuts``; its trail checked afterwards."""
    async with live_session(
        broker, display_env, "--consent", "view,control,chat", "--insecure", subject="relay_recovery benchmark",
        wrap=net.wrap("user"),
    ) as live:
        await live.view.wait_for_control(45)
        await live.view.wait_for_frame(10)
        results = [await one_cut(net, live, cut) for cut in cuts]
    media = await trail_verifies(broker, live.session_id, scratch)
    if "media.lost" in media or media.count("media.restored") < len(cuts) or media[-1] != "media.restored":
        raise RuntimeError(f"session {live.session_id}: the trail does not mark each gap and its end: {media}")
    return results


async def measure(net: NetTopology, coturn: CoturnServer, display_env: dict[str, str], cuts: Sequence[float],
                  runs: int, scratch: Path) -> list[Recovery]:
    """``runs`` sessions through ``cuts``, one broker handing out coturn's UDP leg."""
    results: list[Recovery] = []
    with net.entered("tech"), relay_broker(net, coturn.broker_env("udp")) as broker:
        for _ in range(runs):
            results += await one_session(net, broker, display_env, cuts, scratch)
    return results


def _spread(values: Sequence[float]) -> str:
    return f"{percentile(values, 50):.2f} / {max(values):.2f} s"


def report(results: Sequence[Recovery]) -> str:
    """The figures as a Markdown table (median / max per cut length), and how often the target was met."""
    rows = [
        "| link cut | cuts | noticed after (median / max) | picture back after the link | reconnected | control back "
        "| control paused |",
        "|---|---|---|---|---|---|---|",
    ]
    for cut in sorted({r.cut for r in results}):
        these = [r for r in results if r.cut == cut]
        rows.append(
            f"| {cut:g} s | {len(these)} | {_spread([r.noticed for r in these])} | "
            f"{_spread([r.picture_back for r in these])} | {_spread([r.reconnected for r in these])} | "
            f"{_spread([r.control_back for r in these])} | {sum(r.paused for r in these)} of {len(these)} |"
        )
    met = sum(r.picture_back <= TARGET_SECONDS for r in results)
    rows += ["", f"Cuts with the picture back within {TARGET_SECONDS:g} s of the link: {met} of {len(results)}."]
    return "\n".join(rows)


def conditions(cuts: Sequence[float], runs: int) -> list[str]:
    """What the figures were measured under."""
    return [
        *machine_conditions(),
        f"coturn {coturn_version()}; {runs} sessions, each cut for {', '.join(f'{c:g}' for c in cuts)} s in turn; "
        "media relayed over TURN/UDP",
        "network namespaces on one machine (veth links, no delay added): the user's link to the relay namespace "
        "taken down and up again (ip link)",
        f"host: deskhand-host --consent view,control,chat on Xvfb 1920x1080; technician: the Python console; "
        f"recording may lag {MAX_LAG_SECONDS:g} s before control pauses (the default)",
    ]


def _cut_lengths(text: str) -> tuple[float, ...]:
    try:
        cuts = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"cut lengths are seconds separated by commas, not {text!r}") from None
    if not cuts or any(not 5 <= cut <= 120 for cut in cuts):
        raise argparse.ArgumentTypeError(f"each cut is between 5 and 120 s (a shorter one ends before it can be noticed), not {text!r}")
    return cuts


def parse_options(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line: ``--runs``, ``--cuts``, ``--write-docs``; exits 2 naming what is wrong."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="sessions (default 3)")
    parser.add_argument("--cuts", type=_cut_lengths, default=CUTS,
                        help="cut lengths in seconds, comma-separated, each session in turn (default 10,20,30)")
    parser.add_argument("--write-docs", action="store_true", help="replace the figures in docs/benchmarks.md")
    options = parser.parse_args(argv)
    if not 1 <= options.runs <= 50:
        parser.error(f"runs must be between 1 and 50, not {options.runs}")
    return options


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    try:
        with relay_rig() as rig:
            results = asyncio.run(measure(rig.net, rig.coturn, rig.xvfb.env, options.cuts, options.runs, rig.scratch))
    except UNAVAILABLE as exc:
        print(f"relay_recovery: {exc}", file=sys.stderr)
        return 2
    publish("relay_recovery", conditions(options.cuts, options.runs), report(results), write=options.write_docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
