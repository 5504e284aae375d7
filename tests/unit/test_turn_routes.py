"""TURN URLs as routes, their order, and when relay gathering stops waiting (peer.turn_routes)."""

from __future__ import annotations

import pytest

from peer.turn_routes import (
    LOCAL_PREFERENCE,
    RelayGathering,
    TurnRoute,
    TurnServerEntry,
    parse_turn_url,
    turn_routes,
)


def test_defaults_follow_rfc_7065() -> None:
    assert parse_turn_url("turn:relay.example.org") == TurnRoute(
        url="turn:relay.example.org", host="relay.example.org", port=3478, transport="udp", tls=False
    )
    tls = parse_turn_url("turns:relay.example.org", "u", "p")
    assert (tls.port, tls.transport, tls.tls, tls.leg, tls.username, tls.password) == (5349, "tcp", True, "tls", "u", "p")


@pytest.mark.parametrize(
    ("url", "host", "port", "leg"),
    [
        ("turn:198.18.0.1:3478?transport=udp", "198.18.0.1", 3478, "udp"),
        ("turn:198.18.0.1:3478?transport=tcp", "198.18.0.1", 3478, "tcp"),
        ("turns:relay.example.org:443?transport=tcp", "relay.example.org", 443, "tls"),
        ("turn:[2001:db8::1]:3479", "2001:db8::1", 3479, "udp"),  # aiortc's own regex cannot parse this
    ],
)
def test_host_port_and_leg(url: str, host: str, port: int, leg: str) -> None:
    route = parse_turn_url(url)
    assert (route.host, route.port, route.leg) == (host, port, leg)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("stun:relay.example.org", "not a turn"),
        ("turn:", "not a turn"),
        ("turn:relay.example.org:99999", "port"),
        ("turn:relay.example.org:0", "port"),
        ("turn:relay.example.org?transport=sctp", "udp or tcp"),
        ("turns:relay.example.org?transport=udp", "DTLS"),
        ("turn:relay example.org", "not a turn"),
        ("turn:user@relay.example.org", "not a turn"),
    ],
)
def test_unusable_urls_say_why(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_turn_url(url)


def test_every_turn_url_is_a_route_udp_then_tcp_then_tls_and_stun_is_skipped() -> None:
    routes, problems = turn_routes([
        TurnServerEntry("stun:stun.example.org"),
        TurnServerEntry(["turns:b.example.org:443?transport=tcp", "turn:a.example.org?transport=tcp"], "u1", "p1"),
        TurnServerEntry(["turn:a.example.org", "turn:c.example.org", "turn:a.example.org"], "u2", "p2"),
        TurnServerEntry("turns:x.example.org?transport=udp"),
    ])
    assert [r.url for r in routes] == [
        "turn:a.example.org", "turn:c.example.org", "turn:a.example.org?transport=tcp", "turns:b.example.org:443?transport=tcp",
    ]
    assert [r.username for r in routes] == ["u2", "u2", "u1", "u1"]
    assert len(problems) == 1 and "DTLS" in problems[0]


def test_local_preference_ranks_udp_over_tcp_over_tls() -> None:
    assert LOCAL_PREFERENCE["udp"] > LOCAL_PREFERENCE["tcp"] > LOCAL_PREFERENCE["tls"] > 0
    assert LOCAL_PREFERENCE["udp"] <= 65535
    assert parse_turn_url("turns:r").local_preference == LOCAL_PREFERENCE["tls"]


# --- when gathering stops -------------------------------------------------------------------


def test_all_routes_settled_ends_gathering_at_once() -> None:
    gathering = RelayGathering(100.0, routes=2)
    assert not gathering.done(100.0)
    gathering.settled(100.2, allocated=False)
    assert not gathering.done(100.2)
    gathering.settled(100.4, allocated=False)
    assert gathering.done(100.4) and gathering.wait_seconds(100.4) == 0.0


def test_half_a_second_after_the_first_relay() -> None:
    gathering = RelayGathering(100.0, routes=3)
    gathering.settled(100.3, allocated=True)
    assert gathering.deadline() == pytest.approx(100.8)
    assert gathering.wait_seconds(100.5) == pytest.approx(0.3)
    assert not gathering.done(100.79)
    assert gathering.done(100.8)


def test_a_failure_does_not_start_the_grace_period() -> None:
    gathering = RelayGathering(100.0, routes=3)
    gathering.settled(100.1, allocated=False)
    assert gathering.deadline() == pytest.approx(103.0)


def test_the_cap_holds_even_when_nothing_answers() -> None:
    gathering = RelayGathering(100.0, routes=2)
    assert gathering.wait_seconds(100.0) == pytest.approx(3.0)
    assert not gathering.done(102.99)
    assert gathering.done(103.0)


def test_a_late_first_relay_cannot_extend_past_the_cap() -> None:
    gathering = RelayGathering(100.0, routes=2)
    gathering.settled(102.9, allocated=True)
    assert gathering.deadline() == pytest.approx(103.0)
