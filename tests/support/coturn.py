"""coturn, the TURN server, inside the relay namespace of a :class:`~tests.support.netns.NetTopology`.

    with CoturnServer.start(net, tmp_path) as turn:
        turn.url("udp")                       # "turn:198.18.0.1:3478?transport=udp" ("tcp", "tls")
        turn.urls                             # udp, tcp, and turns: when TLS is on
        turn.credential(user_id, expires_at)  # minted as the broker mints them (shared secret)
        BrokerProcess.start(turn.broker_env("udp", "tcp"), host=PUBLIC_IP, wrap=net.wrap("relay"))
        turn.allocations()                    # [Allocation(username, tls)] accepted so far
        turn.log()                            # what coturn wrote so far

It runs ``turnserver -c <dir>/turnserver.conf`` with the REST-API scheme
(``use-auth-secret``: usernames ``EXPIRY:ID``, passwords HMAC'd with :data:`SECRET`),
listening on the relay's public address only (3478 for UDP and TCP, 5349 for TLS with a
certificate naming 198.18.0.1, written to ``<dir>/tls``), relaying from that address.
Peers in the private ranges are refused (403), the whole test range 198.18.0.0/15 among
them, except the relay address itself: when both peers relay through the same server,
each one's permission names the other's allocation on 198.18.0.1. Everything coturn
writes (user database, pid file, log) stays in the directory given. A server that does
not start raises :class:`CoturnStartError` with its log, and the log is printed when
the ``with`` block fails, so a refused allocation can be read next to the failing test.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broker.sessions.turn_credentials import TurnCredential, mint
from tests.support.netns import PUBLIC_IP, NetTopology
from tests.support.processes import end_process
from tests.support.tls import CertificateFiles, self_signed_certificate

PACKAGE = "coturn"
"""The Debian/Ubuntu package that provides ``turnserver``."""

SECRET = "deskhand-test-turn-secret-0123456789abcdef"
"""The secret coturn and the broker share (32 characters or more, of the characters the broker allows)."""
REALM = "deskhand.test"
PORT = 3478
TLS_PORT = 5349
RELAY_PORTS = (49152, 49407)

DENIED_PEERS = (
    "0.0.0.0-0.255.255.255", "10.0.0.0-10.255.255.255", "100.64.0.0-100.127.255.255",
    "127.0.0.0-127.255.255.255", "169.254.0.0-169.254.255.255", "172.16.0.0-172.31.255.255",
    "192.0.0.0-192.0.0.255", "192.168.0.0-192.168.255.255", "198.18.0.0-198.19.255.255",
)
"""Where coturn must not relay to: the private and special ranges, and all of the test range."""



NEW_ALLOCATION = re.compile(r"session \d+: new, realm=<[^>]*>, username=<(?P<username>[^>]*)>.*?(?:method=(?P<method>\S+))?$", re.M)
"""coturn's verbose line for an accepted allocation; ``method=TLSv1.2`` ends it when the client came over TLS."""


@dataclass(frozen=True)
class Allocation:
    """One allocation coturn accepted: the TURN username, and the TLS version when the client used TLS."""

    username: str
    tls: str | None


class CoturnMissing(RuntimeError):
    """``turnserver`` is not installed; the message names the package."""


class CoturnStartError(RuntimeError):
    """coturn did not come up; the message holds its log."""


@dataclass
class CoturnServer:
    """A running coturn in a topology's relay namespace."""

    directory: Path
    process: subprocess.Popen[Any]
    certificate: CertificateFiles | None
    """The TLS listener's certificate, also the CA a client trusts; ``None`` without TLS."""

    @property
    def log_file(self) -> Path:
        """Where coturn writes its log."""
        return self.directory / "turnserver.log"

    def url(self, leg: str) -> str:
        """The URL of one listener: ``"udp"``, ``"tcp"`` (both on 3478) or ``"tls"`` (``turns:`` on 5349)."""
        if leg == "tls":
            return f"turns:{PUBLIC_IP}:{TLS_PORT}?transport=tcp"
        return f"turn:{PUBLIC_IP}:{PORT}?transport={leg}"

    @property
    def urls(self) -> list[str]:
        """Every URL the server answers: UDP, TCP, and TLS when it has a certificate."""
        return [self.url(leg) for leg in ("udp", "tcp", "tls")[: 3 if self.certificate else 2]]

    def broker_env(self, *legs: str, secret: str = SECRET) -> dict[str, str]:
        """The settings of a broker that hands out this server's URLs of ``legs`` (all by default)
        with credentials it mints per peer and session (with ``secret``: give another to have
        them refused); real candidates, not loopback ones."""
        return {
            "DESKHAND_TURN_URLS": ",".join(self.url(leg) for leg in legs) if legs else ",".join(self.urls),
            "DESKHAND_TURN_SECRET": secret,
            "DESKHAND_TURN_REALM": REALM,
            "DESKHAND_ICE_LOOPBACK": "false",
        }

    @property
    def address(self) -> str:
        """``198.18.0.1:3478``."""
        return f"{PUBLIC_IP}:{PORT}"

    def credential(self, user_id: str, expires_at: int, secret: str = SECRET) -> TurnCredential:
        """A username and password for ``user_id`` until ``expires_at``, minted with ``secret`` (this server's by default)."""
        return mint(secret.encode(), user_id, expires_at)

    def allocations(self) -> list[Allocation]:
        """Every allocation coturn accepted so far, oldest first (from its verbose log)."""
        return [Allocation(m.group("username"), m.group("method")) for m in NEW_ALLOCATION.finditer(self.log())]

    def log(self) -> str:
        """Everything coturn logged so far."""
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log written)"

    @classmethod
    @contextmanager
    def start(cls, net: NetTopology, directory: Path, *, tls: bool = True, timeout: float = 15.0) -> Iterator[CoturnServer]:
        """Run coturn in ``net``'s relay namespace for the ``with`` block, its files in ``directory``."""
        binary = shutil.which("turnserver")
        if binary is None:
            raise CoturnMissing(f"turnserver is not installed: apt-get install {PACKAGE} (./scripts/test does it)")
        directory.mkdir(parents=True, exist_ok=True)
        certificate = None
        if tls:
            (directory / "tls").mkdir(exist_ok=True)
            certificate = self_signed_certificate(directory / "tls", PUBLIC_IP)
        config = directory / "turnserver.conf"
        config.write_text(render_config(directory, certificate))
        output = (directory / "turnserver.out").open("w")
        process = net.popen("relay", [binary, "-c", str(config)], stdout=output, stderr=subprocess.STDOUT)
        server = cls(directory, process, certificate)
        try:
            server._wait_listening(net, timeout)
            yield server
        except BaseException:
            print(f"--- coturn's log ({server.log_file}) ---\n{server.log()}")
            raise
        finally:
            end_process(process)
            output.close()

    def listening(self, net: NetTopology) -> set[tuple[str, int]]:
        """The (``"udp"``/``"tcp"``, port) sockets listening on the public address, as ``ss`` lists them in the relay."""
        listed = net.run("relay", "ss", "-Hlnut", check=True).stdout
        found = set()
        for line in listed.splitlines():
            fields = line.split()
            if len(fields) >= 5 and fields[4].startswith(f"{PUBLIC_IP}:"):
                found.add((fields[0], int(fields[4].rsplit(":", 1)[1])))
        return found

    def _wait_listening(self, net: NetTopology, timeout: float) -> None:
        """Until coturn listens on each of its ports (it logs no line for that); raises if it exits or stalls."""
        wanted = {("udp", PORT), ("tcp", PORT)} | ({("tcp", TLS_PORT)} if self.certificate else set())
        deadline = time.monotonic() + timeout
        while not wanted <= self.listening(net):
            if self.process.poll() is not None:
                out = (self.directory / "turnserver.out").read_text(errors="replace")
                raise CoturnStartError(f"turnserver exited with {self.process.returncode}:\n{out}\n{self.log()}")
            if time.monotonic() > deadline:
                raise CoturnStartError(f"turnserver did not listen on {PUBLIC_IP} within {timeout:g} s:\n{self.log()}")
            time.sleep(0.05)


def render_config(directory: Path, certificate: CertificateFiles | None) -> str:
    """``turnserver.conf`` for a test server keeping its files in ``directory``."""
    lines = [
        f"listening-ip={PUBLIC_IP}",
        f"relay-ip={PUBLIC_IP}",
        f"listening-port={PORT}",
        f"min-port={RELAY_PORTS[0]}",
        f"max-port={RELAY_PORTS[1]}",
        f"realm={REALM}",
        "use-auth-secret",
        f"static-auth-secret={SECRET}",
        "fingerprint",
        "no-cli",
        "no-dtls",
        "no-multicast-peers",
        "no-software-attribute",
        *(f"denied-peer-ip={span}" for span in DENIED_PEERS),
        # "allowed" wins over "denied": both peers' allocations live on this address.
        f"allowed-peer-ip={PUBLIC_IP}",
        f"userdb={directory / 'turndb'}",
        f"pidfile={directory / 'turnserver.pid'}",
        f"log-file={directory / 'turnserver.log'}",
        "simple-log",
        "verbose",  # one line per allocation: who, and over TLS or not (Allocation)
        "no-stdout-log",
    ]
    if certificate is None:
        lines.append("no-tls")
    else:
        lines += [f"tls-listening-port={TLS_PORT}", f"cert={certificate.cert}", f"pkey={certificate.key}", "no-tlsv1", "no-tlsv1_1"]
    return "\n".join(lines) + "\n"
