"""The relay connect benchmark runs a direct and a relayed session end to end, so that it cannot rot.

Not a measurement: no time is compared with a bound (the 2 s target is the benchmark's
to report). What is checked is that each path took the route it is named for, that the
two moments were read from the trail in their order, that the report prints both rows
and the target line, and that the command line names what is wrong.
"""

from __future__ import annotations

import pytest

from bench.relay_connect import measure, parse_options, report
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


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--paths", "udp,carrier-pigeon"], "paths are among direct, udp, tcp, tls, not carrier-pigeon"),
        (["--paths", ","], "not nothing"),
        (["--runs", "0"], "runs must be between 1 and 100, not 0"),
    ],
)
def test_the_command_line_names_what_is_wrong(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_options(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_paths_default_to_all_in_order() -> None:
    assert parse_options([]).paths == ("direct", "udp", "tcp", "tls")
    assert parse_options(["--paths", "tls, udp"]).paths == ("tls", "udp")
