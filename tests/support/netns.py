"""Three network namespaces that make a relayed session the only possible one: user, tech, relay.

    with NetTopology.create() as net:
        net.popen("relay", ["turnserver", "-c", conf])      # runs inside the relay namespace
        net.run("user", "ip", "route")                     # to completion, output captured
        net.wrap("user")                                   # ["ip", "netns", "exec", "dh…-user"]: an argv prefix
        with net.entered("tech"): ...                      # this thread's sockets in the tech namespace
        net.cut("user"); ...; net.restore("user")          # the user's link down, then up
        net.change_address("user")                         # the user's address moves
        with net.routed(): ...                             # user and tech reach each other (a direct path)
        net.veths["user"]                                  # Veth("u0", "r1"): the link's two ends

What can reach what is checked with :mod:`tests.support.turn_probe` (there is no ping here).
To make a link slow, lossy or far away, see :mod:`tests.support.link_emulator` (rate with
``tc tbf`` on either end of a veth; delay, jitter and loss with a UDP relay in front of
coturn, since this kernel has no netem).

The layout (TEST-NET-2, 198.18.0.0/15, only)::

    user  u0 198.18.1.2/30 ──── r1 198.18.1.1/30 ┐
                                                 ├ relay: lo up, ip_forward=0 (asserted)
    tech  t0 198.18.2.2/30 ──── r2 198.18.2.1/30 ┘   pub0  198.18.0.1/32  "public": broker and coturn
                                                      priv0 198.18.9.1/24  the broker's own private network

user and tech each have one route, to 198.18.0.1/32 through the relay, and no default
route; the relay does not forward. So they cannot reach each other, nor 198.18.9.0/24:
the only media path between them is two TURN allocations on 198.18.0.1.

Names are ``dh<pid>n<k>-user`` and so on (unique per process and topology). Everything
lives inside the namespaces, so deleting them removes every link; processes started
with :meth:`NetTopology.popen` are ended first, as a live process would keep its
namespace alive. A run that crashed leaves namespaces whose pid is gone: the next
:meth:`NetTopology.create` deletes them. Creating the namespaces needs root (or
CAP_NET_ADMIN and CAP_SYS_ADMIN) and ``ip``; when that fails :class:`NetnsUnavailable`
says why (the ``net_topology`` fixture fails under CI=true and skips elsewhere).
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from tests.support.line_child import REPO
from tests.support.processes import end_process

Side = Literal["user", "tech", "relay"]
Edge = Literal["user", "tech"]

PUBLIC_IP = "198.18.0.1"
"""The relay's "public" address: the broker and coturn listen here; the only address user and tech can reach."""
PRIVATE_IP = "198.18.9.1"
"""The relay's address on the broker's private network, 198.18.9.0/24: coturn must refuse to relay there."""

STALE = re.compile(r"^dh(\d+)n\d+-(user|tech|relay)$")
"""Namespace names this module makes; the pid tells whether the run that made them is alive."""

NETNS_DIR = "/var/run/netns"
"""Where ``ip netns add`` pins the namespaces it names."""

_serial = itertools.count()


class NetnsUnavailable(RuntimeError):
    """The namespaces could not be made here (not root, no ``ip``, a container without the capability)."""


@dataclass(frozen=True)
class Veth:
    """One link between an edge namespace and the relay: the device name on each side."""

    edge: str
    relay: str


@dataclass
class _Link:
    veth: Veth
    block: int
    """The third octet of the edge's 198.18.<block>.0/24; /30 number ``n`` of it is the link's subnet."""
    subnet: int = 0

    def relay_ip(self) -> str:
        return f"198.18.{self.block}.{4 * self.subnet + 1}"

    def edge_ip(self) -> str:
        return f"198.18.{self.block}.{4 * self.subnet + 2}"


@dataclass
class NetTopology:
    """The three namespaces; make it with :meth:`create` (a context manager that always tears it down)."""

    prefix: str
    links: dict[Edge, _Link] = field(default_factory=dict)
    processes: list[subprocess.Popen[Any]] = field(default_factory=list)

    # --- names and addresses ------------------------------------------------------------

    def ns(self, side: Side) -> str:
        """The namespace's name, e.g. ``dh1234n0-user``."""
        return f"{self.prefix}-{side}"

    @property
    def veths(self) -> dict[Edge, Veth]:
        """The link of each edge: ``veths["user"].edge`` is in the user namespace, ``.relay`` in the relay."""
        return {edge: link.veth for edge, link in self.links.items()}

    def address(self, side: Side) -> str:
        """The address of ``side`` (the relay's public one for ``"relay"``)."""
        return PUBLIC_IP if side == "relay" else self.links[side].edge_ip()

    # --- running things inside ----------------------------------------------------------

    def wrap(self, side: Side) -> list[str]:
        """The argv prefix that runs a program inside ``side``: ``["ip", "netns", "exec", name]``."""
        return ["ip", "netns", "exec", self.ns(side)]

    def run(self, side: Side, *argv: str, check: bool = False, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside ``side`` to completion; output captured as text."""
        return subprocess.run(
            [*self.wrap(side), *argv], capture_output=True, text=True, check=check, timeout=timeout, cwd=REPO
        )

    def popen(self, side: Side, argv: Sequence[str], env: Mapping[str, str] | None = None, **kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` inside ``side`` (``env`` added to ours); ended at the latest when the topology goes."""
        kwargs.setdefault("cwd", REPO)
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        process: subprocess.Popen[Any] = subprocess.Popen(
            [*self.wrap(side), *argv], env={**os.environ, **(env or {})}, **kwargs
        )
        self.processes.append(process)
        return process

    @contextmanager
    def entered(self, side: Side) -> Iterator[None]:
        """Move the calling thread into ``side`` for the ``with`` block, then back.

        For a test whose own code is one of the peers (the Python console): sockets it
        opens meanwhile, and processes it starts, are in ``side``; sockets opened before
        stay where they were. A network namespace is a per-thread property, so threads
        that already exist (pytest's, an executor's) are not moved. A long-lived process
        started meanwhile (a session-wide Xvfb) would be killed with the namespace: enter
        it in the test's body, after the fixtures are set up.
        """
        with open("/proc/thread-self/ns/net") as home, open(f"{NETNS_DIR}/{self.ns(side)}") as target:
            _setns(target.fileno())
            try:
                yield
            finally:
                _setns(home.fileno())

    # --- what the tests do to the network -----------------------------------------------

    def cut(self, edge: Edge) -> None:
        """Take ``edge``'s link down at the relay's end: nothing passes, the edge keeps its address and route."""
        _ip("-n", self.ns("relay"), "link", "set", self.links[edge].veth.relay, "down")

    def restore(self, edge: Edge) -> None:
        """Bring the link :meth:`cut` took down back up."""
        _ip("-n", self.ns("relay"), "link", "set", self.links[edge].veth.relay, "up")

    @contextmanager
    def routed(self) -> Iterator[None]:
        """Let user and tech reach each other through the relay for the ``with`` block, then separate them again.

        The relay forwards, as an ordinary router between two networks would, and each
        edge gets a route to the other's block: a direct path over the same two links
        the relayed one takes, for comparing the two (``bench/relay_connect.py``).
        The broker's private network stays unreachable (no edge has a route to it).
        """
        pairs: tuple[tuple[Edge, Edge], ...] = (("user", "tech"), ("tech", "user"))
        routes = [(edge, f"198.18.{self.links[other].block}.0/24", self.links[edge].relay_ip()) for edge, other in pairs]
        self.run("relay", "sysctl", "-qw", "net.ipv4.ip_forward=1", check=True)
        try:
            for edge, block, via in routes:
                _ip("-n", self.ns(edge), "route", "replace", block, "via", via)
            yield
        finally:
            for edge, block, _via in routes:
                subprocess.run(["ip", "-n", self.ns(edge), "route", "del", block], capture_output=True, text=True)
            self.run("relay", "sysctl", "-qw", "net.ipv4.ip_forward=0", check=True)

    def change_address(self, edge: Edge) -> str:
        """Move ``edge`` to the next /30 of its block (its old address is gone); the new address.

        As when a laptop changes networks: candidates and allocations bound to the old
        address stop working, the relay stays reachable through the new one.
        """
        link = self.links[edge]
        old_edge, old_relay = link.edge_ip(), link.relay_ip()
        link.subnet += 1
        relay, edge_ns = self.ns("relay"), self.ns(edge)
        _ip("-n", relay, "addr", "add", f"{link.relay_ip()}/30", "dev", link.veth.relay)
        _ip("-n", edge_ns, "addr", "add", f"{link.edge_ip()}/30", "dev", link.veth.edge)
        _ip("-n", edge_ns, "addr", "del", f"{old_edge}/30", "dev", link.veth.edge)
        _ip("-n", relay, "addr", "del", f"{old_relay}/30", "dev", link.veth.relay)
        _ip("-n", edge_ns, "route", "replace", f"{PUBLIC_IP}/32", "via", link.relay_ip())
        return link.edge_ip()

    # --- life cycle ---------------------------------------------------------------------

    @classmethod
    @contextmanager
    def create(cls) -> Iterator[NetTopology]:
        """Make the namespaces for the ``with`` block; removed afterwards whatever happens (also on Ctrl-C)."""
        if shutil.which("ip") is None:
            raise NetnsUnavailable("the 'ip' program is missing: apt-get install iproute2")
        remove_stale_namespaces()
        net = cls(prefix=f"dh{os.getpid()}n{next(_serial)}")
        try:
            net._build()
            yield net
        finally:
            net._teardown()

    def _build(self) -> None:
        for side in ("relay", "user", "tech"):
            made = subprocess.run(["ip", "netns", "add", self.ns(side)], capture_output=True, text=True)
            if made.returncode != 0:
                raise NetnsUnavailable(
                    f"cannot create network namespaces ('ip netns add' said: {made.stderr.strip()}); "
                    "these tests need root, or CAP_NET_ADMIN and CAP_SYS_ADMIN"
                )
            _ip("-n", self.ns(side), "link", "set", "lo", "up")
        relay = self.ns("relay")
        # Stand-ins for dummy devices (containers often lack the dummy module): a veth pair
        # wholly inside the relay, the address on one end and the other end up and empty.
        for device, address in (("pub0", f"{PUBLIC_IP}/32"), ("priv0", f"{PRIVATE_IP}/24")):
            _ip("-n", relay, "link", "add", device, "type", "veth", "peer", f"{device}x")
            _ip("-n", relay, "addr", "add", address, "dev", device)
            _ip("-n", relay, "link", "set", f"{device}x", "up")
            _ip("-n", relay, "link", "set", device, "up")
        self.links = {"user": _Link(Veth("u0", "r1"), block=1), "tech": _Link(Veth("t0", "r2"), block=2)}
        for edge, link in self.links.items():
            edge_ns = self.ns(edge)
            _ip("link", "add", link.veth.edge, "netns", edge_ns, "type", "veth", "peer", link.veth.relay, "netns", relay)
            _ip("-n", edge_ns, "addr", "add", f"{link.edge_ip()}/30", "dev", link.veth.edge)
            _ip("-n", relay, "addr", "add", f"{link.relay_ip()}/30", "dev", link.veth.relay)
            _ip("-n", edge_ns, "link", "set", link.veth.edge, "up")
            _ip("-n", relay, "link", "set", link.veth.relay, "up")
            _ip("-n", edge_ns, "route", "add", f"{PUBLIC_IP}/32", "via", link.relay_ip())
        # The separation rests on this: a forwarding relay would route user <-> tech directly.
        self.run("relay", "sysctl", "-qw", "net.ipv4.ip_forward=0", "net.ipv6.conf.all.forwarding=0", check=True)
        forwarding = self.run("relay", "cat", "/proc/sys/net/ipv4/ip_forward", check=True).stdout.strip()
        if forwarding != "0":
            raise NetnsUnavailable(f"the relay namespace forwards (ip_forward={forwarding}) and could not be stopped")

    def _teardown(self) -> None:
        for process in reversed(self.processes):
            end_process(process)
        for side in ("user", "tech", "relay"):
            _delete_namespace(self.ns(side))


def remove_stale_namespaces() -> list[str]:
    """Delete the namespaces of runs whose process is gone (a crash, SIGKILL); their names."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    removed = []
    for line in listed.stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        if (match := STALE.match(name)) and not _alive(int(match.group(1))):
            _delete_namespace(name)
            removed.append(name)
    return removed


def _delete_namespace(name: str) -> None:
    """Kill what still runs inside ``name`` (it would keep the namespace alive), then delete it."""
    pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    subprocess.run(["ip", "netns", "del", name], capture_output=True, text=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


CLONE_NEWNET = 0x40000000


def _setns(fd: int) -> None:
    """setns(2) into the network namespace ``fd`` (Python 3.11 has no os.setns)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise NetnsUnavailable(f"'ip {' '.join(args)}' failed: {done.stderr.strip()}")
