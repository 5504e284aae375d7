"""The relay rig of issue 18: namespaces that only meet at the relay, and coturn's refusals.

Everything here is real: three network namespaces joined by veth pairs, coturn in the
relay one, and aioice's TURN client (the one aiortc peers use) run as a probe in the
user's namespace. Credentials are minted by the broker's own code
(:mod:`broker.sessions.turn_credentials`).
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from broker.sessions.turn_credentials import turn_user_id
from tests.support.coturn import TLS_PORT, CoturnServer
from tests.support.netns import PRIVATE_IP, PUBLIC_IP, STALE, NetTopology, remove_stale_namespaces
from tests.support.turn_probe import probe, start_echo

pytestmark = pytest.mark.slow

SESSION = "3f0c8e5e-8d7c-4d55-9a43-6a1d3b1c2f10"


def allocate(net: NetTopology, turn: CoturnServer, username: str, password: str, *peers: str, transport: str = "udp") -> dict:
    """The probe's ``allocate`` from the user's namespace."""
    server = turn.address if transport != "tls" else f"{PUBLIC_IP}:{TLS_PORT}"
    args = ["allocate", "--server", server, "--username", username, "--password", password, "--transport", transport]
    if transport == "tls":
        assert turn.certificate is not None
        args += ["--ca-file", str(turn.certificate.cert)]
    for peer in peers:
        args += ["--peer", peer]
    return probe(net, "user", *args)


def namespaces() -> set[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in listed.splitlines() if line.strip()}


# --- the topology ---------------------------------------------------------------------


def test_user_and_tech_reach_the_relay_and_nothing_else(net_topology: NetTopology) -> None:
    net = net_topology
    start_echo(net, "relay", f"{PUBLIC_IP}:7001")
    start_echo(net, "relay", f"{PRIVATE_IP}:7001")
    start_echo(net, "tech", f"{net.address('tech')}:7001")
    start_echo(net, "user", f"{net.address('user')}:7001")

    assert probe(net, "user", "reach", "--to", f"{PUBLIC_IP}:7001") == {"reached": True}
    assert probe(net, "tech", "reach", "--to", f"{PUBLIC_IP}:7001") == {"reached": True}
    assert probe(net, "user", "reach", "--to", f"{net.address('tech')}:7001")["reached"] is False
    assert probe(net, "tech", "reach", "--to", f"{net.address('user')}:7001")["reached"] is False
    assert probe(net, "user", "reach", "--to", f"{PRIVATE_IP}:7001")["reached"] is False
    # The relay itself reaches both edges: it is only the forwarding that is off.
    assert probe(net, "relay", "reach", "--to", f"{net.address('tech')}:7001") == {"reached": True}
    assert net.run("relay", "cat", "/proc/sys/net/ipv4/ip_forward", check=True).stdout.strip() == "0"
    assert "default" not in net.run("user", "ip", "route", check=True).stdout
    assert "default" not in net.run("tech", "ip", "route", check=True).stdout


def test_a_cut_link_passes_nothing_until_restored(net_topology: NetTopology) -> None:
    net = net_topology
    start_echo(net, "relay", f"{PUBLIC_IP}:7002")
    net.cut("user")
    try:
        assert probe(net, "user", "reach", "--to", f"{PUBLIC_IP}:7002")["reached"] is False
        assert probe(net, "tech", "reach", "--to", f"{PUBLIC_IP}:7002") == {"reached": True}
    finally:
        net.restore("user")
    assert probe(net, "user", "reach", "--to", f"{PUBLIC_IP}:7002") == {"reached": True}


def test_routed_edges_reach_each_other_but_not_the_private_network_and_are_separated_again(
    net_topology: NetTopology,
) -> None:
    net = net_topology
    start_echo(net, "tech", f"{net.address('tech')}:7010")
    start_echo(net, "user", f"{net.address('user')}:7010")
    start_echo(net, "relay", f"{PRIVATE_IP}:7010")
    with net.routed():
        assert probe(net, "user", "reach", "--to", f"{net.address('tech')}:7010") == {"reached": True}
        assert probe(net, "tech", "reach", "--to", f"{net.address('user')}:7010") == {"reached": True}
        assert probe(net, "user", "reach", "--to", f"{PRIVATE_IP}:7010")["reached"] is False
    assert probe(net, "user", "reach", "--to", f"{net.address('tech')}:7010")["reached"] is False
    assert net.run("relay", "cat", "/proc/sys/net/ipv4/ip_forward", check=True).stdout.strip() == "0"


def test_a_new_address_reaches_the_relay_and_the_old_one_is_gone() -> None:
    with NetTopology.create() as net:
        old = net.address("user")
        start_echo(net, "relay", f"{PUBLIC_IP}:7003")
        new = net.change_address("user")
        assert new != old
        assert new in net.run("user", "ip", "-4", "addr", check=True).stdout
        assert old not in net.run("user", "ip", "-4", "addr", check=True).stdout
        assert probe(net, "user", "reach", "--to", f"{PUBLIC_IP}:7003") == {"reached": True}


def test_namespaces_and_their_processes_go_when_the_block_ends_even_on_an_error() -> None:
    with pytest.raises(KeyboardInterrupt), NetTopology.create() as net:
        sleeper = net.popen("relay", ["sleep", "600"])
        made = {net.ns(side) for side in ("user", "tech", "relay")}
        assert made <= namespaces()
        raise KeyboardInterrupt
    assert not made & namespaces()
    assert sleeper.poll() is not None


def test_namespaces_left_by_a_dead_run_are_removed_and_live_runs_kept(net_topology: NetTopology) -> None:
    finished = subprocess.Popen(["true"])
    finished.wait()  # its pid now names a run that is over
    stale = f"dh{finished.pid}n0-user"
    assert STALE.match(stale)
    subprocess.run(["ip", "netns", "add", stale], check=True)
    try:
        assert stale in remove_stale_namespaces()
        assert stale not in namespaces()
        assert net_topology.ns("user") in namespaces()  # ours: this process is alive
        assert net_topology.prefix.startswith(f"dh{os.getpid()}n")
    finally:
        subprocess.run(["ip", "netns", "del", stale], capture_output=True)


# --- coturn -----------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_minted_credentials_allocate_and_reach_the_relays_own_address(
    net_topology: NetTopology, coturn: CoturnServer, transport: str
) -> None:
    credential = coturn.credential(turn_user_id(SESSION, "host"), int(time.time()) + 600)
    report = allocate(net_topology, coturn, credential.username, credential.password, f"{PUBLIC_IP}:50000",
                      transport=transport)
    assert report["allocate"] == "ok", (report, coturn.log()[-2000:])
    assert report["relayed"].startswith(f"{PUBLIC_IP}:")
    assert report["binds"] == {f"{PUBLIC_IP}:50000": "ok"}


def test_expired_credentials_are_refused(net_topology: NetTopology, coturn: CoturnServer) -> None:
    credential = coturn.credential(turn_user_id(SESSION, "host"), int(time.time()) - 1)
    report = allocate(net_topology, coturn, credential.username, credential.password)
    assert report["allocate"] == 401, report


def test_credentials_minted_with_another_secret_are_refused(net_topology: NetTopology, coturn: CoturnServer) -> None:
    forged = coturn.credential(turn_user_id(SESSION, "host"), int(time.time()) + 600, secret="not-" + "x" * 40)
    report = allocate(net_topology, coturn, forged.username, forged.password)
    assert report["allocate"] == 401, report


def test_a_credential_for_one_peer_does_not_pass_as_another(net_topology: NetTopology, coturn: CoturnServer) -> None:
    host = coturn.credential(turn_user_id(SESSION, "host"), int(time.time()) + 600)
    report = allocate(net_topology, coturn, host.username.replace(".host", ".tech"), host.password)
    assert report["allocate"] == 401, report


def test_the_brokers_private_network_and_the_peers_own_addresses_are_forbidden(
    net_topology: NetTopology, coturn: CoturnServer
) -> None:
    net = net_topology
    start_echo(net, "relay", f"{PRIVATE_IP}:7004")
    credential = coturn.credential(turn_user_id(SESSION, "tech"), int(time.time()) + 600)
    private, tech_host = f"{PRIVATE_IP}:7004", f"{net.address('tech')}:7004"
    report = allocate(net, coturn, credential.username, credential.password, private, tech_host, "127.0.0.1:7004")
    assert report["allocate"] == "ok", report
    assert report["binds"] == {private: 403, tech_host: 403, "127.0.0.1:7004": 403}
    assert f"A peer IP {PRIVATE_IP} denied" in coturn.log()
