"""The one place that reaches into uvicorn's internals: limits on a request's head, lean WebSockets.

The broker runs uvicorn with httptools (``uvicorn[standard]`` installs it, uvloop too, and
uvicorn's "auto" would pick it as well), and uvicorn bounds neither the size of a
request's head (request line and headers) nor the time it takes to arrive: httptools
gathers a header of any size in memory, and a new connection, or one whose next request
has begun, has no timer at all (``timeout_keep_alive`` runs only between requests, and the
first byte stops it). uvicorn's ``h11_max_incomplete_event_size`` applies to its h11
parser only, and ``limit_concurrency`` answers in plain text and bounds nothing per
connection.

:class:`LimitedHttpToolsProtocol` is uvicorn's ``HttpToolsProtocol`` with both:

* **head size**: bytes are counted as they are handed to the parser while a head is
  incomplete, and at most one byte more than ``DESKHAND_HTTP_MAX_HEADER_BYTES`` is ever
  handed over: a head that is still incomplete then gets ``431 header_too_large`` and the
  connection is closed. (A pipelined request's head that arrives in the same read as the
  previous request's end is counted from the next read on: one read, 256 KiB, at most.)
* **head time**: a head must be complete within ``DESKHAND_HTTP_HEADER_TIMEOUT_SECONDS`` of
  the connection's opening, or of its first byte on a connection kept alive; after that a
  client that sent part of a head gets ``408 header_timeout``, one that sent nothing is
  simply closed (browsers open spare connections they may never use).

It also answers what the parser refuses (``400``) in the JSON error shape instead of
uvicorn's plain text. Over HTTPS, time before the TLS handshake completes is asyncio's to
bound (60 s): the protocol sees the connection only after it.

:class:`LeanWebSocketsProtocol` is uvicorn's sans-I/O WebSocket protocol that lets go of the
opening handshake (the request and the response with their headers, some 4 KiB) once the
answer is sent: uvicorn keeps both for the connection's life but never reads them again,
and the broker holds thousands of idle signalling sockets.

Used members of uvicorn (checked by ``tests/unit/test_uvicorn_hooks.py``):
``WebSocketsSansIOProtocol.{start_keepalive, request, response}``, and
``HttpToolsProtocol.{connection_made, connection_lost, data_received, on_headers_complete,
on_message_complete, send_400_response}`` and its ``transport``, ``loop`` and
``server_state.default_headers``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from protocol.api import ErrorBody


@dataclass(frozen=True)
class HeadLimits:
    """How large a request's head may be (bytes), and how long it may take to arrive (seconds)."""

    max_bytes: int
    timeout: float


def refusal_bytes(status: int, error: str, message: str, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """A whole HTTP/1.1 response in the API's JSON error shape, which closes the connection."""
    body = ErrorBody(error=error, message=message).model_dump_json(exclude_none=True).encode()
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}".encode()]
    lines += [name + b": " + value for name, value in default_headers]
    lines += [b"content-type: application/json", b"content-length: %d" % len(body), b"connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with :class:`HeadLimits`; make one with :func:`http_protocol`."""

    limits: ClassVar[HeadLimits]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading_head = True
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn declares it
        super().connection_made(transport)
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        while data and not self.transport.is_closing():
            if not self._reading_head:
                super().data_received(data)
                return
            if self._head_timer is None:
                self._start_head_timer()  # the first byte of a further request on a kept-alive connection
            room = self.limits.max_bytes - self._head_bytes
            piece, data = data[: room + 1], data[room + 1:]
            self._head_bytes += len(piece)
            super().data_received(piece)
            if self.transport.get_protocol() is not self:
                return  # upgraded to a WebSocket: what follows is not ours (uvicorn drops it too)
            if self._reading_head and self._head_bytes > self.limits.max_bytes:
                self._refuse(431, "header_too_large",
                             f"the request line and headers are larger than {self.limits.max_bytes} bytes")
                return

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._stop_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # The next request's head starts here; its timer starts with its first byte.
        self._reading_head = True
        self._head_bytes = 0

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, "bad_request", f"the request is not valid HTTP/1.1 ({msg.rstrip('.').lower()})")

    def _start_head_timer(self) -> None:
        self._stop_head_timer()
        self._head_timer = self.loop.call_later(self.limits.timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._reading_head:
            return
        if self._head_bytes:
            self._refuse(408, "header_timeout",
                         f"the request line and headers did not arrive within {self.limits.timeout:g} s")
        else:
            self.transport.close()

    def _refuse(self, status: int, error: str, message: str) -> None:
        self._stop_head_timer()
        self.transport.write(refusal_bytes(status, error, message, self.server_state.default_headers))
        self.transport.close()


def http_protocol(limits: HeadLimits) -> type[LimitedHttpToolsProtocol]:
    """The protocol class for uvicorn's ``http=``, with ``limits`` on every request's head."""
    return type("LimitedHttpToolsProtocol", (LimitedHttpToolsProtocol,), {"limits": limits})


class LeanWebSocketsProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol, without the handshake kept for the connection's life."""

    def start_keepalive(self) -> None:
        super().start_keepalive()
        # uvicorn calls this right after it sent the handshake's answer; it reads neither again,
        # and copied the headers into the ASGI scope. websockets' own parser is a generator whose
        # frame holds the request until the connection ends, so its headers are emptied here:
        # about 2 KiB an idle connection.
        if self.request is not None:
            self.request.headers.clear()
        self.request = None  # type: ignore[assignment]  # uvicorn types them as always set
        self.response = None  # type: ignore[assignment]  # uvicorn types them as always set
