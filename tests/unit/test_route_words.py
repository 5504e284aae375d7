"""How the media flows, in words (protocol.route)."""

from __future__ import annotations

import pytest

from protocol.channel import LinkState
from protocol.route import Route, link_line, route_line


@pytest.mark.parametrize(
    ("route", "words"),
    [
        (Route("host", "host"), "direct"),
        (Route("srflx", "host"), "direct through NAT"),
        (Route("host", "prflx"), "direct through NAT"),
        (Route("srflx", "srflx"), "direct through NAT"),
        (Route("relay", "host", "udp"), "relayed through TURN over UDP"),
        (Route("relay", "relay", "tcp"), "relayed through TURN over TCP"),
        (Route("relay", "srflx", "tls"), "relayed through TURN over TLS"),
        (Route("relay", "host"), "relayed through TURN"),  # our leg unknown
        (Route("host", "relay", "udp"), "relayed through TURN"),  # only the other side's relay: its leg is not ours to name
    ],
)
def test_words(route: Route, words: str) -> None:
    assert route.words() == words
    assert route.relayed == ("relayed" in words)


def test_status_line() -> None:
    assert route_line(Route("relay", "host", "tcp"), 0.0423) == "media: relayed through TURN over TCP, round trip 42 ms"
    assert route_line(Route("host", "host"), None) == "media: direct"
    assert route_line(None, None) == "media: not connected"


@pytest.mark.parametrize(
    ("kbps", "fps", "line"),
    [
        (1234, 12.4, "slow connection: 1.2 Mbit/s, 12 fps"),
        (1250, 12.5, "slow connection: 1.3 Mbit/s, 13 fps"),  # halves round up, as in the browser
        (999, 5.0, "slow connection: 999 kbit/s, 5 fps"),
        (1000, 0.4, "slow connection: 1.0 Mbit/s, 0 fps"),
        (19_960, 30.0, "slow connection: 20.0 Mbit/s, 30 fps"),
    ],
)
def test_slow_link_line(kbps: int, fps: float, line: str) -> None:
    assert link_line(LinkState(limited=True, kbps=kbps, fps=fps)) == line


def test_no_line_unless_the_link_limits() -> None:
    assert link_line(LinkState(limited=False, kbps=500, fps=5)) is None
    assert link_line(None) is None
