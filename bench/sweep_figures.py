"""The link sweep's cells, what one system did in one, and the tables: pure logic, no I/O.

:mod:`bench.link_sweep` runs each :class:`Cell` (a rate, a round trip, a loss) for each
system and hands what it saw to :class:`SystemRun`; :func:`sweep_table` and
:func:`targets_table` print them. The marks and frame rates come from
:mod:`bench.stream_figures` (``PipelineFigures``), as in the loopback benchmark.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from bench.report import percentile
from bench.stream_figures import PipelineFigures

RATES_MBIT = (1.0, 1.5, 2.5, 4.0, 8.0, 20.0)
ROUND_TRIPS_MS = (0.0, 150.0)
LOSSES_PERCENT = (0.0, 2.0)
SYSTEMS = ("deskhand", "naive", "x11vnc")
"""Deskhand as shipped, the naive aiortc pipeline (bench/naive_host.py), x11vnc over TCP."""

LEGIBLE_DB = 30.0
"""A frame is legible when its luma PSNR against the screen is at least this."""
SHARP_DB = 40.0
"""Issue 19: at least this 2 s after the screen settles, at every rate."""


@dataclass(frozen=True, order=True)
class Cell:
    """One link: the user's rate both ways, the round trip added on the user's leg, random loss each way."""

    rate_mbit: float
    rtt_ms: float
    loss_percent: float

    def words(self) -> str:
        return f"{self.rate_mbit:g} Mbit/s, {self.rtt_ms:g} ms, {self.loss_percent:g} % loss"


def grid(rates: Sequence[float], rtts: Sequence[float], losses: Sequence[float]) -> list[Cell]:
    """Every combination, slowest and farthest first within each rate (the order they run in)."""
    return [Cell(rate, rtt, loss) for rate in rates for rtt in rtts for loss in losses]


def parse_numbers(text: str, what: str, low: float, high: float) -> tuple[float, ...]:
    """Comma-separated numbers each within [low, high], in the order given, without repeats."""
    try:
        values = tuple(dict.fromkeys(float(part) for part in text.split(",") if part.strip()))
    except ValueError:
        raise ValueError(f"{what} are numbers separated by commas, not {text!r}") from None
    if not values or any(not (math.isfinite(v) and low <= v <= high) for v in values):
        raise ValueError(f"each of the {what} is between {low:g} and {high:g}, not {text!r}")
    return values


def parse_systems(text: str) -> tuple[str, ...]:
    """Comma-separated system names among :data:`SYSTEMS`, in the order of :data:`SYSTEMS`."""
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in chosen if name not in SYSTEMS]
    if unknown or not chosen:
        raise ValueError(f"systems are among {', '.join(SYSTEMS)}, not {', '.join(unknown) or 'nothing'}")
    return tuple(name for name in SYSTEMS if name in chosen)


@dataclass(frozen=True)
class SystemRun:
    """What one system did in one cell. ``None`` figures mean not measured; ``note`` says why."""

    cell: Cell
    system: str
    first_legible: float | None
    """Seconds from the start (the host's consent; VNC: the connect) to the first legible frame; None: none."""
    waited: float
    """How long the bench waited for it."""
    stream: PipelineFigures | None
    """Marks, frame rates and bitrates of the typing and scrolling phases."""
    settled_psnr: float | None
    """Luma PSNR of the newest frame 2 s after the screen settled, against the screen."""
    input_ms: Sequence[float] | None
    """Latency of each input applied on the host (None: the system cannot report it)."""
    inputs_sent: int = 0
    note: str = ""

    def mark_latency(self, q: float, phase: str | None = None) -> float:
        """Mark latency percentile ``q`` (ms) over all marks or one phase's, missed marks counted as never
        arriving (inf); nan: no marks."""
        if self.stream is None or (phase is not None and phase not in self.stream.phases):
            return math.nan
        return self.stream.p_counting_missed(q, phase)

    def fps(self, phase: str) -> float:
        if self.stream is None or phase not in self.stream.phases:
            return math.nan
        return self.stream.phases[phase].fps

    def input_latency(self, q: float) -> float:
        """Input latency percentile ``q`` (ms), inputs never applied counted as inf; nan: not measured."""
        if self.input_ms is None or self.inputs_sent == 0:
            return math.nan
        return percentile([*self.input_ms, *[math.inf] * (self.inputs_sent - len(self.input_ms))], q)


def _ms(value: float) -> str:
    if math.isnan(value):
        return "-"
    return "missed" if math.isinf(value) else f"{value:.0f}"


def _first(run: SystemRun) -> str:
    if run.first_legible is None:
        return f"none within {run.waited:g} s"
    return f"{run.first_legible:.2f} s"


def _db(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return "identical" if math.isinf(value) else f"{value:.1f} dB"


def _fps(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def _mbit(run: SystemRun) -> str:
    if run.stream is None:
        return "-"
    phases = [p for p in run.stream.phases.values()]
    seconds = sum(p.seconds for p in phases)
    return "-" if not seconds else f"{sum(p.mbit_per_s * p.seconds for p in phases) / seconds:.2f}"


def _missed(run: SystemRun) -> str:
    if run.stream is None:
        return "-"
    return f"{run.stream.missed} / {run.stream.missed + len(run.stream.latencies)}"


def _input(run: SystemRun) -> str:
    if run.input_ms is None:
        return "n/a"
    if run.inputs_sent == 0:
        return "-"
    lost = run.inputs_sent - len(run.input_ms)
    return _ms(run.input_latency(95)) + (f" ({lost} of {run.inputs_sent} lost)" if lost else "")


def sweep_table(runs: Sequence[SystemRun]) -> str:
    """One row per cell and system, as Markdown."""
    rows = [
        "| rate | RTT | loss | system | first legible frame | marks p50 / p95 (ms): all; typing | marks missed | fps typing "
        "| fps scrolling | Mbit/s | PSNR 2 s after settling | input p95 (ms) | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in sorted(runs, key=lambda r: (r.cell, SYSTEMS.index(r.system))):
        c = run.cell
        rows.append(
            f"| {c.rate_mbit:g} Mbit/s | {c.rtt_ms:g} ms | {c.loss_percent:g} % | {run.system} | {_first(run)} | "
            f"{_ms(run.mark_latency(50))} / {_ms(run.mark_latency(95))}; "
            f"{_ms(run.mark_latency(50, 'typing'))} / {_ms(run.mark_latency(95, 'typing'))} | {_missed(run)} | {_fps(run.fps('typing'))} | "
            f"{_fps(run.fps('scrolling'))} | {_mbit(run)} | {_db(run.settled_psnr)} | {_input(run)} | {run.note} |"
        )
    return "\n".join(rows)


def _verdict(results: Sequence[bool]) -> str:
    if not results:
        return "not run"
    met = sum(results)
    return "met" if met == len(results) else f"NOT met ({met} of {len(results)} cells)"


def targets_table(runs: Sequence[SystemRun]) -> str:
    """Issue 19's targets on the cells that ran: met, not met, or not run (cells missing)."""
    ours = [r for r in runs if r.system == "deskhand"]
    vnc = {r.cell: r for r in runs if r.system == "x11vnc"}

    def at(rate: float, rtt: float | None = None, loss: float | None = None) -> list[SystemRun]:
        return [r for r in ours if r.cell.rate_mbit == rate and (rtt is None or r.cell.rtt_ms == rtt)
                and (loss is None or r.cell.loss_percent == loss)]

    first = [r.first_legible is not None and r.first_legible <= 1.5 for r in at(1.0, 150.0)]
    typing = [r.fps("typing") >= 15 and r.mark_latency(95, "typing") <= r.cell.rtt_ms + 120 for r in at(2.5, loss=1.0)]
    sharp = [r.settled_psnr is not None and r.settled_psnr >= SHARP_DB for r in ours]
    inputs = [r.input_latency(95) <= r.cell.rtt_ms + 30 for r in at(1.0)]
    ahead: list[bool] = []
    for run in ours:
        other = vnc.get(run.cell)
        if other is None or run.cell.rate_mbit >= 4:
            continue
        ours_first = run.first_legible if run.first_legible is not None else math.inf
        theirs_first = other.first_legible if other.first_legible is not None else math.inf
        ahead.append(ours_first < theirs_first and run.mark_latency(50) < other.mark_latency(50))
    rows = [
        ("first legible frame <= 1.5 s at 1 Mbit/s and 150 ms", first),
        ("typing >= 15 fps and its marks' p95 <= RTT + 120 ms at 2.5 Mbit/s with 1 % loss", typing),
        (f"PSNR >= {SHARP_DB:g} dB 2 s after the screen settles, every cell", sharp),
        ("input p95 <= RTT + 30 ms at 1 Mbit/s while scrolling", inputs),
        ("ahead of x11vnc on first legible frame and mark p50, every cell below 4 Mbit/s", ahead),
    ]
    lines = ["| target (Deskhand) | |", "|---|---|"]
    lines += [f"| {name} | {_verdict(results)} |" for name, results in rows]
    return "\n".join(lines)
