"""The link sweep's cells, options and tables (bench/sweep_figures.py, bench/link_sweep.py's command line)."""

from __future__ import annotations

import math

import pytest

from bench import link_sweep
from bench.stream_figures import PhaseFigures, PipelineFigures
from bench.sweep_figures import Cell, SystemRun, grid, parse_numbers, parse_systems, sweep_table, targets_table


def test_the_grid_runs_each_rate_through_every_round_trip_and_loss() -> None:
    cells = grid((1.0, 2.5), (0.0, 150.0), (0.0,))
    assert cells == [Cell(1.0, 0.0, 0.0), Cell(1.0, 150.0, 0.0), Cell(2.5, 0.0, 0.0), Cell(2.5, 150.0, 0.0)]
    assert cells[1].words() == "1 Mbit/s, 150 ms, 0 % loss"


def test_lists_are_numbers_in_range_and_systems_known() -> None:
    assert parse_numbers("2.5, 1,1", "rates", 0.1, 1000) == (2.5, 1.0)
    for bad in ("", "fast", "0", "nan", "1,2000"):
        with pytest.raises(ValueError, match="rates"):
            parse_numbers(bad, "rates", 0.1, 1000)
    assert parse_systems("x11vnc,deskhand") == ("deskhand", "x11vnc")
    with pytest.raises(ValueError, match="not teamviewer"):
        parse_systems("deskhand,teamviewer")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rates", "0"], "between 0.1 and 1000"),
        (["--rtt", "soon"], "numbers separated by commas"),
        (["--loss", "60"], "between 0 and 50"),
        (["--systems", ","], "not nothing"),
        (["--phase-seconds", "0.5"], "between 1 and 600"),
        (["--first-frame-timeout", "inf"], "between 1 and 600"),
        (["--moves", "control"], "argument --moves: invalid choice: 'control'"),
    ],
)
def test_the_command_line_names_what_is_wrong(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        link_sweep.main(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_without_x11vnc_or_a_way_to_install_it_the_sweep_stops_before_its_rig(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)  # neither x11vnc nor apt-get
    monkeypatch.setattr(link_sweep, "relay_rig", lambda: pytest.fail("the rig was started"))
    monkeypatch.setattr("bench.vnc_receiver._asyncvnc2", lambda: None)
    assert link_sweep.main(["--quick", "--systems", "x11vnc"]) == 2
    assert "install the x11vnc package" in capsys.readouterr().err


def test_quick_is_the_reduced_grid() -> None:
    options = link_sweep.parse_options(["--quick", "--systems", "deskhand"])
    assert len(grid(options.rates, options.rtt, options.loss)) == 6 and options.systems == ("deskhand",)


def test_the_loss_seed_is_one_draw_unless_told_and_a_bad_one_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert link_sweep.parse_options(["--quick"]).loss_seed == 1
    assert link_sweep.parse_options(["--quick", "--loss-seed", "7"]).loss_seed == 7
    for bad in ("-1", str(2**32), "x"):
        with pytest.raises(SystemExit) as exited:
            link_sweep.parse_options(["--quick", "--loss-seed", bad])
        assert exited.value.code == 2
    assert "--loss-seed" in capsys.readouterr().err


def _stream(latencies: list[float], missed: int, fps: float) -> PipelineFigures:
    phases = {name: PhaseFigures(name, 5.0, latencies, missed, fps, 10.0, 1.0) for name in ("typing", "scrolling")}
    return PipelineFigures("x", phases, latencies * 2, missed * 2, 42.0, math.nan)


def test_a_run_without_a_picture_says_so_and_counts_missed_marks_as_never() -> None:
    cell = Cell(1.0, 150.0, 0.0)
    blind = SystemRun(cell, "deskhand", None, 15.0, _stream([], 20, 0.0), None, [], inputs_sent=10)
    vnc = SystemRun(cell, "x11vnc", 1.2, 15.0, _stream([300.0] * 20, 0, 5.0), 50.0, None)
    table = sweep_table([vnc, blind])
    deskhand_row, vnc_row = table.splitlines()[2:]
    assert "| deskhand | none within 15 s | missed / missed; missed / missed | 40 / 40 | 0.0 | 0.0 |" in deskhand_row
    assert "| missed (10 of 10 lost) |" in deskhand_row
    assert "| x11vnc | 1.20 s | 300 / 300; 300 / 300 | 0 / 40 |" in vnc_row and "| 50.0 dB | n/a |" in vnc_row
    targets = targets_table([vnc, blind])
    assert "| first legible frame <= 1.5 s at 1 Mbit/s and 150 ms | NOT met (0 of 1 cells) |" in targets
    assert "| ahead of x11vnc on first legible frame and mark p50, every cell below 4 Mbit/s | NOT met" in targets
    assert "with 1 % loss | not run |" in targets


def test_targets_met() -> None:
    cell = Cell(1.0, 150.0, 0.0)
    fast = SystemRun(cell, "deskhand", 0.9, 15.0, _stream([100.0] * 20, 0, 20.0), 45.0, [120.0] * 10, inputs_sent=10)
    vnc = SystemRun(cell, "x11vnc", 1.2, 15.0, _stream([300.0] * 20, 0, 5.0), 50.0, None)
    targets = targets_table([fast, vnc])
    assert targets.count("| met |") == 4, targets
    failed = SystemRun(cell, "deskhand", None, 15.0, None, None, None, note="failed: boom")
    assert "| failed: boom |" in sweep_table([failed])


def test_the_typing_target_is_judged_on_the_typing_phases_marks() -> None:
    cell = Cell(2.5, 150.0, 1.0)
    typing = PhaseFigures("typing", 5.0, [200.0] * 20, 0, 16.0, 10.0, 1.0)
    scrolling = PhaseFigures("scrolling", 5.0, [400.0] * 10, 10, 6.0, 10.0, 2.0)
    stream = PipelineFigures("x", {"typing": typing, "scrolling": scrolling}, [200.0] * 20 + [400.0] * 10, 10, 42.0, math.nan)
    run = SystemRun(cell, "deskhand", 2.0, 15.0, stream, 41.0, [100.0] * 10, inputs_sent=10)
    assert math.isinf(run.mark_latency(95)) and run.mark_latency(95, "typing") == 200.0
    assert "| 400 / missed; 200 / 200 |" in sweep_table([run])
    assert "with 1 % loss | met |" in targets_table([run])
    slow = PhaseFigures("typing", 5.0, [200.0] * 18, 2, 16.0, 10.0, 1.0)
    late = SystemRun(cell, "deskhand", 2.0, 15.0, PipelineFigures("x", {"typing": slow}, [200.0] * 18, 2, 42.0, math.nan),
                     41.0, None)
    assert "with 1 % loss | NOT met (0 of 1 cells) |" in targets_table([late]), "a missed typing mark counts as never"
