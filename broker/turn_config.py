"""``deskhand-broker turn-config``: the coturn configuration that matches the broker's TURN settings.

The relay and the broker must agree on the realm, the shared secret and the ports
the peers are told (``DESKHAND_TURN_URLS``); the relay must also refuse to be a
way into the networks behind it. :func:`render` writes that ``turnserver.conf``
(option names as in coturn 4.6's README.turnserver); pure, so its output is golden-tested.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from broker.sessions.turn_credentials import TurnSettings, TurnUrl

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DENIED_NETWORKS: tuple[str, ...] = (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "fc00::/7", "fe80::/10", "::1/128",
)
"""Peers a relay must never reach, whatever a credential holder asks: this host, private, shared (carrier NAT),
link-local and benchmarking networks (RFC 6890), where the broker's own services live."""

USER_QUOTA = 12
"""Allocations one peer of one session may hold (coturn counts per username ID): a relay over each of UDP, TCP
and TLS, from up to 2 local addresses, in 2 overlapping peer connections (a reconnect starts before the old one
is gone)."""


class TurnConfigError(ValueError):
    """Options or settings that cannot make a working relay; the message says which and why."""


@dataclass(frozen=True)
class RelayOptions:
    """What the settings do not say about the relay (``turn-config``'s command-line options)."""

    deny: tuple[IPNetwork, ...] = ()
    """More networks the relay must not reach (the broker's own, beyond :data:`DENIED_NETWORKS`)."""
    allow: tuple[IPNetwork, ...] = ()
    """Networks it may reach although denied (coturn: an allowed address wins)."""
    relay_ips: tuple[IPAddress, ...] = ()
    """The relay's own addresses: two peers relayed by one coturn reach each other there, so they are allowed."""
    tls_cert: Path | None = None
    tls_key: Path | None = None
    min_port: int = 49152
    max_port: int = 65535
    """The UDP ports relayed media uses (open them in the firewall)."""
    total_quota: int = 1200
    """Allocations the whole relay may hold (at most 12 per peer: 50 sessions relayed at once)."""


def parse_network(text: str, option: str) -> IPNetwork:
    """``text`` as a CIDR network (an address alone is one host), or :class:`TurnConfigError` naming ``option``."""
    try:
        return ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise TurnConfigError(f"{option} {text!r} is not a network: write it as an address or ADDRESS/PREFIX "
                              f"with no host bits set, such as 10.1.0.0/16 or fd00::/8 ({exc})") from None


def parse_address(text: str, option: str) -> IPAddress:
    """``text`` as one IP address, or :class:`TurnConfigError` naming ``option``."""
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        raise TurnConfigError(f"{option} {text!r} is not an IP address") from None


def listening_ports(urls: tuple[TurnUrl, ...]) -> tuple[int | None, int | None]:
    """coturn's ``listening-port`` (UDP and TCP) and ``tls-listening-port``, as the URLs name them.

    coturn has one of each; its TLS port also takes plain TCP, so ``turn:…:443?transport=tcp``
    beside ``turns:…:443`` is served there.
    """
    def one_port(kind: str, ports: set[int]) -> int | None:
        if len(ports) > 1:
            raise TurnConfigError(f"DESKHAND_TURN_URLS names {kind} ports {', '.join(map(str, sorted(ports)))}; "
                                  "coturn listens on one: use the same port in each")
        return ports.pop() if ports else None

    tls = one_port("TLS", {url.port for url in urls if url.transport == "tls"})
    plain = one_port("UDP", {url.port for url in urls if url.transport == "udp"})
    tcp = {url.port for url in urls if url.transport == "tcp"} - {tls}
    if plain is None:
        plain = one_port("TCP", tcp)
    elif tcp - {plain}:
        raise TurnConfigError(f"DESKHAND_TURN_URLS names TCP port {min(tcp - {plain})} beside UDP port {plain}; "
                              "coturn takes TCP on its UDP port or its TLS port only")
    return plain, tls


def _range(network: IPNetwork) -> str:
    return f"{network.network_address}-{network.broadcast_address}"


def render(turn: TurnSettings, options: RelayOptions) -> str:
    """The ``turnserver.conf`` of a relay that accepts exactly the credentials the broker mints."""
    plain, tls = listening_ports(turn.urls)
    if tls is not None and (options.tls_cert is None or options.tls_key is None):
        raise TurnConfigError("DESKHAND_TURN_URLS has turns: URLs: give --tls-cert and --tls-key "
                              "(the relay's certificate chain and private key, PEM)")
    if tls is None and (options.tls_cert is not None or options.tls_key is not None):
        raise TurnConfigError("--tls-cert and --tls-key serve turns: URLs, and DESKHAND_TURN_URLS has none")
    if not 1024 <= options.min_port <= options.max_port <= 65535:
        raise TurnConfigError("--min-port and --max-port must be a range within 1024-65535, the lower first")
    lines = [
        "# turnserver.conf for Deskhand, written by `deskhand-broker turn-config`; run: turnserver -c THIS_FILE",
        "# It holds DESKHAND_TURN_SECRET: make it readable by the turnserver user only.",
        "",
        "# Only credentials the broker minted, each for one peer of one session until its grant expires.",
        f"realm={turn.realm}",
        "use-auth-secret",
        f"static-auth-secret={turn.secret.decode()}",
        "",
        "# Where peers reach the relay (the ports of DESKHAND_TURN_URLS).",
    ]
    if plain is not None:
        lines.append(f"listening-port={plain}")
    if tls is not None:
        assert options.tls_cert is not None and options.tls_key is not None
        lines += [f"tls-listening-port={tls}", f"cert={options.tls_cert.absolute()}",
                  f"pkey={options.tls_key.absolute()}", "no-tlsv1", "no-tlsv1_1"]
    else:
        lines.append("no-tls")
    lines += [
        "",
        "# Peers cannot use TURN over DTLS, nor TCP relays.",
        "no-dtls",
        "no-tcp-relay",
        "",
        "# UDP ports of relayed media: open them in the firewall.",
        f"min-port={options.min_port}",
        f"max-port={options.max_port}",
        "",
        f"user-quota={USER_QUOTA}",
        f"total-quota={options.total_quota}",
        "stale-nonce=600",
        "fingerprint",
        "no-cli",
        "no-software-attribute",
        "no-multicast-peers",
        "",
        "# Networks the relay must never reach (this host, private and internal ranges; --deny adds more).",
    ]
    denied = [ipaddress.ip_network(text) for text in DENIED_NETWORKS] + list(options.deny)
    lines += [f"denied-peer-ip={_range(network)}" for network in denied]
    allowed = list(options.allow) + [ipaddress.ip_network(ip) for ip in options.relay_ips]
    if allowed:
        lines.append("# Allowed although denied above (--allow, and --relay-ip: relayed peers meet at the relay's address).")
        lines += [f"allowed-peer-ip={_range(network)}" for network in allowed]
    for address in _unreachable_relay_addresses(turn, denied, allowed):
        lines.append(f"# Note: peers reach this relay at {address}, a denied address: two peers both relayed here "
                     f"cannot reach each other unless it is allowed (--relay-ip {address}).")
    return "\n".join(lines) + "\n"


def _unreachable_relay_addresses(turn: TurnSettings, denied: list[IPNetwork], allowed: list[IPNetwork]) -> list[str]:
    """The relay's addresses in the URLs (those written as IP addresses) that it would refuse as a peer.

    Not allowed automatically: an allowed relay address lets a credential holder reach whatever listens on
    it from the relay host itself, past a firewall that guards it from outside; the operator decides.
    """
    found: list[str] = []
    for url in turn.urls:
        try:
            address = ipaddress.ip_address(url.host)
        except ValueError:
            continue  # a name: the operator knows its address, the configuration cannot
        if (any(address in network for network in denied) and not any(address in network for network in allowed)
                and str(address) not in found):
            found.append(str(address))
    return found
