"""broker.server.request_limits: request bodies within their route's limit and the body timeout, refusals in JSON.

The middleware runs here in front of small ASGI apps with hand-made ``receive`` and
``send``, so each case shows exactly what the app read and what went back.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from starlette.responses import Response

from broker.errors import ApiError, ReadRefusal, install_error_handlers
from broker.server.request_limits import (
    BODY_LIMIT_KEY,
    RequestLimits,
    body_limit,
    declared_body_limits,
    declared_length,
    has_body,
)

LIMIT = 1000
BIG = 5000


def http_scope(method: str = "POST", path: str = "/api/v1/things", headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "root_path": "", "query_string": b"",
            "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]}


class Client:
    """``receive`` hands out ``parts``, the last one as the body's end unless ``stalls`` (then it
    waits forever, as a silent client); ``send`` keeps what went back."""

    def __init__(self, *parts: bytes, stalls: bool = False) -> None:
        self.parts = list(parts)
        self.stalls = stalls
        self.asked = 0
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        self.asked += 1
        if not self.parts:
            await asyncio.Event().wait()
        body = self.parts.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(self.parts) or self.stalls}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.sent[0].get("headers", []))

    def json(self) -> Any:
        return json.loads(b"".join(m.get("body", b"") for m in self.sent[1:]))


def api() -> FastAPI:
    """An app with the broker's error handlers: a JSON route, a large-body route, a route that never reads."""
    app = FastAPI()
    install_error_handlers(app, Path("/data"))

    @app.post("/api/v1/things")
    async def things(payload: dict[str, Any]) -> dict[str, int]:
        return {"keys": len(payload)}

    @app.put("/api/v1/blobs/{index}", openapi_extra=body_limit(BIG))
    async def blobs(index: int, request: Request) -> dict[str, int]:
        size = 0
        async for piece in request.stream():
            size += len(piece)
        return {"index": index, "size": size}

    @app.post("/api/v1/refuse")
    async def refuse() -> Response:
        return Response(status_code=403)

    return app


def limited(timeout: float = 5.0) -> RequestLimits:
    app = api()
    return RequestLimits(app, max_body_bytes=LIMIT, body_timeout=timeout, route_limits=declared_body_limits(app.openapi()))


def json_body(size: int) -> bytes:
    return b'{"a": "' + b"x" * (size - 9) + b'"}'


@pytest.mark.parametrize(("headers", "length", "body"), [
    ({}, None, False), ({"Content-Length": "0"}, 0, False), ({"Content-Length": "12"}, 12, True),
    ({"Content-Length": "-1"}, None, False), ({"Transfer-Encoding": "chunked"}, None, True),
])
def test_declared_length_and_whether_a_body_follows(headers: dict[str, str], length: int | None, body: bool) -> None:
    scope = http_scope(headers=headers)
    assert declared_length(scope) == length and has_body(scope) is body


def test_route_limits_are_read_from_the_openapi_document() -> None:
    app = api()
    assert app.openapi()["paths"]["/api/v1/blobs/{index}"]["put"][BODY_LIMIT_KEY] == BIG
    middleware = RequestLimits(app, max_body_bytes=LIMIT, body_timeout=1, route_limits=declared_body_limits(app.openapi()))
    assert middleware.limit_for(http_scope("PUT", "/api/v1/blobs/3")) == BIG
    assert middleware.limit_for(http_scope("POST", "/api/v1/blobs/3")) == LIMIT  # another method, another route
    assert middleware.limit_for(http_scope("PUT", "/api/v1/blobs/3/more")) == LIMIT
    assert middleware.limit_for(http_scope("POST", "/api/v1/things")) == LIMIT


async def test_a_body_within_the_limit_reaches_the_route_and_keeps_the_connection() -> None:
    body = json_body(LIMIT)
    client = Client(body[:400], body[400:])
    await limited()(http_scope(headers={"Content-Length": str(len(body)), "Content-Type": "application/json"}),
                    client.receive, client.send)
    assert client.status == 200 and client.json() == {"keys": 1}
    assert b"connection" not in client.headers


async def test_a_declared_length_over_the_limit_is_refused_before_the_app_reads_anything() -> None:
    client = Client(b"x" * 100)
    await limited()(http_scope(headers={"Content-Length": str(LIMIT + 1)}), client.receive, client.send)
    assert client.asked == 0
    assert client.status == 413 and client.headers[b"connection"] == b"close"
    assert client.json()["error"] == "too_large" and str(LIMIT) in client.json()["message"]


async def test_a_streamed_body_is_refused_as_soon_as_the_count_passes_the_limit() -> None:
    client = Client(*[b"x" * 300] * 10)
    await limited()(http_scope(headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"}),
                    client.receive, client.send)
    assert client.asked == 4  # 1200 bytes: the fourth part passed 1000; six parts were never read
    assert client.status == 413 and client.headers[b"connection"] == b"close"
    assert client.json()["error"] == "too_large"


async def test_a_route_with_its_own_limit_takes_more_and_no_more() -> None:
    within = Client(*[b"x" * 1000] * 5)
    await limited()(http_scope("PUT", "/api/v1/blobs/1", {"Content-Length": str(BIG)}), within.receive, within.send)
    assert within.status == 200 and within.json() == {"index": 1, "size": BIG}
    over = Client(*[b"x" * 1000] * 6)
    await limited()(http_scope("PUT", "/api/v1/blobs/1", {"Transfer-Encoding": "chunked"}), over.receive, over.send)
    assert over.status == 413 and str(BIG) in over.json()["message"]


async def test_a_body_that_stops_arriving_gets_408_after_the_timeout() -> None:
    client = Client(b'{"a": ', stalls=True)
    await asyncio.wait_for(limited(timeout=0.1)(
        http_scope(headers={"Content-Length": "50", "Content-Type": "application/json"}), client.receive, client.send), 5)
    assert client.status == 408 and client.headers[b"connection"] == b"close"
    assert client.json() == {"error": "body_timeout", "message": "no part of the request body arrived for 0.1 s; "
                                                                 "send the request again"}


async def test_an_answer_sent_before_the_body_was_read_closes_the_connection() -> None:
    client = Client(b"x" * 10)
    await limited()(http_scope(path="/api/v1/refuse", headers={"Content-Length": "10"}), client.receive, client.send)
    assert client.asked == 0 and client.status == 403 and client.headers[b"connection"] == b"close"


async def test_requests_without_a_body_keep_their_connection() -> None:
    app = api()
    client = Client()
    await RequestLimits(app, max_body_bytes=LIMIT, body_timeout=1)(http_scope("GET", "/api/v1/openapi.json"),
                                                                     client.receive, client.send)
    assert client.status == 404 and b"connection" not in client.headers


async def test_websockets_pass_untouched() -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope["type"], receive, send))

    client = Client()
    await RequestLimits(app, max_body_bytes=1, body_timeout=1)({"type": "websocket", "headers": []}, client.receive, client.send)
    assert seen == [("websocket", client.receive, client.send)]


def test_a_refusal_while_reading_keeps_its_own_status_and_code() -> None:
    refusal = ReadRefusal(ApiError(413, "too_large", "big"))
    assert refusal.status_code == 413 and refusal.error.error == "too_large"
