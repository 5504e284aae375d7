"""The screen-streaming benchmark's pure logic: marker matching, frame rates, figures and verdicts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.cpu import CpuSample, percent_of_core
from bench.stream_figures import (
    DESKHAND_AIORTC,
    X11VNC,
    PhaseRun,
    PipelineRun,
    comparison_table,
    figures,
    luma,
    per_mark_latencies,
    pipeline_table,
    psnr,
    targets_table,
)
from bench.stream_marks import (
    MARKER_PALETTE,
    FrameSeen,
    Mark,
    frames_per_second,
    marker_box,
    marker_centre,
    marker_colour,
    match_latencies,
    palette_slot,
)
from bench.workload import PhaseResult, parse_phase

SLOTS = len(MARKER_PALETTE)


def marks_every(interval: float, count: int, start: float = 10.0) -> list[Mark]:
    return [Mark(i, start + i * interval, 1000 + start + i * interval) for i in range(count)]


# --- stream_marks ---------------------------------------------------------------------------

def test_palette_slot_finds_each_colour_and_tolerates_coding_noise() -> None:
    for slot, (r, g, b) in enumerate(MARKER_PALETTE):
        assert palette_slot((r, g, b)) == slot
        assert palette_slot((min(255, r + 20), max(0, g - 20), b)) == slot


def test_palette_slot_refuses_colours_far_from_the_palette() -> None:
    assert palette_slot((0, 0, 0)) == -1
    assert palette_slot((255, 255, 255)) == -1
    r, g, b = MARKER_PALETTE[0]
    assert palette_slot((r, g, b + 100)) == -1  # past the tolerance on one channel


def test_marker_sits_inside_the_screen_and_centre_inside_the_marker() -> None:
    left, top, right, bottom = marker_box(1920, 1080)
    assert 0 <= left < right <= 1920 and 0 <= top < bottom <= 1080
    x, y = marker_centre(1920, 1080)
    assert left < x < right and top < y < bottom
    assert marker_colour(SLOTS) == marker_colour(0)


def test_match_latencies_takes_the_first_frame_showing_each_mark() -> None:
    marks = marks_every(0.25, 3)
    frames = [
        FrameSeen(10.00, -1),  # before the first mark was drawn: ignored
        FrameSeen(10.04, 0),
        FrameSeen(10.06, 0),  # the same colour again: not a second latency
        FrameSeen(10.28, 0),  # still the old colour after mark 1
        FrameSeen(10.30, 1),
        FrameSeen(10.55, 2),
    ]
    latencies, missed = match_latencies(marks, frames)
    assert missed == 0
    assert [round(v) for v in latencies] == [40, 50, 50]


def test_a_mark_no_frame_showed_is_missed_not_matched_later() -> None:
    marks = marks_every(0.25, 3)
    frames = [FrameSeen(10.05, 0), FrameSeen(10.55, 2)]  # mark 1 was overwritten before any frame showed it
    latencies, missed = match_latencies(marks, frames)
    assert missed == 1
    assert [round(v) for v in latencies] == [50, 50]
    assert [None if v is None else round(v) for v in per_mark_latencies(marks, frames)] == [50, None, 50]


def test_a_colour_repeated_six_marks_later_does_not_count_for_the_earlier_mark() -> None:
    marks = marks_every(0.25, SLOTS + 1)  # mark 6 paints mark 0's colour again
    assert marks[SLOTS].index % SLOTS == 0
    frames = [FrameSeen(marks[SLOTS].painted + 0.03, 0)]  # only mark 6 ever reached the receiver
    latencies, missed = match_latencies(marks, frames)
    assert [round(v) for v in latencies] == [30]  # mark 6's, not 1.53 s for mark 0
    assert missed == SLOTS
    assert per_mark_latencies(marks, frames)[0] is None
    latency = per_mark_latencies(marks, frames)[SLOTS]
    assert latency is not None and round(latency) == 30


def test_wall_clock_receivers_are_matched_on_wall_clock_times() -> None:
    marks = [Mark(i, 5000 + i * 0.25, 10 + i * 0.25) for i in range(2)]  # a browser's clock is behind
    frames = [FrameSeen(marks[0].painted_wall + 0.02, 0), FrameSeen(marks[1].painted_wall + 0.07, 1)]
    latencies, missed = match_latencies(marks, frames, wall_clock=True)
    assert missed == 0 and [round(v) for v in latencies] == [20, 70]
    assert match_latencies(marks, frames)[1] == 2  # the same frames on the monotonic clock match nothing


def test_frames_per_second_counts_the_half_open_interval() -> None:
    frames = [FrameSeen(t / 10, 0) for t in range(0, 30)]  # 10 a second over 0.0 .. 2.9
    assert frames_per_second(frames, 0.0, 1.0) == 10
    assert frames_per_second(frames, 0.95, 1.0) == 0
    assert frames_per_second(frames, 5.0, 6.0) == 0
    with pytest.raises(ValueError, match="end must be after start"):
        frames_per_second(frames, 1.0, 1.0)


# --- figures ----------------------------------------------------------------------------------

def test_psnr_and_luma() -> None:
    image = np.full((4, 4, 3), 100, dtype=np.uint8)
    assert math.isinf(psnr(luma(image), luma(image)))
    noisy = image.copy()
    noisy[0, 0] = 110  # one pixel off by 10 in luma: MSE 100 / 16
    assert psnr(luma(noisy), luma(image)) == pytest.approx(10 * math.log10(255**2 / (100 / 16)), rel=1e-3)
    assert luma(np.array([[[255, 255, 255]]], dtype=np.uint8))[0, 0] == pytest.approx(255, abs=0.01)
    with pytest.raises(ValueError, match="differ in size"):
        psnr(luma(image), luma(image[:2]))


def test_cpu_percent_over_intervals() -> None:
    first = (CpuSample(1, 0.0, 1.0), CpuSample(1, 2.0, 1.5))
    second = (CpuSample(1, 5.0, 2.0), CpuSample(1, 7.0, 3.5))
    assert percent_of_core([first, second]) == pytest.approx(100 * 2.0 / 4.0)
    with pytest.raises(ValueError, match="no time"):
        percent_of_core([])
    with pytest.raises(ValueError, match="different processes"):
        CpuSample(2, 3.0, 0.0).percent_since(first[0])


def _phase(name: str, start: float, seconds: float, marks: list[Mark], cpu: float, bytes_: int) -> PhaseRun:
    result = PhaseResult(name, start, start + seconds, 1000 + start, 1000 + start + seconds, 0, marks)
    return PhaseRun(result, (CpuSample(1, start, 0.0), CpuSample(1, start + seconds, cpu * seconds / 100)), (0, bytes_))


def _run(name: str, latency: float, fps: float, cpu: float, static_cpu: float, ssim: float) -> PipelineRun:
    """A pipeline that shows every mark ``latency`` s late and delivers ``fps`` frames a second."""
    phases, marks_so_far, frames = [], 0, []
    start = 0.0
    for phase, seconds in (("typing", 4.0), ("scrolling", 4.0), ("moving", 4.0), ("static", 5.0)):
        count = 0 if phase == "static" else 16
        marks = [Mark(marks_so_far + i, start + 0.1 + i * 0.25, 0.0) for i in range(count)]
        marks_so_far += count
        frames += [FrameSeen(m.painted + latency, m.index % SLOTS) for m in marks]
        phases.append(_phase(phase, start, seconds, marks, static_cpu if phase == "static" else cpu, 1_000_000))
        start += seconds + 1
    # Frames between marks (same colour as the last mark), to reach ``fps`` in the continuous phases.
    extra = [FrameSeen(p.result.start + k / fps + 0.001, -1) for p in phases[1:3] for k in range(int(fps * 4) - 16)]
    return PipelineRun(name, False, sorted(frames + extra, key=lambda f: f.arrived), phases, 40.0, ssim)


def test_figures_per_phase_and_overall() -> None:
    f = figures(_run(DESKHAND_AIORTC, 0.030, 30, 50, 1, 0.99))
    assert f.missed == 0 and len(f.latencies) == 48
    assert f.p(50) == pytest.approx(30) and f.p(95, "scrolling") == pytest.approx(30)
    assert f.phases["scrolling"].fps == pytest.approx(30)
    assert f.continuous_cpu == pytest.approx(50) and f.static_cpu == pytest.approx(1)
    assert f.phases["typing"].mbit_per_s == pytest.approx(2.0)  # 1 MB in 4 s
    assert math.isnan(f.p(50, "static"))
    table = pipeline_table(f)
    assert table.startswith(f"**{DESKHAND_AIORTC}**") and "| latency p50 | 30 ms |" in table


def test_targets_met_and_not_met() -> None:
    good = figures(_run(DESKHAND_AIORTC, 0.030, 30, 50, 1, 0.99))
    vnc = figures(_run(X11VNC, 0.045, 20, 40, 1, 0.992))  # sharper by less than SSIM_EQUAL
    table = targets_table({DESKHAND_AIORTC: good, X11VNC: vnc})
    rows = {line.split(" | ")[0].lstrip("| "): line.rsplit(" | ", 1)[1].rstrip(" |") for line in table.splitlines()[2:]}
    assert rows["latency p50 <= 50 ms (Python receiver)"] == "met"
    assert rows["< 3 % of a core on a static screen (host)"] == "met"
    assert rows["latency p50 <= 80 ms (Chromium)"] == "not run"
    assert [v for k, v in rows.items() if k.startswith("better latency and fps than x11vnc")] == ["met"]

    slow = figures(_run(DESKHAND_AIORTC, 0.120, 25, 50, 5, 0.95))
    rows = targets_table({DESKHAND_AIORTC: slow, X11VNC: vnc})
    assert rows.count("NOT met") == 5  # p50, p95, fps, static CPU, against x11vnc
    assert "not run" in rows  # Chromium


def test_comparison_ratios() -> None:
    ours = figures(_run(DESKHAND_AIORTC, 0.030, 30, 50, 1, 0.99))
    vnc = figures(_run(X11VNC, 0.060, 20, 25, 1, 0.99))
    table = comparison_table({DESKHAND_AIORTC: ours, X11VNC: vnc})
    assert "| latency p50 | 30 ms | 60 ms | 0.50 |" in table
    assert "| fps, continuous | 30.0 | 20.0 | 1.50 |" in table
    assert "| host CPU %, continuous | 50.0 | 25.0 | 2.00 |" in table
    assert "did not run" in comparison_table({X11VNC: vnc})


# --- workload commands ------------------------------------------------------------------------

def test_phase_command_is_checked() -> None:
    assert parse_phase("scrolling 10") == ("scrolling", 10.0)
    for bad, message in (
        ("scrolling", "NAME SECONDS"),
        ("dancing 10", "not one of"),
        ("typing ten", "not a number"),
        ("typing 0", "above 0"),
        ("typing nan", "above 0"),
        ("typing 99999", "at most"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_phase(bad)


def test_a_mark_at_the_end_of_a_phase_is_bounded_by_the_next_phase_marks() -> None:
    """The last marks of a phase are matched with the next phase's marks in view, not to the end of time."""
    first = [Mark(i, 10 + i * 0.25, 0.0) for i in range(3)]
    second = [Mark(3 + i, 20 + i * 0.25, 0.0) for i in range(SLOTS)]  # mark 6 (second[3]) repaints mark 0's colour
    frames = [FrameSeen(10.03, 0), FrameSeen(10.28, 1)]  # mark 2 never arrived ...
    frames += [FrameSeen(m.painted + 0.02, m.index % SLOTS) for m in second]  # ... and its colour came back as mark 8
    run = PipelineRun("p", False, frames, [_phase("typing", 9.0, 3.0, first, 10, 0),
                                           _phase("scrolling", 19.0, 3.0, second, 10, 0)], 40.0, 0.99)
    f = figures(run)
    assert f.phases["typing"].missed == 1 and len(f.phases["typing"].latencies) == 2
    assert f.phases["scrolling"].missed == 0 and f.missed == 1


def test_latency_targets_count_missed_marks_as_never_arriving() -> None:
    from bench.stream_figures import DESKHAND_CHROMIUM, PipelineFigures

    dropping = PipelineFigures(DESKHAND_CHROMIUM, {}, [30.0] * 10, 20, 30.0, 0.99)
    assert dropping.p(50) == 30  # the marks it showed were quick ...
    assert math.isinf(dropping.p_counting_missed(50))  # ... but most never showed
    row = next(line for line in targets_table({DESKHAND_CHROMIUM: dropping}).splitlines() if "Chromium" in line)
    assert "missed (20 of 30 marks missed)" in row and row.endswith("| NOT met |")
