"""One client of the broker's HTTP API, for every caller in both peers.

Joining, help requests, recording uploads, session events, file transfers and the
technician's console all talk to the broker through a :class:`BrokerClient`: it
holds the broker's address, the bearer token, the TLS trust of
:mod:`peer.transport`, the default timeouts and one connection pool, reused by
every request until :meth:`BrokerClient.aclose` (a later request opens a new one).
A refused request, and a broker that cannot be reached at all, become the caller's
own :class:`~peer.broker_errors.BrokerRefusal` kind, so callers catch what
concerns them and people read what to do.

It is built on aiohttp rather than httpx: a 4 MiB transfer chunk costs httpx five
to six times the CPU of aiohttp (0.5 s against 0.09 s per 256 MiB downloaded,
measured on this code's machines), and on a two-core machine running the broker
and both peers CPU is what bounds the transfer rate. As httpx did, the proxy the
environment names (``HTTPS_PROXY``, ``NO_PROXY``...) is used.
"""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, overload
from urllib.parse import urlsplit

import aiohttp
from pydantic import BaseModel, TypeAdapter, ValidationError

from .broker_errors import BrokerRefusal, refusal_from
from .transport import tls_context

R = TypeVar("R", bound=BrokerRefusal)
T = TypeVar("T")

DEFAULT_TIMEOUT = 15.0
"""Seconds to connect, and to wait for each piece of an answer, unless a client or a request says otherwise."""
CONNECTIONS = 12
"""Connections one client keeps open at most: a transfer's chunks in flight both ways, and a few calls beside."""
DEFAULT_HINT = "is it running, and is its address right?"
"""What a person reads after "cannot reach the broker at ..." unless the client says better."""

Query = Mapping[str, str | int | float | bool | None]
"""Query parameters; None leaves one out."""


IDLE_CONNECTION_SECONDS = 5.0
"""How long an idle pooled connection is kept for the next request. Shorter than the broker keeps
one (``DESKHAND_HTTP_KEEPALIVE_SECONDS``, 15 s): when the broker closes first, a request sent at
that moment fails with a reset. aiohttp's own default is 15 s, the broker's exactly."""


UNACKED_SECONDS = 6.0
"""How long data sent on a connection may go unacknowledged before the connection is given up
(``TCP_USER_TIMEOUT``, Linux). On a narrow uplink full of video, a recording upload lost its
packets and their retransmissions, and the kernel's doubling retransmission timeout then held it
12 s on a link that had long been free again (measured at 1 Mbit/s through the link emulator);
the same upload on a fresh connection took 1.4 s. A working link acknowledges within a round trip
and its queue, well inside this."""


def _socket_giving_up_when_unacked(addr_info: Any) -> socket.socket:
    """aiohttp's socket factory: a socket for ``addr_info`` that gives up after :data:`UNACKED_SECONDS`."""
    family, kind, proto, _, _ = addr_info
    sock = socket.socket(family=family, type=kind, proto=proto)
    if hasattr(socket, "TCP_USER_TIMEOUT"):  # Linux; elsewhere the kernel's own patience
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(UNACKED_SECONDS * 1000))
    return sock


@dataclass(frozen=True)
class Timeouts:
    """Seconds to open a connection, and to wait for each read of an answer (not for the whole answer)."""

    connect: float
    read: float


@dataclass(frozen=True)
class BrokerReply:
    """One whole answer of the broker: status, headers and body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def refusal(self, kind: type[R]) -> R:
        """This answer (a refusal) as the caller's ``kind``, with its error code and ``Retry-After``."""
        return refusal_from(kind, self.status, self.body, self.headers.get("Retry-After"))


class BrokerStream:
    """An answer whose body is read as it arrives (see :meth:`BrokerClient.stream`)."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.length: int | None = response.content_length
        """The body's length in bytes, when the broker said."""

    async def chunks(self, size: int) -> AsyncIterator[bytes]:
        """The body in pieces of ``size`` bytes (the last may be shorter)."""
        pending = bytearray()
        async for piece in self._response.content.iter_chunked(size):
            pending += piece
            if len(pending) >= size:
                yield bytes(pending)
                pending.clear()
        if pending:
            yield bytes(pending)


class BrokerClient:
    """The broker's HTTP API for one peer; use as ``async with BrokerClient(url, token) as broker:``.

    Paths are relative to the broker's URL (``API_PREFIX + "/join"``). ``token``, when set,
    goes with every request as ``Authorization: Bearer``; it may be changed (a sign-in sets
    it). ``hint`` ends the message of a broker that cannot be reached: what this client's
    user can do about it.
    """

    def __init__(
        self, broker_url: str, token: str | None = None, *, timeout: float | Timeouts = DEFAULT_TIMEOUT,
        connections: int = CONNECTIONS, hint: str = DEFAULT_HINT,
    ) -> None:
        self.broker_url = broker_url.rstrip("/")
        self.token = token
        self.hint = hint
        self._timeout = _client_timeout(timeout)
        self._connections = connections
        self._proxy = environment_proxy(self.broker_url)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> BrokerClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (a later request opens a new one)."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _pool(self) -> aiohttp.ClientSession:
        # Opened on first use, inside the event loop that uses it (aiohttp binds a session to its loop).
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(
                    limit=self._connections, ssl=tls_context(), keepalive_timeout=IDLE_CONNECTION_SECONDS,
                    socket_factory=_socket_giving_up_when_unacked,
                ),
            )
        return self._session

    # --- requests ---------------------------------------------------------------------

    async def send(
        self, method: str, path: str, *, refusal: type[BrokerRefusal], body: BaseModel | None = None,
        exclude_unset: bool = False, data: bytes | memoryview | AsyncIterable[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        params: Query | None = None, timeout: float | Timeouts | None = None, auth: bool = True,
    ) -> BrokerReply:
        """One request; the whole answer, whatever its status.

        ``body`` goes as JSON (only its fields that were set with ``exclude_unset``: a PATCH),
        ``data`` as it is (an async iterable of pieces goes chunked, as they come).
        A broker that cannot be reached raises ``refusal`` with ``status``
        None and a message saying so.
        """
        try:
            async with self._pool().request(
                method, self.broker_url + path, **self._options(body, exclude_unset, data, headers, params, timeout, auth),
            ) as response:
                return BrokerReply(response.status, response.headers, await response.read())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self.unreachable(refusal, exc) from None

    @overload
    async def call(self, method: str, path: str, result: None, *, refusal: type[BrokerRefusal], **options: Any) -> None: ...
    @overload
    async def call(self, method: str, path: str, result: type[T], *, refusal: type[BrokerRefusal], **options: Any) -> T: ...

    async def call(self, method: str, path: str, result: type[T] | None, *, refusal: type[BrokerRefusal], **options: Any) -> T | None:
        """One request whose answer is ``result`` (a pydantic model, ``list[Model]``...; None: no answer wanted).

        A refusal raises ``refusal`` with the broker's status, error code, message and
        ``Retry-After``; so does an answer that is not a ``result``. ``options`` as :meth:`send`.
        """
        return self.read(await self.send(method, path, refusal=refusal, **options), result, refusal=refusal, asked=f"{method} {path}")

    @overload
    def read(self, reply: BrokerReply, result: None, *, refusal: type[BrokerRefusal], asked: str) -> None: ...
    @overload
    def read(self, reply: BrokerReply, result: type[T], *, refusal: type[BrokerRefusal], asked: str) -> T: ...

    def read(self, reply: BrokerReply, result: type[T] | None, *, refusal: type[BrokerRefusal], asked: str) -> T | None:
        """``reply`` (the answer to ``asked``, a method and path) as ``result``; a refusal, or an answer that is
        not a ``result``, raises ``refusal``."""
        if reply.status >= 400:
            raise reply.refusal(refusal)
        if result is None:
            return None
        try:
            answer: T = _adapter(result).validate_json(reply.body)
        except ValidationError:
            # No status: what answered is not the broker (a captive portal, another server), as if none had.
            raise refusal(
                f"the broker at {self.broker_url} answered {asked} with something that is not a Deskhand "
                "broker's answer; is the address right?",
            ) from None
        return answer

    @asynccontextmanager
    async def stream(
        self, method: str, path: str, *, refusal: type[BrokerRefusal], params: Query | None = None,
        timeout: float | Timeouts | None = None,
    ) -> AsyncIterator[BrokerStream]:
        """A request whose answer's body is read as it arrives (a download); a refusal raises ``refusal``.

        A connection lost while the body is read raises ``refusal`` as well.
        """
        try:
            async with self._pool().request(
                method, self.broker_url + path, **self._options(None, False, None, None, params, timeout, True),
            ) as response:
                if response.status >= 400:
                    raise BrokerReply(response.status, response.headers, await response.read()).refusal(refusal)
                yield BrokerStream(response)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self.unreachable(refusal, exc) from None

    def unreachable(self, kind: type[R], exc: BaseException) -> R:
        """``exc`` (a connection refused, a timeout, a certificate not trusted) as ``kind``, for people."""
        why = str(exc) or "no answer in time"
        return kind(f"cannot reach the broker at {self.broker_url} ({exc.__class__.__name__}: {why}); {self.hint}")

    def _options(
        self, body: BaseModel | None, exclude_unset: bool, data: bytes | memoryview | AsyncIterable[bytes] | None,
        headers: Mapping[str, str] | None, params: Query | None, timeout: float | Timeouts | None, auth: bool,
    ) -> dict[str, Any]:
        sent = dict(headers or {})
        if auth and self.token is not None:
            sent["Authorization"] = f"Bearer {self.token}"
        options: dict[str, Any] = {"headers": sent, "proxy": self._proxy}
        if body is not None:
            sent["Content-Type"] = "application/json"
            options["data"] = body.model_dump_json(exclude_unset=exclude_unset).encode()
        elif data is not None:
            options["data"] = data
        if params is not None:
            options["params"] = {name: _query_value(value) for name, value in params.items() if value is not None}
        if timeout is not None:
            options["timeout"] = _client_timeout(timeout)
        return options


def environment_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``, minus ``NO_PROXY``)."""
    parts = urlsplit(url)
    if not parts.hostname or urllib.request.proxy_bypass(parts.hostname):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(parts.scheme) or proxies.get("all")


def _client_timeout(timeout: float | Timeouts) -> aiohttp.ClientTimeout:
    if not isinstance(timeout, Timeouts):
        timeout = Timeouts(connect=timeout, read=timeout)
    # No limit on the whole request: a long poll or a big download may take long while bytes keep coming.
    return aiohttp.ClientTimeout(total=None, sock_connect=timeout.connect, sock_read=timeout.read)


def _query_value(value: str | int | float | bool) -> str:
    """A query value as the broker reads it (``true``/``false`` for booleans, as httpx wrote them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_adapters: dict[Any, TypeAdapter[Any]] = {}


def _adapter(result: Any) -> TypeAdapter[Any]:
    """One validator per answer type (building one costs more than validating a small answer)."""
    adapter = _adapters.get(result)
    if adapter is None:
        adapter = _adapters[result] = TypeAdapter(result)
    return adapter
