"""X-Forwarded-For/-Proto count only from trusted proxies, and never let a client pick its address."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from broker.server.forwarded import (
    ForwardedHeaders,
    Origin,
    forwarded_origin,
    is_trusted,
    parse_address,
    parse_trusted_proxies,
)

PROXIES = parse_trusted_proxies("10.0.0.5, 10.1.0.0/16,fd00::/8")


def test_trusted_proxies_parse() -> None:
    assert parse_trusted_proxies("") == ()
    assert parse_trusted_proxies(" , ") == ()
    assert [str(n) for n in PROXIES] == ["10.0.0.5/32", "10.1.0.0/16", "fd00::/8"]
    assert str(parse_trusted_proxies("10.2.3.4/24")[0]) == "10.2.3.0/24"  # host bits are forgiven


@pytest.mark.parametrize("bad", ["10.0.0.300", "proxy.example.org", "10.0.0.0/33", "10.0.0.5,,nope"])
def test_bad_proxy_lists_name_the_entry(bad: str) -> None:
    with pytest.raises(ValueError, match="is not an IP address or network"):
        parse_trusted_proxies(bad)


@pytest.mark.parametrize(
    ("text", "address"),
    [("203.0.113.7", "203.0.113.7"), (" 203.0.113.7:5123 ", "203.0.113.7"), ("2001:db8::1", "2001:db8::1"),
     ("[2001:db8::1]", "2001:db8::1"), ("[2001:db8::1]:443", "2001:db8::1"), ('"203.0.113.7"', "203.0.113.7"),
     ("::ffff:203.0.113.7", "203.0.113.7")],
)
def test_addresses_parse(text: str, address: str) -> None:
    assert str(parse_address(text)) == address


@pytest.mark.parametrize(
    "text", ["", "unknown", "_hidden", "203.0.113.7:http", "[2001:db8::1", "[2001:db8::1]x", "1.2.3", "999.1.1.1",
             "<script>", "203.0.113.7 203.0.113.8"],
)
def test_malformed_addresses_are_none(text: str) -> None:
    assert parse_address(text) is None


def test_membership() -> None:
    assert is_trusted("10.0.0.5", PROXIES) and is_trusted("10.1.200.1", PROXIES) and is_trusted("fd00::7", PROXIES)
    assert not is_trusted("10.0.0.6", PROXIES) and not is_trusted(None, PROXIES) and not is_trusted("x", PROXIES)
    assert not is_trusted("10.0.0.5", ())


def test_headers_from_an_untrusted_peer_are_ignored() -> None:
    assert forwarded_origin("198.51.100.9", ["1.2.3.4"], ["https"], PROXIES) == Origin("198.51.100.9")
    assert forwarded_origin("10.0.0.5", ["1.2.3.4"], ["https"], ()) == Origin("10.0.0.5")


def test_a_trusted_proxy_names_the_client() -> None:
    assert forwarded_origin("10.0.0.5", ["203.0.113.7"], ["https"], PROXIES) == Origin("203.0.113.7", "https")


def test_without_headers_the_proxy_is_the_source() -> None:
    assert forwarded_origin("10.0.0.5", [], [], PROXIES) == Origin("10.0.0.5")


def test_a_spoofed_entry_left_of_the_client_is_ignored() -> None:
    # The client sent "X-Forwarded-For: 1.1.1.1"; our proxy appended the address it saw.
    origin = forwarded_origin("10.0.0.5", ["1.1.1.1, 203.0.113.7"], [], PROXIES)
    assert origin.address == "203.0.113.7"


def test_chains_of_trusted_proxies_are_walked() -> None:
    # client -> 10.1.0.9 (edge) -> 10.0.0.5 (inner) -> broker; several header lines form one list.
    origin = forwarded_origin("10.0.0.5", ["6.6.6.6", "203.0.113.7, 10.1.0.9"], ["https, http"], PROXIES)
    assert origin.address == "203.0.113.7"
    # Both lists equally long: the scheme the client used is the one in the client's position.
    assert forwarded_origin("10.0.0.5", ["203.0.113.7, 10.1.0.9"], ["https, http"], PROXIES).scheme == "https"


def test_a_malformed_entry_stops_at_the_last_trusted_proxy() -> None:
    assert forwarded_origin("10.0.0.5", ["203.0.113.7, bogus"], [], PROXIES).address == "10.0.0.5"
    assert forwarded_origin("10.0.0.5", ["bogus, 10.1.0.9"], [], PROXIES).address == "10.1.0.9"
    assert forwarded_origin("10.0.0.5", [""], [], PROXIES).address == "10.0.0.5"


def test_when_every_entry_is_a_proxy_the_leftmost_is_used() -> None:
    assert forwarded_origin("10.0.0.5", ["10.1.0.1, 10.1.0.2"], [], PROXIES).address == "10.1.0.1"


@pytest.mark.parametrize(("proto", "scheme"), [(["HTTPS"], "https"), (["http"], "http"), (["gopher"], None),
                                               ([""], None), (["https, javascript"], None)])
def test_only_http_and_https_are_schemes(proto: list[str], scheme: str | None) -> None:
    assert forwarded_origin("10.0.0.5", ["203.0.113.7"], proto, PROXIES).scheme == scheme


def _through_middleware(scope_type: str, client: tuple[str, int], headers: list[tuple[bytes, bytes]],
                        proxies: str = "10.0.0.5") -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.update(scope)

    scope = {"type": scope_type, "client": client, "scheme": "http" if scope_type == "http" else "ws", "headers": headers}
    asyncio.run(ForwardedHeaders(app, parse_trusted_proxies(proxies))(scope, None, None))
    return seen


def test_the_middleware_rewrites_client_and_scheme_for_a_trusted_peer() -> None:
    headers = [(b"x-forwarded-for", b"203.0.113.7"), (b"x-forwarded-proto", b"https")]
    assert _through_middleware("http", ("10.0.0.5", 4000), headers)["client"] == ("203.0.113.7", 0)
    assert _through_middleware("http", ("10.0.0.5", 4000), headers)["scheme"] == "https"
    assert _through_middleware("websocket", ("10.0.0.5", 4000), headers)["scheme"] == "wss"


def test_the_middleware_leaves_others_alone() -> None:
    headers = [(b"x-forwarded-for", b"203.0.113.7"), (b"x-forwarded-proto", b"https")]
    spoofed = _through_middleware("http", ("198.51.100.9", 4000), headers)
    assert spoofed["client"] == ("198.51.100.9", 4000) and spoofed["scheme"] == "http"
    nobody = _through_middleware("http", ("10.0.0.5", 4000), headers, proxies="")
    assert nobody["client"] == ("10.0.0.5", 4000)
