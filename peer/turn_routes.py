"""TURN servers as routes to try in parallel, and when to stop waiting for them (pure).

aiortc hands aioice only the first usable TURN URL and drops the rest; a network
that blocks UDP 3478 then gets no relay although the broker also offered TCP or
TLS on 443. :func:`turn_routes` turns *every* ``turn:``/``turns:`` URL into a
:class:`TurnRoute`; :mod:`peer.aiortc_hooks` allocates on all of them at once and
:class:`RelayGathering` decides when gathering has waited long enough. Nothing here
opens a socket: the clock is passed in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from protocol.route import TurnLeg

TURN_PORT = 3478
TURNS_PORT = 5349

LOCAL_PREFERENCE: dict[TurnLeg, int] = {"udp": 65535, "tcp": 32767, "tls": 16383}
"""The relay candidate's local preference (RFC 8445 5.1.2.1) by its leg to the relay: when
several relays work, ICE prefers UDP, then TCP, then TLS (what browsers do too)."""

_LEG_ORDER: tuple[TurnLeg, ...] = ("udp", "tcp", "tls")

# turn:host[:port][?transport=udp|tcp]; the host may be an IPv6 literal in brackets.
_TURN_URL = re.compile(
    r"(?P<scheme>turns?):(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:?\[\]/@\s]+))"
    r"(?::(?P<port>[0-9]{1,5}))?(?:\?transport=(?P<transport>[a-z]+))?"
)


@dataclass(frozen=True)
class TurnRoute:
    """One way to a TURN relay: the URL and what it says, with the credentials to allocate."""

    url: str
    host: str
    port: int
    transport: Literal["udp", "tcp"]
    """How the client reaches the relay; ``tls`` adds TLS over ``tcp``."""
    tls: bool
    username: str | None = None
    password: str | None = None

    @property
    def leg(self) -> TurnLeg:
        """The client-to-relay leg as people name it: udp, tcp or tls."""
        return "tls" if self.tls else self.transport

    @property
    def local_preference(self) -> int:
        return LOCAL_PREFERENCE[self.leg]


def parse_turn_url(url: str, username: str | None = None, password: str | None = None) -> TurnRoute:
    """The route a ``turn:`` or ``turns:`` URL names; :class:`ValueError` says why one is not usable.

    The transport defaults to udp for ``turn:`` and tcp for ``turns:`` (RFC 7065);
    ``turns:`` over udp (DTLS) is refused: aioice cannot do it.
    """
    match = _TURN_URL.fullmatch(url.strip())
    if match is None:
        raise ValueError(f"{url!r} is not a turn: or turns: URL (turn:host[:port][?transport=udp|tcp])")
    tls = match["scheme"] == "turns"
    transport = match["transport"] or ("tcp" if tls else "udp")
    if transport not in ("udp", "tcp"):
        raise ValueError(f"{url!r}: the transport must be udp or tcp")
    if tls and transport == "udp":
        raise ValueError(f"{url!r}: TURN over DTLS (turns: with transport=udp) is not supported; use transport=tcp")
    port = int(match["port"]) if match["port"] else (TURNS_PORT if tls else TURN_PORT)
    if not 1 <= port <= 65535:
        raise ValueError(f"{url!r}: the port must be from 1 to 65535")
    return TurnRoute(
        url=url.strip(), host=match["ipv6"] or match["host"], port=port,
        transport="tcp" if transport == "tcp" else "udp", tls=tls, username=username, password=password,
    )


@dataclass(frozen=True)
class TurnServerEntry:
    """What :func:`turn_routes` reads from one ICE server (aiortc's ``RTCIceServer`` fits)."""

    urls: str | list[str]
    username: str | None = None
    credential: str | None = None


def turn_routes(servers: Iterable[TurnServerEntry]) -> tuple[list[TurnRoute], list[str]]:
    """Every usable TURN URL of ``servers`` as a route, UDP first, then TCP, then TLS; and why
    each other TURN URL was left out. STUN URLs are not routes and are skipped silently.

    The order is stable within a leg (the configuration's order), and a URL given twice
    is one route.
    """
    routes: list[TurnRoute] = []
    problems: list[str] = []
    seen: set[str] = set()
    for server in servers:
        for url in [server.urls] if isinstance(server.urls, str) else server.urls:
            if not url.startswith("turn"):
                continue
            try:
                route = parse_turn_url(url, server.username, server.credential)
            except ValueError as problem:
                problems.append(str(problem))
                continue
            if route.url not in seen:
                seen.add(route.url)
                routes.append(route)
    routes.sort(key=lambda r: _LEG_ORDER.index(r.leg))
    return routes, problems


GATHER_CAP_SECONDS = 3.0
"""Gathering never waits longer than this for relays: a filtered port must not hold the offer."""
AFTER_FIRST_RELAY_SECONDS = 0.5
"""Once one relay is allocated, the others get this much longer (a faster leg may be among them)."""


class RelayGathering:
    """When to stop waiting for TURN allocations: all settled, or 0.5 s after the first relay
    succeeded, or the 3 s cap, whichever comes first. Times are ``time.monotonic()`` values."""

    def __init__(self, started_at: float, routes: int, *, cap: float = GATHER_CAP_SECONDS,
                 after_first: float = AFTER_FIRST_RELAY_SECONDS) -> None:
        self._started_at = started_at
        self._open = routes
        self._cap = cap
        self._after_first = after_first
        self._first_relay_at: float | None = None

    def settled(self, now: float, *, allocated: bool) -> None:
        """One allocation finished, with a relay (``allocated``) or without."""
        self._open = max(0, self._open - 1)
        if allocated and self._first_relay_at is None:
            self._first_relay_at = now

    def deadline(self) -> float:
        """The moment to stop waiting, as things stand."""
        end = self._started_at + self._cap
        if self._first_relay_at is not None:
            end = min(end, self._first_relay_at + self._after_first)
        return end

    def done(self, now: float) -> bool:
        return self._open == 0 or now >= self.deadline()

    def wait_seconds(self, now: float) -> float:
        """How long to wait for the next allocation to finish before asking :meth:`done` again."""
        return 0.0 if self.done(now) else self.deadline() - now
