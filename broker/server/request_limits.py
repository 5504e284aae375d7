"""Request bodies are bounded in size, per route, and in how long the broker waits for them.

:class:`RequestLimits` is an ASGI middleware in front of the application (``broker/cli.py``
puts it there). A body whose declared ``Content-Length`` is over the route's limit is
refused with ``413 too_large`` before anything reads it; a body streamed without a length
(chunked) is counted as the route reads it and refused as soon as the count passes the
limit. Either way the rest is never read: an answer sent before the body was read whole
closes the connection (``Connection: close``), so the server does not drain what the
client still sends. A body whose next bytes do not arrive within
``DESKHAND_HTTP_BODY_TIMEOUT_SECONDS`` while a route waits for them gets ``408
body_timeout``. Both answers use the JSON error shape.

The limit is ``DESKHAND_HTTP_MAX_BODY_BYTES`` (JSON bodies) unless the route declares its
own with :func:`body_limit`: recording segments and transfer chunks, which are large by
design. A route's own limit is published in its OpenAPI operation as ``x-max-body-bytes``,
and read back from there (:func:`declared_body_limits`): the OpenAPI document is FastAPI's
stable account of its routes, its route table is not.

Why not FastAPI's own ``max_body_size``: it is recent (``pyproject.toml`` allows FastAPI
from 0.121), it is checked only when the route reads the body (a route that answers
without reading leaves the server to drain the rest), and some of its refusals are
plain text.

A request's head (request line and headers) is bounded where it is parsed, in the HTTP
server: see ``broker/server/uvicorn_hooks.py``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.errors import ApiError, ReadRefusal

BODY_LIMIT_KEY = "x-max-body-bytes"
"""Where a route's own body limit is kept: its OpenAPI operation (``openapi_extra``)."""


def body_limit(max_bytes: int) -> dict[str, Any]:
    """``openapi_extra`` of a route whose bodies may be larger than the JSON limit, up to ``max_bytes``."""
    return {BODY_LIMIT_KEY: max_bytes}


@dataclass(frozen=True)
class RouteLimit:
    """A route's own body limit: its method, its path as a pattern, and the limit in bytes."""

    method: str
    path: re.Pattern[str]
    max_bytes: int

    def covers(self, scope: Scope) -> bool:
        return scope["method"] == self.method and self.path.match(scope["path"]) is not None


def declared_body_limits(openapi: Mapping[str, Any]) -> list[RouteLimit]:
    """The limits routes declared with :func:`body_limit`, read from the app's OpenAPI document."""
    return [
        RouteLimit(method.upper(), compile_path(template)[0], int(operation[BODY_LIMIT_KEY]))
        for template, operations in openapi.get("paths", {}).items()
        for method, operation in operations.items()
        if isinstance(operation, Mapping) and BODY_LIMIT_KEY in operation
    ]


def too_large(limit: int) -> ApiError:
    return ApiError(413, "too_large", f"the request body is larger than {limit} bytes, the most this request takes")


def body_timeout(seconds: float) -> ApiError:
    return ApiError(408, "body_timeout", f"no part of the request body arrived for {seconds:g} s; send the request again")


def declared_length(scope: Scope) -> int | None:
    """The request's ``Content-Length``, or None without one (the server refuses a malformed one)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def has_body(scope: Scope) -> bool:
    """Whether the request carries a body: a length above 0, or a transfer coding (chunked)."""
    length = declared_length(scope)
    if length is not None:
        return length > 0
    return any(name == b"transfer-encoding" for name, _ in scope.get("headers", ()))


class RequestBody:
    """One request's body as the route reads it: counted, timed, and whether it was read whole."""

    def __init__(self, scope: Scope, receive: Receive, send: Send, *, limit: int, timeout: float) -> None:
        self._receive = receive
        self._send = send
        self.limit = limit
        self.timeout = timeout
        self.received = 0
        self.complete = not has_body(scope)
        """True once the last part arrived (or the client left): nothing unread stays on the connection."""

    async def receive(self) -> Message:
        """The next part of the body, refused past the limit or after the timeout."""
        if self.complete:
            return await self._receive()  # after the body: a route waiting for the client to leave
        try:
            async with asyncio.timeout(self.timeout):
                message = await self._receive()
        except TimeoutError:
            raise ReadRefusal(body_timeout(self.timeout)) from None
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                raise ReadRefusal(too_large(self.limit))
            self.complete = not message.get("more_body", False)
        else:
            self.complete = True
        return message

    async def send(self, message: Message) -> None:
        """The route's answer; one sent before the body was read whole also closes the connection."""
        if message["type"] == "http.response.start" and not self.complete:
            headers = list(message.get("headers", []))
            if not any(name.lower() == b"connection" for name, _ in headers):
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
        await self._send(message)


class RequestLimits:
    """ASGI middleware: each HTTP request's body within its route's limit and the body timeout.

    ``route_limits`` are what routes declared (:func:`declared_body_limits`); every other
    request may send at most ``max_body_bytes``.
    """

    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, body_timeout: float, route_limits: Iterable[RouteLimit] = (),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self.route_limits = tuple(route_limits)

    def limit_for(self, scope: Scope) -> int:
        """The body limit of the route this request goes to."""
        for route in self.route_limits:
            if route.covers(scope):
                return route.max_bytes
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        body = RequestBody(scope, receive, send, limit=limit, timeout=self.body_timeout)
        length = declared_length(scope)
        if length is not None and length > limit:
            await too_large(limit).response()(scope, body.receive, body.send)
            return
        await self.app(scope, body.receive, body.send)
