"""The relay connect benchmark runs a direct and a relayed session end to end, so that it cannot rot.

Not a measurement: no time is compared with a bound (the 2 s target is the benchmark's
to report). What is checked is that each path took the route it is named for, that the
two moments were read from the trail in their order, that the report prints both rows
and the target line (its command line is checked in tests/unit/test_bench_arguments.py).
"""

from __future__ import annotations

import pytest

from bench.relay_connect import measure, one_session, report
from tests.netns.conftest import relay_broker
from tests.support.coturn import CoturnServer
from tests.support.netns import NetTopology
from tests.support.xvfb import XvfbServer

pytestmark = pytest.mark.slow


async def test_a_direct_and_a_relayed_session_are_timed_and_reported(
    net_topology: NetTopology, coturn: CoturnServer, xvfb: XvfbServer
) -> None:
    results = await measure(net_topology, coturn, xvfb.env, ("direct", "udp"), runs=1)

    (direct,), (relayed,) = results["direct"], results["udp"]
    assert direct.route.words() == "direct"
    assert relayed.route.words() == "relayed through TURN over UDP"
    for run in (direct, relayed):
        # Redemption comes before consent, which comes before the frame.
        assert 0 < run.consent_to_frame <= run.redeemed_to_frame, run
    # The separation is back once the direct path is measured.
    assert net_topology.run("relay", "cat", "/proc/sys/net/ipv4/ip_forward", check=True).stdout.strip() == "0"

    printed = report(results)
    assert "| direct | 1 | direct |" in printed
    assert "| udp | 1 | relayed through TURN over UDP |" in printed
    assert "within 2 s of consent:" in printed and "of 1." in printed


async def test_a_run_that_took_another_route_than_its_name_is_refused(
    net_topology: NetTopology, coturn: CoturnServer, xvfb: XvfbServer
) -> None:
    # Called "direct", but without the route between the edges: the pair can only be relayed.
    with (
        net_topology.entered("tech"),
        relay_broker(net_topology, coturn.broker_env("udp")) as broker,
        pytest.raises(RuntimeError, match="the direct run took another route"),
    ):
        await one_session(net_topology, broker, xvfb.env, "direct")
