"""The link sweep benchmark runs one small cell end to end, so that it cannot rot.

Not a measurement: no figure is compared with a target (that is the benchmark's to
report). One cell with delay and loss, so that the emulated link is used whole (tbf, the
UDP relay; for VNC the TCP relay and nftables' loss), phases of a second. What is checked
is that the system ran (no failure row), that each figure was read and is possible, and
that the report prints the row and the targets. x11vnc's run is not in the suite: it needs
the ``[bench]`` extras (asyncvnc2, the GPL VNC client the test environment does not
install); its link (the TCP relay and nftables' loss) is checked by
``tests/netns/test_tcp_link.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.link_sweep import Plan, measure, report
from bench.relay_connect import Rig
from bench.sweep_figures import Cell, SystemRun
from bench.workload import WorkloadProcess
from tests.support.coturn import CoturnServer
from tests.support.netns import NetTopology
from tests.support.xvfb import XvfbServer

pytestmark = pytest.mark.slow

CELL = Cell(rate_mbit=20.0, rtt_ms=40.0, loss_percent=1.0)
PLAN = Plan(phase_seconds=1.0, first_frame_timeout=10.0)


async def one_run(net: NetTopology, coturn: CoturnServer, xvfb: XvfbServer, scratch: Path, system: str) -> SystemRun:
    with WorkloadProcess(xvfb.env) as workload:
        (run,) = await measure(Rig(xvfb, net, coturn, scratch), workload, [CELL], (system,), PLAN)
    assert run.system == system and run.cell == CELL
    assert run.note == "", run.note
    assert run.stream is not None and set(run.stream.phases) == {"typing", "scrolling"}
    # A picture came (20 Mbit/s is plenty) after the start; marks were painted, and matched or missed.
    assert run.first_legible is not None and 0 < run.first_legible < PLAN.first_frame_timeout, run.first_legible
    assert len(run.stream.latencies) + run.stream.missed > 0
    assert run.settled_psnr is not None and run.settled_psnr > 0
    printed = report([run])
    assert f"| 20 Mbit/s | 40 ms | 1 % | {system} |" in printed and "**Targets (issue 19)**" in printed
    return run


async def test_deskhand_is_measured_in_a_cell(
    net_topology: NetTopology, coturn: CoturnServer, xvfb: XvfbServer, tmp_path: Path
) -> None:
    run = await one_run(net_topology, coturn, xvfb, tmp_path, "deskhand")
    # Inputs were sent while scrolling and timed from the host's trace.
    assert run.inputs_sent > 0 and run.input_ms is not None
    assert all(0 < ms < 10_000 for ms in run.input_ms), run.input_ms
