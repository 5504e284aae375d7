"""How the media flows, in words (protocol.route)."""

from __future__ import annotations

import pytest

from protocol.route import Route, route_line


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
