"""Who a request really came from, when a trusted reverse proxy (TLS terminator) sits in front.

A proxy connects to the broker itself and names the real client in
``X-Forwarded-For`` (and the scheme the client used in ``X-Forwarded-Proto``).
Anybody can send those headers, so they count only when the *direct* peer is
one of ``DESKHAND_TRUSTED_PROXIES``; from anyone else they are ignored. The
client is then the right-most ``X-Forwarded-For`` address that is not itself
a trusted proxy: everything left of it was written by parties we do not
trust and may be made up. A value that does not parse stops the walk at the
last proxy that is trusted: a half-readable chain never yields an address
the client chose.

Why not uvicorn's ``proxy_headers``/``forwarded_allow_ips``: this is where
rate limits and the audit trail get their source address, so the rules
(CIDRs, chains, what a malformed value does) are ours, spelled out here and
unit-tested, and do not change with a uvicorn upgrade. uvicorn's own proxy
handling stays off (``proxy_headers=False`` in ``broker/cli.py``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

SCHEMES = ("http", "https")
WEBSOCKET_SCHEMES = {"http": "ws", "https": "wss"}


def parse_trusted_proxies(text: str) -> tuple[Network, ...]:
    """Comma-separated IP addresses and CIDR networks; empty means trust nobody.

    Raises ``ValueError`` naming the entry that is neither.
    """
    networks = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(
                f"{entry!r} is not an IP address or network; list the proxies' addresses, "
                "e.g. 10.0.0.5,10.0.1.0/24,fd00::/8"
            ) from None
    return tuple(networks)


def parse_address(text: str) -> Address | None:
    """One ``X-Forwarded-For`` entry as an address, or None when it is not one.

    Accepts ``1.2.3.4``, ``1.2.3.4:5678``, ``2001:db8::1``, ``[2001:db8::1]`` and
    ``[2001:db8::1]:5678`` (some proxies add the port); ``unknown``, obfuscated
    names and anything else are None.
    """
    value = text.strip().strip('"')
    if value.startswith("["):
        value, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
    elif value.count(":") == 1:  # IPv4 with a port; a bare IPv6 address has two or more
        value, _, port = value.partition(":")
        if not port.isdigit():
            return None
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_trusted(address: Address | str | None, trusted: Sequence[Network]) -> bool:
    """True when ``address`` lies in one of the ``trusted`` networks."""
    if address is None or not trusted:
        return False
    if isinstance(address, str):
        parsed = parse_address(address)
        if parsed is None:
            return False
        address = parsed
    return any(address.version == net.version and address in net for net in trusted)


def _items(values: Sequence[str]) -> list[str]:
    """The comma-separated items of all header lines, in order (several lines form one list)."""
    return [item.strip() for value in values for item in value.split(",")]


@dataclass(frozen=True)
class Origin:
    """Where a request came from: the client's address, and the scheme it used (None: as received)."""

    address: str | None
    scheme: str | None = None


def forwarded_origin(
    peer: str | None,
    forwarded_for: Sequence[str],
    forwarded_proto: Sequence[str],
    trusted: Sequence[Network],
) -> Origin:
    """The request's real origin given its direct ``peer`` and the raw header lines.

    Headers count only when ``peer`` is trusted. The scheme is the
    ``X-Forwarded-Proto`` item in the same position as the chosen
    ``X-Forwarded-For`` entry when both lists are equally long (each proxy
    appended to both), otherwise the right-most item (written by the proxy
    nearest to us); anything but ``http``/``https`` is ignored.
    """
    if not is_trusted(peer, trusted):
        return Origin(peer)
    chain = _items(forwarded_for)
    client: str | None = peer
    chosen: int | None = None
    for index in range(len(chain) - 1, -1, -1):
        address = parse_address(chain[index])
        if address is None:
            break
        client, chosen = str(address), index
        if not is_trusted(address, trusted):
            break
    return Origin(client, _scheme(_items(forwarded_proto) if forwarded_proto else [], len(chain), chosen))


def _scheme(protos: list[str], hops: int, chosen: int | None) -> str | None:
    if not protos:
        return None
    value = protos[chosen] if chosen is not None and len(protos) == hops else protos[-1]
    value = value.lower()
    return value if value in SCHEMES else None


Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


class ForwardedHeaders:
    """ASGI middleware: put the real client (and scheme) in the scope, per :func:`forwarded_origin`.

    Every consumer then agrees on the source: ``client_address`` (rate limits,
    audit), WebSocket routes and uvicorn's access log. The scope is changed in
    place, as uvicorn's own proxy middleware does, because the access log reads
    the server's copy of it after the app returns.
    """

    def __init__(self, app: ASGIApp, trusted: Sequence[Network]) -> None:
        self.app = app
        self.trusted = tuple(trusted)

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] in ("http", "websocket") and self.trusted:
            client = scope.get("client")
            peer = client[0] if client else None
            if is_trusted(peer, self.trusted):
                forwarded_for, forwarded_proto = [], []
                for name, value in scope.get("headers", ()):
                    if name == b"x-forwarded-for":
                        forwarded_for.append(value.decode("latin-1"))
                    elif name == b"x-forwarded-proto":
                        forwarded_proto.append(value.decode("latin-1"))
                origin = forwarded_origin(peer, forwarded_for, forwarded_proto, self.trusted)
                # The client's own port is not forwarded; 0 says "unknown", as uvicorn does.
                scope["client"] = (origin.address, 0)
                if origin.scheme is not None:
                    websocket = scope["type"] == "websocket"
                    scope["scheme"] = WEBSOCKET_SCHEMES[origin.scheme] if websocket else origin.scheme
        await self.app(scope, receive, send)
