"""How the clients reach the broker: which URLs they may use, and which certificates they trust.

Both client programs (``deskhand-host`` and ``deskhand-console``) check the
broker URL here *before* anything connects: plain ``http://`` (or ``ws://``)
carries bearer tokens, support codes and the shared screen's signalling
readable by anyone on the path, so it is allowed only to this machine
(loopback) or when the user says ``--insecure``.

Which certificates they trust is the clients' own concern (:mod:`peer.transport`).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

PLAIN_SCHEMES = {"http": "https", "ws": "wss"}
"""Unencrypted schemes and their encrypted counterparts."""
SECURE_SCHEMES = frozenset(PLAIN_SCHEMES.values())
LOOPBACK_NAMES = frozenset({"localhost"})


class TransportError(ValueError):
    """A broker URL or CA file cannot be used; the message says why and what to do."""


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1 (also written as ::ffff:127.x.y.z)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # any other name may resolve anywhere
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def check_transport(url: str, *, insecure: bool = False) -> None:
    """Refuse an unencrypted ``url`` to anything but loopback, unless ``insecure``.

    Accepts ``http``, ``https``, ``ws`` and ``wss``; raises :class:`TransportError`.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in PLAIN_SCHEMES and scheme not in SECURE_SCHEMES:
        raise TransportError(f"{url!r} is not a broker URL: it must start with https:// (or http:// on this machine)")
    if not parts.hostname:
        raise TransportError(f"{url!r} names no host: write it like https://broker.example.org")
    if scheme in SECURE_SCHEMES or insecure or is_loopback(parts.hostname):
        return
    secure = PLAIN_SCHEMES[scheme]
    raise TransportError(
        f"refusing {url}: {scheme}:// is not encrypted, so sign-in tokens, support codes and the "
        "session (screen, input, chat, files) would cross the network readable by anyone on the way. "
        f"Use {secure}:// (the broker serves HTTPS when given a certificate), or add --insecure "
        "if this is a trusted lab network."
    )


def checked_broker_url(url: str, *, insecure: bool = False) -> str:
    """``url`` without trailing slash, once it is an http(s) URL that :func:`check_transport` allows."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise TransportError(f"{url!r} is not a broker URL: it must start with https:// (or http:// on this machine)")
    if parts.query or parts.fragment:
        raise TransportError(f"{url!r}: a broker URL has no ?query or #fragment; give just https://host[:port]")
    try:
        parts.port  # noqa: B018 - raises for a malformed port
    except ValueError:
        raise TransportError(f"{url!r} has a malformed port: write it like https://broker.example.org:8443") from None
    check_transport(url, insecure=insecure)
    return url
