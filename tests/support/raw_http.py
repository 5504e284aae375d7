"""HTTP/1.1 spoken byte by byte over a plain socket, for requests no well-behaved client sends.

httpx cannot send a head of 16 MiB, stop in the middle of a header, or declare
100 MB and then see how far the broker lets it go; the tests of the broker's
limits need exactly that::

    with RawConnection(broker.base_url) as raw:
        raw.send_head("POST", "/api/v1/auth/login", {"Content-Length": "100000000"})
        sent = raw.stream(100_000_000)      # bytes the broker took before it closed
        answer = raw.answer()               # RawAnswer(status=413, ...) or None

An answer stays readable after the broker reset the connection (Linux keeps
what arrived before the reset), which is how a client that was cut off while
sending still learns why.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

PIECE = 64 * 1024
"""Bytes per send while streaming a body or a header."""


@dataclass(frozen=True)
class RawAnswer:
    """One HTTP response as read off the socket (header names lower-cased)."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class RawConnection:
    """One TCP connection to the broker at ``base_url`` (``http://host:port``)."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        parts = urlsplit(base_url)
        assert parts.scheme == "http" and parts.hostname and parts.port, base_url
        self.host = parts.hostname
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> bool:
        """Send all of ``data``; False when the broker closed or reset the connection meanwhile."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def send_head(self, method: str, path: str, headers: dict[str, str] | None = None) -> bool:
        """The request line and headers (``Host`` added), ending the head."""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        return self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def stream(self, total: int, *, chunked: bool = False, byte: bytes = b"x") -> int:
        """Send ``total`` bytes of body (as chunks of chunked encoding if ``chunked``, with the
        closing chunk when all went); the number sent before the broker stopped taking them."""
        sent = 0
        block = byte * PIECE
        framed = f"{PIECE:x}\r\n".encode() + block + b"\r\n" if chunked else block
        while sent < total:
            size = min(PIECE, total - sent)
            piece = framed if size == PIECE else (f"{size:x}\r\n".encode() + block[:size] + b"\r\n" if chunked else block[:size])
            if not self.send(piece):
                return sent
            sent += size
        if chunked:
            self.send(b"0\r\n\r\n")
        return sent

    def answer(self, timeout: float | None = None) -> RawAnswer | None:
        """The next response, or None when the connection ends (or ``timeout`` passes) without one."""
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                more = self.sock.recv(PIECE)
                if not more:
                    return None
                data += more
            head, _, body = data.partition(b"\r\n\r\n")
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in header_lines:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            while len(body) < length:
                more = self.sock.recv(PIECE)
                if not more:
                    break
                body += more
            return RawAnswer(int(status_line.split()[1]), headers, body[:length])
        except (TimeoutError, ConnectionError):
            return None

    def wait_closed(self, timeout: float) -> float | None:
        """Seconds until the broker closed the connection (reading and dropping whatever it
        sends first), or None if it is still open after ``timeout``."""
        start = time.monotonic()
        deadline = start + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                if not self.sock.recv(PIECE):
                    return time.monotonic() - start
            except TimeoutError:
                return None
            except ConnectionError:
                return time.monotonic() - start
        return None
