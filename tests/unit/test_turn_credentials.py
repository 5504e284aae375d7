"""TURN credentials per peer and session: coturn's REST scheme, the URLs' order, expiry with the grant, renewal
(pure: the grant book and the time are passed in)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel

from broker.keys import BrokerKeys
from broker.sessions import grant_watch
from broker.sessions.grant_watch import GrantBook, GrantWatcher, Look
from broker.sessions.grants import renew_grant
from broker.sessions.hub import SignalHub
from broker.sessions.turn_credentials import (
    TurnSettings,
    TurnUrlError,
    ice_for_peer,
    mint,
    parse_turn_url,
    turn_user_id,
)
from protocol.grants import Grant
from protocol.ice import IceConfig, IceServer
from protocol.permissions import Permission
from protocol.signalling import GrantIssued, IceRenewed, Role

SECRET = b"0123456789abcdef0123456789abcdef"
STUN = IceConfig(servers=[IceServer(urls=["stun:stun.example.org"])])
TURN = TurnSettings(
    urls=tuple(parse_turn_url(u) for u in ("turns:relay.example.org:443", "turn:relay.example.org?transport=tcp",
                                           "turn:relay.example.org:3478?transport=udp", "turn:198.18.0.1")),
    secret=SECRET,
)


def test_a_credential_is_what_coturn_computes() -> None:
    # base64(HMAC-SHA1(secret, "EXPIRY:ID")), computed once with hmac and written down.
    credential = mint(SECRET, turn_user_id("s-1", "host"), 1_700_000_000)
    assert credential.username == "1700000000:s-1.host"
    assert credential.password == "EcnCH32eaiIs3ZNBoOFOX3GPI7o="
    assert credential.expires_at == 1_700_000_000


@pytest.mark.parametrize(("text", "host", "port", "transport"), [
    ("turn:relay.example.org", "relay.example.org", 3478, "udp"),
    ("turn:relay.example.org:3479?transport=udp", "relay.example.org", 3479, "udp"),
    ("turn:198.18.0.1?transport=tcp", "198.18.0.1", 3478, "tcp"),
    ("turns:relay.example.org", "relay.example.org", 5349, "tls"),
    ("turns:relay.example.org:443?transport=tcp", "relay.example.org", 443, "tls"),
    ("turn:[2001:db8::1]:3478", "2001:db8::1", 3478, "udp"),
])
def test_turn_urls_are_read_as_rfc_7065_writes_them(text: str, host: str, port: int, transport: str) -> None:
    url = parse_turn_url(text)
    assert (url.text, url.host, url.port, url.transport) == (text, host, port, transport)


@pytest.mark.parametrize(("text", "words"), [
    ("stun:relay.example.org", "must start with turn: or turns:"),
    ("http://relay.example.org", "must start with turn: or turns:"),
    ("relay.example.org:3478", "must start with turn: or turns:"),
    ("turns:relay.example.org?transport=udp", "turns: over UDP"),
    ("turn:relay.example.org?transport=sctp", "?transport=udp or ?transport=tcp"),
    ("turn:relay.example.org?foo=bar", "?transport=udp or ?transport=tcp"),
    ("turn:", "write turn:HOST"),
    ("turn:user@relay.example.org", "write turn:HOST"),
    ("turn:relay.example.org:99999", "from 1 to 65535"),
    ("turn:relay.example.org:0", "from 1 to 65535"),
    ("turn:relay.example.org:3478/path", "write turn:HOST"),
    ("turn:[1.2.3.4]", "only an IPv6 address goes in brackets"),
    ("turn:[::1", "write turn:HOST"),
])
def test_a_url_peers_cannot_use_is_refused_saying_why(text: str, words: str) -> None:
    with pytest.raises(TurnUrlError, match=words.replace("?", r"\?")):
        parse_turn_url(text)


def test_without_turn_a_peer_gets_the_shared_configuration() -> None:
    assert ice_for_peer(STUN, None, "s-1", Role.host, 1000) is STUN


def test_a_peer_gets_every_turn_url_udp_then_tcp_then_tls_after_the_stun_servers() -> None:
    ice = ice_for_peer(STUN, TURN, "s-1", Role.host, 2000)
    assert ice.servers[0] == STUN.servers[0]
    relay = ice.servers[1]
    assert relay.urls == ["turn:relay.example.org:3478?transport=udp", "turn:198.18.0.1",
                          "turn:relay.example.org?transport=tcp", "turns:relay.example.org:443"]
    expected = mint(SECRET, "s-1.host", 2000)
    assert (relay.username, relay.credential) == (expected.username, expected.password)
    assert STUN.servers == [IceServer(urls=["stun:stun.example.org"])]  # the shared one is left alone


def test_the_long_term_secret_is_nowhere_in_what_a_peer_gets() -> None:
    sent = ice_for_peer(STUN, TURN, "s-1", Role.technician, 2000).model_dump_json()
    assert SECRET.decode() not in sent
    assert "secret" not in repr(TURN)  # nor in a log line that prints the settings


def test_credentials_differ_per_peer_and_per_session() -> None:
    seen = {
        (session, role): ice_for_peer(STUN, TURN, session, role, 2000).servers[-1]
        for session in ("s-1", "s-2") for role in (Role.host, Role.technician)
    }
    assert len({server.username for server in seen.values()}) == 4
    assert len({server.credential for server in seen.values()}) == 4


def grant(issued_at: int, ttl: int = 900) -> Grant:
    return Grant(session_id="s-1", ticket_id=1, technician_id=2, technician_name="Tess",
                 permissions=[Permission.view], issued_at=issued_at, expires_at=issued_at + ttl)


def test_credentials_expire_with_the_grant_are_renewed_with_it_and_stop_with_the_session() -> None:
    book = GrantBook()
    first = grant(issued_at=10_000)
    book.issued("s-1", first, as_of=0, now=0.0)
    welcome = ice_for_peer(STUN, TURN, "s-1", Role.host, first.expires_at).servers[-1]
    assert welcome.username == f"{first.expires_at}:s-1.host"

    assert book.due(299.0, renew_after=300.0) == []
    assert book.due(300.0, renew_after=300.0) == ["s-1"]
    renewed = grant(issued_at=10_300)
    book.renewed("s-1", renewed, now=300.0)
    fresh = ice_for_peer(STUN, TURN, "s-1", Role.host, renewed.expires_at).servers[-1]
    assert fresh.username == f"{renewed.expires_at}:s-1.host" and fresh.credential != welcome.credential

    book.forget("s-1")  # the session ended: nobody is connected
    assert book.due(10_000.0, renew_after=300.0) == []


@dataclass
class FakePeer:
    role: Role
    posted: list[BaseModel] = field(default_factory=list)

    def post(self, message: BaseModel) -> bool:
        self.posted.append(message)
        return True


@dataclass
class FakeHub:
    rooms: dict[str, list[FakePeer]]

    def peers(self, session_id: str) -> list[FakePeer]:
        return self.rooms.get(session_id, [])

    def peer(self, session_id: str, role: Role) -> FakePeer | None:
        return next((p for p in self.peers(session_id) if p.role is role), None)


@dataclass
class Counter:
    """A database session whose grant-change counter reads ``count``."""

    count: int = 0

    def scalar(self, *_: Any) -> int:
        return self.count


KEYS = BrokerKeys(signing_key=Ed25519PrivateKey.generate(), code_hash_key=b"k" * 32, recording_master_key=b"m" * 32)


def watcher(hub: FakeHub, book: GrantBook, turn: TurnSettings | None, changes: int = 0) -> GrantWatcher:
    @contextmanager
    def database() -> Iterator[Counter]:
        yield Counter(changes)

    return GrantWatcher(book, cast(SignalHub, hub), cast(Any, database), KEYS, 900, STUN, turn)


def test_a_renewal_round_sends_each_peer_its_own_credentials_expiring_with_the_renewed_grant() -> None:
    host, technician = FakePeer(Role.host), FakePeer(Role.technician)
    hub = FakeHub({"s-1": [host, technician]})
    book = GrantBook()
    book.issued("s-1", grant(issued_at=int(time.time()) - 400), as_of=0, now=time.monotonic() - 301)
    asyncio.run(watcher(hub, book, TURN).round())
    renewed = book.grant("s-1")
    assert renewed is not None
    for peer in (host, technician):
        issued, ice = peer.posted
        assert isinstance(issued, GrantIssued) and issued.grant.grant == renewed
        assert isinstance(ice, IceRenewed)
        assert ice.ice == ice_for_peer(STUN, TURN, "s-1", peer.role, renewed.expires_at)
    assert host.posted[1] != technician.posted[1]


def test_a_grant_whose_terms_changed_comes_with_fresh_credentials_too(monkeypatch: pytest.MonkeyPatch) -> None:
    # The other path: a change was counted, the look finds new terms and issues a grant at once.
    host = FakePeer(Role.host)
    book = GrantBook()
    book.issued("s-1", grant(issued_at=int(time.time())), as_of=0, now=time.monotonic())
    changed = renew_grant(KEYS, grant(issued_at=int(time.time())).model_copy(update={"permissions": []}),
                          timedelta(seconds=900))

    def look(*_: Any) -> Look:
        return Look(count=1, standings={}, issued={"s-1": changed})

    monkeypatch.setattr(grant_watch, "look", look)
    asyncio.run(watcher(FakeHub({"s-1": [host]}), book, TURN, changes=1).round())
    issued, ice = host.posted
    assert isinstance(issued, GrantIssued) and issued.grant == changed
    assert isinstance(ice, IceRenewed) and ice.ice == ice_for_peer(STUN, TURN, "s-1", Role.host, changed.grant.expires_at)


def test_after_the_session_ended_a_round_sends_nothing() -> None:
    hub = FakeHub({})  # the room was closed
    book = GrantBook()
    book.issued("s-1", grant(issued_at=int(time.time()) - 400), as_of=0, now=time.monotonic() - 301)
    book.forget("s-1")
    asyncio.run(watcher(hub, book, TURN).round())
    assert book.grant("s-1") is None


def test_without_turn_a_renewal_sends_only_the_grant() -> None:
    host = FakePeer(Role.host)
    book = GrantBook()
    book.issued("s-1", grant(issued_at=int(time.time()) - 400), as_of=0, now=time.monotonic() - 301)
    asyncio.run(watcher(FakeHub({"s-1": [host]}), book, None).round())
    assert [type(m) for m in host.posted] == [GrantIssued]


def test_a_renewed_grant_is_what_the_credentials_follow() -> None:
    # renew_grant sets the new expiry from the TTL: the credential sent with it ends then too.
    signed = renew_grant(KEYS, grant(issued_at=1000), timedelta(seconds=900))
    ice = ice_for_peer(STUN, TURN, "s-1", Role.host, signed.grant.expires_at)
    assert ice.servers[-1].username == f"{signed.grant.expires_at}:s-1.host"
    assert signed.grant.expires_at - signed.grant.issued_at == 900
