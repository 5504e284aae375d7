"""The link-cut recovery benchmark runs one short cut end to end, so that it cannot rot.

Not a measurement: no time is compared with a bound (the 5 s target is the benchmark's to
report; tests/netns/test_recovery.py checks it for a 10 s cut). What is checked is that
each moment was read in a possible order, that the session's trail marked the gap (the
benchmark raises otherwise) and that the report prints the row and the target line.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.relay_recovery import measure, report
from tests.support.coturn import CoturnServer
from tests.support.netns import NetTopology
from tests.support.xvfb import XvfbServer

pytestmark = pytest.mark.slow


async def test_a_cut_is_timed_and_reported(
    net_topology: NetTopology, coturn: CoturnServer, xvfb: XvfbServer, tmp_path: Path
) -> None:
    (recovery,) = await measure(net_topology, coturn, xvfb.env, (5.0,), runs=1, scratch=tmp_path)
    assert recovery.cut == 5.0
    # Noticed while the link was down; control is never back before the host is heard again.
    assert 0 < recovery.noticed < 5.0, recovery
    assert 0 < recovery.reconnected <= recovery.control_back, recovery
    assert recovery.picture_back > 0, recovery

    printed = report([recovery])
    assert "| 5 s | 1 |" in printed
    assert "within 5 s of the link: " in printed and "of 1." in printed
