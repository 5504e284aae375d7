"""``deskhand-broker turn-config``: the turnserver.conf matching the TURN settings (golden), and refusals."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest

from broker.cli import main
from broker.sessions.turn_credentials import TurnSettings, parse_turn_url
from broker.turn_config import DENIED_NETWORKS, RelayOptions, TurnConfigError, listening_ports, parse_network, render

SECRET = "0123456789abcdef0123456789abcdef+/="

GOLDEN = """\
# turnserver.conf for Deskhand, written by `deskhand-broker turn-config`; run: turnserver -c THIS_FILE
# It holds DESKHAND_TURN_SECRET: make it readable by the turnserver user only.

# Only credentials the broker minted, each for one peer of one session until its grant expires.
realm=example.org
use-auth-secret
static-auth-secret=0123456789abcdef0123456789abcdef+/=

# Where peers reach the relay (the ports of DESKHAND_TURN_URLS).
listening-port=3478
tls-listening-port=443
cert=/etc/deskhand/relay.crt
pkey=/etc/deskhand/relay.key
no-tlsv1
no-tlsv1_1

# Peers cannot use TURN over DTLS, nor TCP relays.
no-dtls
no-tcp-relay

# UDP ports of relayed media: open them in the firewall.
min-port=40000
max-port=40999

user-quota=12
total-quota=240
stale-nonce=600
fingerprint
no-cli
no-software-attribute
no-multicast-peers

# Networks the relay must never reach (this host, private and internal ranges; --deny adds more).
denied-peer-ip=0.0.0.0-0.255.255.255
denied-peer-ip=10.0.0.0-10.255.255.255
denied-peer-ip=100.64.0.0-100.127.255.255
denied-peer-ip=127.0.0.0-127.255.255.255
denied-peer-ip=169.254.0.0-169.254.255.255
denied-peer-ip=172.16.0.0-172.31.255.255
denied-peer-ip=192.0.0.0-192.0.0.255
denied-peer-ip=192.168.0.0-192.168.255.255
denied-peer-ip=198.18.0.0-198.19.255.255
denied-peer-ip=fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff
denied-peer-ip=fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff
denied-peer-ip=::1-::1
denied-peer-ip=203.0.113.0-203.0.113.255
denied-peer-ip=2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff
# Allowed although denied above (--allow, and --relay-ip: relayed peers meet at the relay's address).
allowed-peer-ip=10.9.0.0-10.9.0.255
allowed-peer-ip=198.18.0.1-198.18.0.1
"""


def turn(*urls: str) -> TurnSettings:
    return TurnSettings(urls=tuple(parse_turn_url(u) for u in urls), secret=SECRET.encode(), realm="example.org")


def test_the_configuration_matches_the_settings() -> None:
    options = RelayOptions(
        deny=(parse_network("203.0.113.0/24", "--deny"), parse_network("2001:db8::/32", "--deny")),
        allow=(parse_network("10.9.0.0/24", "--allow"),), relay_ips=(ipaddress.ip_address("198.18.0.1"),),
        tls_cert=Path("/etc/deskhand/relay.crt"), tls_key=Path("/etc/deskhand/relay.key"),
        min_port=40000, max_port=40999, total_quota=240,
    )
    rendered = render(turn("turn:relay.example.org", "turn:relay.example.org?transport=tcp",
                           "turns:relay.example.org:443"), options)
    assert rendered == GOLDEN


def test_without_turns_urls_tls_is_off_and_no_range_is_allowed() -> None:
    rendered = render(turn("turn:relay.example.org:3479", "turn:relay.example.org:3479?transport=tcp"), RelayOptions())
    lines = rendered.splitlines()
    assert "listening-port=3479" in lines and "no-tls" in lines
    assert not [line for line in lines if line.startswith(("tls-listening-port", "cert=", "pkey=", "allowed-peer-ip"))]
    assert len([line for line in lines if line.startswith("denied-peer-ip=")]) == len(DENIED_NETWORKS)


def test_every_private_and_internal_network_is_denied() -> None:
    rendered = render(turn("turn:relay.example.org"), RelayOptions())
    ranges = [line.split("=", 1)[1].split("-") for line in rendered.splitlines() if line.startswith("denied-peer-ip=")]
    covered = [(ipaddress.ip_address(a), ipaddress.ip_address(b)) for a, b in ranges]

    def denied(address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return any(low.version == ip.version and low <= ip <= high for low, high in covered)

    for inside in ("0.0.0.0", "10.1.2.3", "100.64.0.1", "127.0.0.1", "169.254.169.254", "172.31.255.255",
                   "192.0.0.8", "192.168.1.1", "198.18.9.1", "::1", "fd12::1", "fe80::1"):
        assert denied(inside), inside
    for outside in ("8.8.8.8", "172.32.0.1", "100.128.0.1", "198.20.0.1", "2606:4700::1"):
        assert not denied(outside), outside


def test_the_ports_come_from_the_urls() -> None:
    assert listening_ports(turn("turn:r", "turns:r").urls) == (3478, 5349)
    assert listening_ports(turn("turns:r:443", "turn:r:443?transport=tcp").urls) == (None, 443)  # TCP on the TLS port
    assert listening_ports(turn("turn:r:80?transport=tcp").urls) == (80, None)


@pytest.mark.parametrize(("urls", "options", "words"), [
    (("turn:r:3478", "turn:r:3479"), RelayOptions(), "UDP ports 3478, 3479"),
    (("turns:r:443", "turns:r:5349"), RelayOptions(tls_cert=Path("c"), tls_key=Path("k")), "TLS ports 443, 5349"),
    (("turn:r:3478", "turn:r:80?transport=tcp"), RelayOptions(), "TCP port 80 beside UDP port 3478"),
    (("turns:r:443",), RelayOptions(), "give --tls-cert and --tls-key"),
    (("turn:r",), RelayOptions(tls_cert=Path("c"), tls_key=Path("k")), "has none"),
    (("turn:r",), RelayOptions(min_port=50000, max_port=40000), "--min-port and --max-port"),
])
def test_a_relay_that_could_not_work_is_refused(urls: tuple[str, ...], options: RelayOptions, words: str) -> None:
    with pytest.raises(TurnConfigError, match=words):
        render(turn(*urls), options)


@pytest.mark.parametrize("text", ["10.0.0.1/8", "10.0.0.0/33", "relay.example.org", "", "fd00::1/8"])
def test_a_bad_network_is_refused_naming_the_option(text: str) -> None:
    with pytest.raises(TurnConfigError, match=r"--deny .* is not a network"):
        parse_network(text, "--deny")


@pytest.fixture
def turn_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("DESKHAND_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DESKHAND_TURN_URLS", "turn:198.18.0.1,turn:198.18.0.1?transport=tcp")
    monkeypatch.setenv("DESKHAND_TURN_SECRET", SECRET)


def test_the_command_prints_the_configuration(turn_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["turn-config", "--relay-ip", "198.18.0.1", "--deny", "198.51.100.0/24"]) == 0
    out = capsys.readouterr().out
    assert f"static-auth-secret={SECRET}\n" in out and "realm=deskhand\n" in out
    assert "denied-peer-ip=198.51.100.0-198.51.100.255\n" in out
    assert out.endswith("allowed-peer-ip=198.18.0.1-198.18.0.1\n")


def test_the_command_refuses_bad_options_and_missing_settings(turn_env: None, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["turn-config", "--allow", "10.0.0.1/8"]) == 2
    assert "deskhand-broker: --allow '10.0.0.1/8' is not a network" in capsys.readouterr().err
    assert main(["turn-config", "--relay-ip", "198.18.0.0/15"]) == 2
    assert "--relay-ip '198.18.0.0/15' is not an IP address" in capsys.readouterr().err
    monkeypatch.delenv("DESKHAND_TURN_URLS")
    monkeypatch.delenv("DESKHAND_TURN_SECRET")
    assert main(["turn-config"]) == 2
    assert "set DESKHAND_TURN_URLS and DESKHAND_TURN_SECRET first" in capsys.readouterr().err


def test_a_denied_relay_address_in_the_urls_is_pointed_out_not_allowed() -> None:
    # Allowing it is the operator's choice: it opens whatever listens there to credential holders.
    rendered = render(turn("turn:198.18.0.1", "turn:198.18.0.1?transport=tcp"), RelayOptions())
    assert "allowed-peer-ip" not in rendered
    assert rendered.endswith("cannot reach each other unless it is allowed (--relay-ip 198.18.0.1).\n")
    assert rendered.count("# Note:") == 1
    allowed = render(turn("turn:198.18.0.1"), RelayOptions(relay_ips=(ipaddress.ip_address("198.18.0.1"),)))
    assert "# Note:" not in allowed
    assert "# Note:" not in render(turn("turn:203.0.113.7", "turn:relay.example.org"), RelayOptions())
