"""TURN credentials that expire: coturn's REST-API scheme (``use-auth-secret``), minted per peer and session.

coturn and the broker share one secret. The username is ``EXPIRY:ID`` (EXPIRY in
Unix seconds) and the password base64(HMAC-SHA1(secret, username)); coturn
recomputes the password and refuses an allocation once EXPIRY has passed. So the
broker never hands a long-term TURN password to a peer, and a credential seen in
one session is useless for another ID and after its expiry.

Also the relay's settings as the broker reads them (:class:`TurnSettings`, :func:`parse_turn_url`)
and :func:`ice_for_peer`, the ICE configuration one peer is sent in ``welcome`` and ``ice_config``.

Pure: the time is passed in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Literal

from protocol.ice import IceConfig, IceServer
from protocol.signalling import Role


@dataclass(frozen=True)
class TurnCredential:
    """One peer's TURN username and password, valid until ``expires_at`` (Unix seconds)."""

    username: str
    password: str
    expires_at: int


def turn_user_id(session_id: str, role: str) -> str:
    """The ID part of a username: one per session and peer, so coturn's quotas count per peer."""
    return f"{session_id}.{role}"


def mint(secret: bytes, user_id: str, expires_at: int) -> TurnCredential:
    """The credential coturn accepts for ``user_id`` until ``expires_at``."""
    username = f"{int(expires_at)}:{user_id}"
    digest = hmac.new(secret, username.encode(), hashlib.sha1).digest()
    return TurnCredential(username=username, password=base64.b64encode(digest).decode(), expires_at=int(expires_at))


DEFAULT_REALM = "deskhand"
"""The realm coturn names in its 401 answers when ``DESKHAND_TURN_REALM`` is not set."""

SECRET_MIN_BYTES = 32
"""The shortest shared secret the broker accepts: a guessable secret makes every credential forgeable."""

SECRET_ALPHABET = re.compile(r"^[A-Za-z0-9+/=._-]+$")
"""The characters a secret may hold: it is written into turnserver.conf as it is, on one line."""

DEFAULT_PORTS = {"turn": 3478, "turns": 5349}
"""RFC 7065: the port of a TURN URL that names none."""

Transport = Literal["udp", "tcp", "tls"]
"""How a peer reaches the relay: a ``turn:`` URL over UDP or TCP, a ``turns:`` URL over TLS."""

_TRANSPORT_ORDER: dict[Transport, int] = {"udp": 0, "tcp": 1, "tls": 2}
_HOST_PORT = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(?P<port>[0-9]{1,5}))?$")


class TurnUrlError(ValueError):
    """A TURN URL the broker cannot hand to peers; the message says what is wrong with it."""


@dataclass(frozen=True)
class TurnUrl:
    """One parsed ``turn:`` or ``turns:`` URL (RFC 7065), as written in ``DESKHAND_TURN_URLS``."""

    text: str
    host: str
    """A name, an IPv4 address or an IPv6 address (without its brackets)."""
    port: int
    transport: Transport


def parse_turn_url(text: str) -> TurnUrl:
    """``turn:HOST[:PORT][?transport=udp|tcp]`` or ``turns:HOST[:PORT][?transport=tcp]``, or :class:`TurnUrlError`.

    ``turns:`` over UDP (DTLS) is refused: aiortc's ICE agent cannot use it.
    """
    scheme, colon, rest = text.partition(":")
    if not colon or scheme not in DEFAULT_PORTS:
        raise TurnUrlError(f"{text[:80]!r} is not a TURN URL: it must start with turn: or turns:")
    address, question, query = rest.partition("?")
    transport = ""
    if question:
        name, equals, transport = query.partition("=")
        if name != "transport" or not equals or transport not in ("udp", "tcp"):
            raise TurnUrlError(f"{text[:80]!r}: the only query a TURN URL may have is ?transport=udp or ?transport=tcp")
    found = _HOST_PORT.match(address)
    if found is None:
        raise TurnUrlError(f"{text[:80]!r}: write turn:HOST or turn:HOST:PORT (an IPv6 address in brackets)")
    host = found["host"]
    if host.startswith("["):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise TurnUrlError(f"{text[:80]!r}: only an IPv6 address goes in brackets") from None
    port = int(found["port"]) if found["port"] else DEFAULT_PORTS[scheme]
    if not 1 <= port <= 65535:
        raise TurnUrlError(f"{text[:80]!r}: the port must be from 1 to 65535")
    if scheme == "turns":
        if transport == "udp":
            raise TurnUrlError(f"{text[:80]!r}: turns: over UDP (DTLS) cannot be used by the peers; "
                               "use turns: over TCP, or turn: with ?transport=udp")
        kind: Transport = "tls"
    else:
        kind = "tcp" if transport == "tcp" else "udp"
    return TurnUrl(text=text, host=host, port=port, transport=kind)


@dataclass(frozen=True)
class TurnSettings:
    """The broker's TURN relay: where peers reach it, and the secret it shares with coturn."""

    urls: tuple[TurnUrl, ...]
    secret: bytes = field(repr=False)
    realm: str = DEFAULT_REALM

    def ordered_urls(self) -> list[str]:
        """The URLs as peers should try them: UDP first, then TCP, then TLS (each group as configured)."""
        return [url.text for url in sorted(self.urls, key=lambda url: _TRANSPORT_ORDER[url.transport])]


def ice_for_peer(base: IceConfig, turn: TurnSettings | None, session_id: str, role: Role,
                 expires_at: int) -> IceConfig:
    """``base`` (the STUN servers, loopback) plus, with TURN configured, one server holding every TURN URL
    and a credential for this peer of this session that expires at ``expires_at`` (the peer's grant's expiry).
    """
    if turn is None:
        return base
    credential = mint(turn.secret, turn_user_id(session_id, role.value), expires_at)
    relay = IceServer(urls=turn.ordered_urls(), username=credential.username, credential=credential.password)
    return IceConfig(servers=[*base.servers, relay], loopback_only=base.loopback_only)
