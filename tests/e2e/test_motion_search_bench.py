"""bench/motion_search.py runs end to end: a real Xvfb, the scripted desktop, the real encoder both ways."""

from __future__ import annotations

import re

import pytest

from bench import motion_search

pytestmark = pytest.mark.slow


def test_every_phase_is_encoded_both_ways_and_the_scroll_is_found(capsys: pytest.CaptureFixture[str]) -> None:
    assert motion_search.main(["--seconds", "1", "--fps", "5"]) == 0
    printed = capsys.readouterr().out
    rows = re.findall(r"^\| (\w+) \| (Deskhand|superfast's own) \(.*?\) \| (\d+) \| ([\d.]+) kB \|", printed, re.M)
    assert sorted({(phase, who) for phase, who, _n, _kb in rows}) == sorted(
        (phase, who) for phase in motion_search.PHASES for who in ("Deskhand", "superfast's own")
    )
    mean = {(phase, who): float(kb) for phase, who, _n, kb in rows}
    assert all(int(n) >= 3 for _phase, _who, n, _kb in rows)
    assert mean["scrolling", "Deskhand"] < mean["scrolling", "superfast's own"] / 2
    assert "Xvfb 1920x1080x24" in printed and "grabbed at 5 fps" in printed
