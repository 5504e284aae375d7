"""The relay connect benchmark's table: spreads per path, and the relayed runs that met the 2 s target."""

from __future__ import annotations

from bench.relay_connect import Run, report
from protocol.route import Route

DIRECT = Route("host", "host")
RELAYED = Route("relay", "relay", "udp")


def test_each_path_has_its_spread_and_only_relayed_runs_count_towards_the_target() -> None:
    printed = report({
        "direct": [Run(0.5, 0.4, DIRECT), Run(9.0, 8.0, DIRECT)],  # slow, but direct: not counted
        "udp": [Run(1.0, 1.9, RELAYED), Run(2.5, 2.1, RELAYED), Run(1.2, 2.0, RELAYED)],
    })
    assert "| direct | 2 | direct | 0.50 s | 9.00 s | 0.50 s | 9.00 s | 0.40 s | 8.00 s | 0.40 s | 8.00 s |" in printed
    assert "| udp | 3 | relayed through TURN over UDP | 1.20 s | 2.50 s | 1.00 s | 2.50 s |" in printed
    assert "within 2 s of consent: 2 of 3." in printed


def test_a_report_of_direct_runs_only_has_no_target_line() -> None:
    assert "consent:" not in report({"direct": [Run(0.5, 0.4, DIRECT)]})
