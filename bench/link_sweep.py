"""Deskhand, the naive aiortc pipeline and x11vnc through one emulated link, cell by cell.

The rig of :mod:`bench.relay_connect`: the broker and coturn in the relay namespace on
198.18.0.1, the host (or x11vnc) in the user namespace on a private Xvfb showing the
1080p text workload (:mod:`bench.workload`), the technician (the Python console, or the
VNC client) in this process in the tech namespace. Each cell is a link on the user's
leg (:mod:`tests.support.link_emulator`, :mod:`tests.support.tcp_link`):

* rate: tbf on both ends of the user's veth (uplink and downlink at the rate), for UDP
  and TCP alike;
* round trip and loss: WebRTC media is relayed by coturn behind the impairing UDP relay
  (the broker hands out only its URL), which holds the user's packets RTT/2 each way and
  drops each with the cell's chance each way. VNC runs over TCP: a TCP relay in the relay
  namespace holds each chunk RTT/2 each way, and nftables drops the cell's share of the
  packets of x11vnc's port on arrival at either end of the user's link. The TCP relay
  splits the connection, so x11vnc's own TCP sees rate and loss but not the delay: its
  window and loss recovery are a short path's, which flatters VNC, never Deskhand.

Per cell and system: the workload is reset (a still screen) and grabbed, the session (or
VNC connection) starts, and then

* first legible frame: from the host's consent (the broker's ``consent.changed``; the host
  offers only then) or VNC's connect, to the arrival of the first frame whose luma PSNR
  against the screen is >= 30 dB; "none within N s" after ``--first-frame-timeout``;
* typing, then scrolling, ``--phase-seconds`` each, with a latency mark every 250 ms
  (:mod:`bench.stream_marks`): mark p50/p95 (a mark no frame showed counts as never
  arriving), frames per second in each phase, received Mbit/s;
* input: while scrolling, a pointer move every 50 ms, from the console handing it over to the
  host having injected it (``--trace-input``; one CLOCK_MONOTONIC), on the pointer channel
  (unordered, never retransmitted: a lost move is overtaken by the next) as both consoles send
  moves, or with ``--moves input`` on the reliable, ordered input channel that carries keys and
  clicks; a move never applied counts as never; x11vnc reports no injection time, so VNC has none;
* sharpness: 2 s after scrolling ends, the newest frame against the screen (luma PSNR).

A system that fails in a cell is reported in that cell's row, and the sweep goes on.

Run as root, with coturn and nftables installed (``scripts/test --setup-only`` installs them), x11vnc
(installed with apt-get before the first cell when missing) and the ``[bench]`` extras (``.venv/bin/pip install -e '.[test,bench]'``)::

    .venv/bin/python -m bench.link_sweep [--rates 1,1.5,2.5,4,8,20] [--rtt 0,150] [--loss 0,2]
        [--systems deskhand,naive,x11vnc] [--phase-seconds 5] [--first-frame-timeout 15] [--quick]
        [--moves pointer|input] [--write-docs [--docs-section link_sweep_baseline|link_sweep_typing|link_sweep_reliable]]

The whole grid is 24 cells of three systems, about 20 s each: under half an hour. The typing
target is for 1 % loss: add it with ``--loss 0,1,2``, or run ``--rates 2.5 --loss 1`` (with
``--write-docs --docs-section link_sweep_typing`` its own section of docs/benchmarks.md). The input
target's cells (1 Mbit/s) with the moves on the reliable channel instead: ``--rates 1 --moves input``
(``--docs-section link_sweep_reliable``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from bench.aiortc_receiver import AiortcReceiver
from bench.cpu import CpuSample
from bench.naive_host import receiver_hooks_off
from bench.relay_connect import UNAVAILABLE, Rig, coturn_version, relay_rig, trail_moments
from bench.report import machine_conditions, publish
from bench.screen_stream import grab_screen
from bench.stream_figures import NAIVE_AIORTC, PhaseRun, PipelineRun, figures, luma, psnr
from bench.stream_receiver import StreamReceiver
from bench.sweep_figures import (
    LEGIBLE_DB,
    LOSSES_PERCENT,
    RATES_MBIT,
    ROUND_TRIPS_MS,
    SYSTEMS,
    Cell,
    SystemRun,
    grid,
    parse_numbers,
    parse_systems,
    sweep_table,
    targets_table,
)
from bench.vnc_receiver import ensure_vnc_side
from bench.workload import WorkloadProcess
from protocol.channel import INPUT_CHANNEL, POINTER_CHANNEL
from tech_console.remote_view import RemoteView
from tests.netns.conftest import relay_broker
from tests.support.broker import BrokerProcess
from tests.support.link_emulator import RELAY_PORT, ImpairedRelay, Impairment, shape, unshape
from tests.support.live_session import live_session
from tests.support.netns import PUBLIC_IP, NetTopology
from tests.support.tcp_link import DelayedTcpRelay, tcp_loss

WIDTH, HEIGHT = 1920, 1080
SETTLE_SECONDS = 2.0
"""Issue 19: the picture is sharp again this long after the screen settles."""
INPUT_INTERVAL = 0.05
"""Seconds between pointer moves while scrolling."""
LEGIBILITY_POLL = 0.25
"""How often the frames that came meanwhile are checked for legibility (each check costs ~50 ms of CPU)."""
CONNECT_TIMEOUT = 30.0
"""How long a session may take to get the host's consent, or x11vnc to answer, before the cell fails."""
USER_NETWORK = "198.18.1.0/24"
NAMES = {"deskhand": "Deskhand -> aiortc", "naive": NAIVE_AIORTC, "x11vnc": "x11vnc -> asyncvnc2"}
QUICK = {"rates": (1.0, 2.5, 8.0), "rtts": (0.0, 150.0), "losses": (0.0,)}
"""``--quick``: the reduced grid."""

MOVES_CHANNELS = {
    POINTER_CHANNEL: "unordered, never retransmitted, as the consoles send moves",
    INPUT_CHANNEL: "reliable and ordered, as keys and clicks go",
}
"""The channels ``--moves`` may put the pointer moves on, as the conditions name them."""
DOCS_SECTIONS = ("link_sweep", "link_sweep_baseline", "link_sweep_typing", "link_sweep_reliable")
"""Sections of docs/benchmarks.md that ``--write-docs`` may replace."""


# --- the link ------------------------------------------------------------------------------


@contextlib.contextmanager
def emulated_link(net: NetTopology, cell: Cell, *, loss_seed: int = 1) -> Iterator[None]:
    """The user's link as ``cell`` says for the block: rate both ways, the UDP relay's delay and loss (drawn
    from ``loss_seed``)."""
    kbit = round(cell.rate_mbit * 1000)
    shape(net, "user", "up", kbit=kbit)
    shape(net, "user", "down", kbit=kbit)
    try:
        impairment = Impairment(delay=cell.rtt_ms / 2000, loss=cell.loss_percent / 100)
        with ImpairedRelay.start(net, impairment, [USER_NETWORK], seed=loss_seed):
            yield
    finally:
        unshape(net, "user", "up")
        unshape(net, "user", "down")


# --- watching for the first legible frame ---------------------------------------------------


def _legible(rgb: np.ndarray, source_luma: np.ndarray) -> bool:
    return psnr(luma(rgb), source_luma) >= LEGIBLE_DB


def _full_size_rgb(frame: av.VideoFrame) -> np.ndarray:
    return frame.reformat(width=WIDTH, height=HEIGHT, format="rgb24").to_ndarray()


@dataclass
class FrameWatch:
    """Keeps the decoded frames (and their arrival) that came since the last look, while asked to."""

    watching: bool = True
    pending: list[tuple[float, av.VideoFrame]] = field(default_factory=list)

    def offer(self, frame: av.VideoFrame, arrived: float) -> None:
        if self.watching:
            self.pending.append((arrived, frame))

    async def first_legible(self, source_luma: np.ndarray, deadline: float) -> float | None:
        """The arrival of the first legible frame, or None when none came before ``deadline``.

        Each look checks the newest frame; when it is legible, earlier ones of the same batch
        are checked back to the first that is not (a still screen only sharpens).
        """
        try:
            while time.monotonic() < deadline:
                batch, self.pending = self.pending, []
                found = None
                for arrived, frame in reversed(batch):
                    if not await asyncio.to_thread(lambda f=frame: _legible(_full_size_rgb(f), source_luma)):
                        break
                    found = arrived
                if found is not None:
                    return found
                await asyncio.sleep(LEGIBILITY_POLL)
            return None
        finally:
            self.watching = False
            self.pending = []


async def vnc_first_legible(receiver: StreamReceiver, source_luma: np.ndarray, deadline: float) -> float | None:
    """As :meth:`FrameWatch.first_legible` for VNC: its framebuffer after each whole update."""
    checked = 0
    while time.monotonic() < deadline:
        if len(receiver.frames) > checked:
            checked = len(receiver.frames)
            arrived = receiver.frames[checked - 1].arrived
            if await asyncio.to_thread(_legible, await receiver.latest_rgb(), source_luma):
                return arrived
        await asyncio.sleep(0.05)
    return None


# --- one system in one cell -----------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """How long each part of a cell takes."""

    phase_seconds: float
    first_frame_timeout: float
    moves_channel: str = POINTER_CHANNEL
    """The data channel the pointer moves go on: ``pointer`` (as the consoles send them) or ``input``."""
    loss_seed: int = 1
    """The seed of the UDP relay's losses: with one seed every run loses the same packets in the same order (the
    14th the relay carries, then the 92nd, ... at 2 %), so two runs compare like for like; another seed is
    another draw. At 1 Mbit/s and 150 ms, seed 1 loses a packet of the connection's set-up, and the first legible
    frame came 0.15 s later than without loss in every run."""


def _grab_luma(display: str) -> np.ndarray:
    return luma(grab_screen(display))


async def _phases(workload: WorkloadProcess, receiver: StreamReceiver, pid: int, plan: Plan,
                  while_scrolling: Callable[[float], AsyncIterator[None]] | None) -> list[PhaseRun]:
    """Typing, then scrolling (with ``while_scrolling`` running alongside), each sampled at both ends."""
    runs: list[PhaseRun] = []
    for name in ("typing", "scrolling"):
        cpu_start, bytes_start = CpuSample.take(pid), await receiver.bytes_received()
        side = None
        if name == "scrolling" and while_scrolling is not None:
            side = asyncio.create_task(_drain(while_scrolling(time.monotonic() + plan.phase_seconds)))
        result = await asyncio.to_thread(workload.phase, name, plan.phase_seconds)
        if side is not None:
            await side
        cpu_end, bytes_end = CpuSample.take(pid), await receiver.bytes_received()
        runs.append(PhaseRun(result, (cpu_start, cpu_end), (bytes_start, bytes_end)))
    return runs


async def _drain(steps: AsyncIterator[None]) -> None:
    async for _ in steps:
        pass


async def _settled_psnr(receiver: StreamReceiver, display: str) -> float | None:
    await asyncio.sleep(SETTLE_SECONDS)
    if not receiver.frames:
        return None
    source = await asyncio.to_thread(_grab_luma, display)
    received = await receiver.latest_rgb()
    return await asyncio.to_thread(lambda: psnr(luma(received), source))


def _stream(receiver: StreamReceiver, name: str, phases: list[PhaseRun], settled: float | None) -> PipelineRun:
    return PipelineRun(name, receiver.wall_clock, list(receiver.frames), phases,
                       settled if settled is not None else math.nan, math.nan)


async def webrtc_run(broker: BrokerProcess, rig: Rig, workload: WorkloadProcess, cell: Cell, system: str,
                     plan: Plan, serial: int) -> SystemRun:
    """Deskhand or the naive pipeline through the cell's link, as the module docstring says."""
    naive = system == "naive"
    receiver = AiortcReceiver(NAMES[system], WIDTH, HEIGHT)
    watch = FrameWatch()

    def on_frame(frame: av.VideoFrame, arrived: float) -> None:
        receiver.on_frame(frame, arrived)
        watch.offer(frame, arrived)

    source = await asyncio.to_thread(_grab_luma, rig.xvfb.display)
    trace = rig.scratch / f"input-{serial}.trace"
    sent: dict[int, float] = {}
    with receiver_hooks_off() if naive else contextlib.nullcontext():
        async with live_session(
            broker, rig.xvfb.env, "--consent", "view,control", "--insecure", "--trace-input", str(trace),
            subject="link_sweep benchmark", on_frame=on_frame,
            host_module="bench.naive_host" if naive else "host_client.cli", wrap=rig.net.wrap("user"),
        ) as live:
            receiver.view = live.view
            await live.consented(CONNECT_TIMEOUT)
            first = await watch.first_legible(source, time.monotonic() + plan.first_frame_timeout)
            consent_wall = (await trail_moments(live.console, live.session_id))["consent.changed"]
            consent = consent_wall - (time.time() - time.monotonic())
            control = await _control_open(live.view, plan.first_frame_timeout)
            phases = await _phases(workload, receiver, live.host.pid, plan,
                                   (lambda until: _moves(live.view, until, sent, plan)) if control else None)
            settled = await _settled_psnr(receiver, rig.xvfb.display)
            await asyncio.sleep(1.0)  # the last moves' trace lines
    applied = _trace(trace)
    latencies = [(applied[seq] - at) * 1000 for seq, at in sent.items() if seq in applied]
    return SystemRun(
        cell, system, None if first is None else max(0.0, first - consent), plan.first_frame_timeout,
        figures(_stream(receiver, NAMES[system], phases, settled)), settled,
        latencies if control else None, len(sent), "" if control else "control never opened",
    )


async def _control_open(view: RemoteView, timeout: float) -> bool:
    try:
        await view.wait_for_control(timeout)
    except Exception:  # noqa: BLE001 - reported as "control never opened"
        return False
    return True


async def _moves(view: RemoteView, until: float, sent: dict[int, float], plan: Plan) -> AsyncIterator[None]:
    """A pointer move every :data:`INPUT_INTERVAL` over the editor until ``until``, on the plan's channel;
    ``sent`` gets seq -> time."""
    index = 0
    while time.monotonic() < until:
        x, y = 0.1 + 0.4 * ((index * 37) % 100) / 100, 0.2 + 0.4 * ((index * 53) % 100) / 100
        sent[view.move(x, y, reliable=plan.moves_channel == INPUT_CHANNEL)] = time.monotonic()
        index += 1
        yield
        await asyncio.sleep(INPUT_INTERVAL)


def _trace(path: Path) -> dict[int, float]:
    """The host's input trace: seq -> when it injected it."""
    if not path.exists():
        return {}
    applied: dict[int, float] = {}
    for line in path.read_text("utf-8").splitlines():
        seq, at = line.split()
        applied[int(seq)] = float(at)
    return applied


async def vnc_run(rig: Rig, workload: WorkloadProcess, cell: Cell, plan: Plan) -> SystemRun:
    """x11vnc in the user namespace through the TCP relay (delay) and nftables (loss)."""
    from bench.vnc_receiver import vnc_receiver  # late: it needs asyncvnc2

    net = rig.net
    started: list[float] = []

    @contextlib.contextmanager
    def route(served_at: tuple[str, int]) -> Iterator[tuple[str, int]]:
        lossy = tcp_loss(net, served_at[1], cell.loss_percent / 100) if cell.loss_percent else contextlib.nullcontext()
        with DelayedTcpRelay.start(net, served_at, cell.rtt_ms / 2000) as relay, lossy:
            started.append(time.monotonic())
            yield PUBLIC_IP, relay.port

    source = await asyncio.to_thread(_grab_luma, rig.xvfb.display)
    async with vnc_receiver(rig.xvfb.env, WIDTH, HEIGHT, name=NAMES["x11vnc"], listen=net.address("user"),
                            wrap=net.wrap("user"), route=route, timeout=CONNECT_TIMEOUT) as (receiver, pid):
        first = await vnc_first_legible(receiver, source, started[0] + plan.first_frame_timeout)
        phases = await _phases(workload, receiver, pid, plan, None)
        settled = await _settled_psnr(receiver, rig.xvfb.display)
    return SystemRun(
        cell, "x11vnc", None if first is None else first - started[0], plan.first_frame_timeout,
        figures(_stream(receiver, NAMES["x11vnc"], phases, settled)), settled, None,
    )


# --- the sweep ------------------------------------------------------------------------------


async def measure(rig: Rig, workload: WorkloadProcess, cells: Sequence[Cell], systems: Sequence[str],
                  plan: Plan) -> list[SystemRun]:
    """Every system in every cell, one after another; a failure is a row, not the end of the sweep."""
    net = rig.net
    env = {**rig.coturn.broker_env("udp"), "DESKHAND_TURN_URLS": f"turn:{PUBLIC_IP}:{RELAY_PORT}?transport=udp"}
    runs: list[SystemRun] = []
    with net.entered("tech"), relay_broker(net, env) as broker:
        for cell in cells:
            with emulated_link(net, cell, loss_seed=plan.loss_seed):
                for system in systems:
                    await asyncio.to_thread(workload.reset)
                    await asyncio.sleep(0.5)
                    print(f"== {cell.words()}: {system}", flush=True)
                    try:
                        if system == "x11vnc":
                            run = await vnc_run(rig, workload, cell, plan)
                        else:
                            run = await webrtc_run(broker, rig, workload, cell, system, plan, len(runs))
                    except Exception as exc:  # noqa: BLE001 - one failed run is reported, the sweep goes on
                        run = SystemRun(cell, system, None, plan.first_frame_timeout, None, None, None,
                                        note=f"failed: {type(exc).__name__}: {exc}".replace("|", "/")[:200])
                    runs.append(run)
                    print(sweep_table([run]).splitlines()[-1], flush=True)
    return runs


def conditions(cells: Sequence[Cell], systems: Sequence[str], plan: Plan, load: tuple[str, str]) -> list[str]:
    """What the figures were measured under."""
    return [
        *machine_conditions(),
        f"load average (1, 5, 15 min) at the start: {load[0]}; at the end: {load[1]} (two cores, shared)",
        f"coturn {coturn_version()}; {len(cells)} cells ({'; '.join(c.words() for c in cells)}); "
        f"systems {', '.join(systems)}",
        "network namespaces on one machine: the broker and coturn in the relay namespace, the host (or x11vnc) in the "
        "user's, the console (or VNC client) in the technician's; the user's link: tbf at the rate on both ends "
        "(200 ms queue); WebRTC media relayed over TURN/UDP behind a user-space relay adding RTT/2 and the loss each "
        f"way to the user's packets (seed {plan.loss_seed}: the same packets lost in every run); VNC over TCP through "
        "a split TCP relay adding RTT/2 each way, loss by nftables (numgen random) on arrival at both ends of the "
        "user's link",
        f"workload: bench/workload.py on Xvfb 1920x1080, reset (still) before each run; typing then scrolling, "
        f"{plan.phase_seconds:g} s each, a mark every 250 ms +- 50 ms; a pointer move every "
        f"{INPUT_INTERVAL * 1000:g} ms while scrolling (Deskhand and naive: on the {plan.moves_channel} channel, "
        f"{MOVES_CHANNELS[plan.moves_channel]}; console to injected)",
        f"first legible frame: luma PSNR >= {LEGIBLE_DB:g} dB against the still screen, from the host's consent "
        f"(WebRTC) or the connect (VNC), waited for {plan.first_frame_timeout:g} s; sharpness: luma PSNR "
        f"{SETTLE_SECONDS:g} s after scrolling ends; marks p95 counts a missed mark as never arriving",
        "deskhand: deskhand-host as shipped (recording, uploaded over the same uplink); "
        "naive: bench/naive_host.py (VP8, aiortc's encoder, no Deskhand hooks); "
        "x11vnc: Debian's x11vnc -threads, Zlib, bench/vnc_receiver.py",
    ]


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def parse_options(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line; exits 2 naming what is wrong."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rates", default=",".join(f"{r:g}" for r in RATES_MBIT), help="Mbit/s, comma-separated")
    parser.add_argument("--rtt", default=",".join(f"{r:g}" for r in ROUND_TRIPS_MS), help="round trips added, ms")
    parser.add_argument("--loss", default=",".join(f"{r:g}" for r in LOSSES_PERCENT), help="loss each way, %%")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"among {', '.join(SYSTEMS)}")
    parser.add_argument("--quick", action="store_true", help="rates 1,2.5,8, RTT 0,150, no loss (the other lists ignored)")
    parser.add_argument("--phase-seconds", type=float, default=5.0, help="typing and scrolling each (default 5)")
    parser.add_argument("--first-frame-timeout", type=float, default=15.0,
                        help="seconds to wait for the first legible frame (default 15)")
    parser.add_argument("--write-docs", action="store_true", help="replace the figures in docs/benchmarks.md")
    parser.add_argument("--docs-section", default="link_sweep", choices=DOCS_SECTIONS,
                        help="which section --write-docs replaces (default link_sweep; link_sweep_typing: the "
                             "typing target's cells, --rates 2.5 --loss 1; link_sweep_reliable: the input target's with "
                             "--rates 1 --moves input)")
    parser.add_argument("--moves", default=POINTER_CHANNEL, choices=tuple(MOVES_CHANNELS),
                        help="the channel of the input figure's pointer moves (default pointer, as the consoles "
                             "send them; input: the reliable, ordered channel of keys and clicks)")
    parser.add_argument("--loss-seed", type=int, default=1,
                        help="seed of the WebRTC relay's losses (default 1: every run loses the same packets; "
                             "another seed is another draw)")
    options = parser.parse_args(argv)
    try:
        if options.quick:
            options.rates, options.rtt, options.loss = QUICK["rates"], QUICK["rtts"], QUICK["losses"]
        else:
            options.rates = parse_numbers(options.rates, "rates (Mbit/s)", 0.1, 1000)
            options.rtt = parse_numbers(options.rtt, "round trips (ms)", 0, 2000)
            options.loss = parse_numbers(options.loss, "losses (%)", 0, 50)
        options.systems = parse_systems(options.systems)
    except ValueError as bad:
        parser.error(str(bad))
    if not (math.isfinite(options.phase_seconds) and 1 <= options.phase_seconds <= 600):
        parser.error(f"--phase-seconds is between 1 and 600, not {options.phase_seconds:g}")
    if not 0 <= options.loss_seed < 2**32:
        parser.error(f"--loss-seed is from 0 to 2**32 - 1, not {options.loss_seed}")
    if not (math.isfinite(options.first_frame_timeout) and 1 <= options.first_frame_timeout <= 600):
        parser.error(f"--first-frame-timeout is between 1 and 600, not {options.first_frame_timeout:g}")
    return options


def report(runs: Sequence[SystemRun]) -> str:
    return sweep_table(runs) + "\n\n**Targets (issue 19)**\n\n" + targets_table(runs)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    cells = grid(options.rates, options.rtt, options.loss)
    plan = Plan(options.phase_seconds, options.first_frame_timeout, options.moves, options.loss_seed)
    if "x11vnc" in options.systems:
        try:
            ensure_vnc_side()  # here: inside the rig's namespaces apt reaches nothing
        except RuntimeError as exc:
            print(f"link_sweep: {exc}", file=sys.stderr)
            return 2
    start_load = _load()
    try:
        with relay_rig() as rig, WorkloadProcess(rig.xvfb.env) as workload:
            runs = asyncio.run(measure(rig, workload, cells, options.systems, plan))
    except UNAVAILABLE as exc:
        print(f"link_sweep: {exc}", file=sys.stderr)
        return 2
    publish(options.docs_section, conditions(cells, options.systems, plan, (start_load, _load())), report(runs),
            write=options.write_docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
