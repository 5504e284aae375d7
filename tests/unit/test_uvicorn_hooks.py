"""broker.server.uvicorn_hooks: the head of every request bounded in size and time, refusals in JSON.

The protocol runs here on a fake transport, fed by hand, so each case is exact: what the
parser was handed, what went back, when the connection closed. The first test checks
that the uvicorn internals the hooks rely on are still there; run it first when moving
uvicorn to a new version.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from typing import Any

import pytest
import uvicorn
import websockets
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.http11 import Request
from websockets.server import ServerProtocol

from broker.server.uvicorn_hooks import HeadLimits, LeanWebSocketsProtocol, LimitedHttpToolsProtocol, http_protocol, refusal_bytes

LIMIT = 1000
TIMEOUT = 0.2


class FakeTransport(asyncio.Transport):
    """What the protocol writes, whether it closed, and which protocol the transport serves."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False
        self.protocol: asyncio.BaseProtocol | None = None

    def write(self, data: bytes | bytearray | memoryview[Any]) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self.protocol is not None
        return self.protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class CountingParser:
    """httptools' parser, noting how many bytes each ``feed_data`` handed it."""

    def __init__(self, parser: Any) -> None:
        self._parser = parser
        self.fed: list[int] = []

    def feed_data(self, data: bytes) -> None:
        self.fed.append(len(data))
        self._parser.feed_data(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parser, name)


async def echo_length(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers 200 with the length of the body it read."""
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = str(size).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def connect() -> tuple[LimitedHttpToolsProtocol, FakeTransport, CountingParser]:
    config = uvicorn.Config(echo_length, http=http_protocol(HeadLimits(LIMIT, TIMEOUT)), log_config=None, lifespan="off")
    config.load()
    protocol = config.http_protocol_class(config=config, server_state=ServerState(), app_state={})
    assert isinstance(protocol, LimitedHttpToolsProtocol)
    parser = CountingParser(protocol.parser)
    protocol.parser = parser  # type: ignore[assignment]  # a counting wrapper around httptools' parser
    transport = FakeTransport()
    transport.protocol = protocol
    protocol.connection_made(transport)
    return protocol, transport, parser


def answer_of(written: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = written.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def assert_refused(transport: FakeTransport, status: int, error: str) -> str:
    code, headers, body = answer_of(transport.written)
    assert code == status and headers["content-type"] == "application/json" and headers["connection"] == "close"
    parsed = json.loads(body)
    assert parsed["error"] == error
    assert transport.closed
    return str(parsed["message"])


def test_uvicorn_still_has_what_the_hooks_rely_on() -> None:
    for name in ("connection_made", "connection_lost", "data_received", "on_headers_complete",
                 "on_message_complete", "send_400_response"):
        assert callable(getattr(HttpToolsProtocol, name)), name
    assert list(inspect.signature(HttpToolsProtocol.send_400_response).parameters) == ["self", "msg"]
    init = inspect.getsource(HttpToolsProtocol.__init__)
    assert "self.parser = httptools.HttpRequestParser(self)" in init and "self.loop =" in init
    received = inspect.getsource(HttpToolsProtocol.data_received)
    assert "self.parser.feed_data(data)" in received and "self.send_400_response(" in received
    assert hasattr(ServerState(), "default_headers")
    # Still no limit of its own on a head: if uvicorn grows one, prefer it to this module.
    assert "max_header" not in inspect.getsource(uvicorn.Config.__init__)


async def test_a_request_within_the_limits_is_served() -> None:
    protocol, transport, _ = connect()
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.sleep(0.01)
    assert answer_of(transport.written)[::2] == (200, b"0") and not transport.closed


async def test_a_head_over_the_limit_is_refused_without_the_parser_seeing_more_than_one_byte_past_it() -> None:
    protocol, transport, parser = connect()
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\nX-Filler: ")
    for _ in range(100):  # 6.4 MB in all, if anyone took it
        protocol.data_received(b"a" * 64_000)
    message = assert_refused(transport, 431, "header_too_large")
    assert str(LIMIT) in message
    assert sum(parser.fed) == LIMIT + 1


async def test_a_head_and_a_large_body_in_one_read_are_not_a_large_head() -> None:
    protocol, transport, _ = connect()
    body = b"b" * (5 * LIMIT)
    protocol.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    await asyncio.sleep(0.01)
    assert answer_of(transport.written)[::2] == (200, str(len(body)).encode())


async def test_each_request_on_a_kept_alive_connection_has_the_whole_head_limit() -> None:
    protocol, transport, _ = connect()
    request = b"GET / HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"a" * (LIMIT - 100) + b"\r\n\r\n"
    for _ in range(3):
        transport.written = b""
        protocol.data_received(request)
        await asyncio.sleep(0.01)
        assert answer_of(transport.written)[0] == 200


async def test_a_silent_connection_is_closed_after_the_timeout_without_an_answer() -> None:
    _protocol, transport, _ = connect()
    await asyncio.sleep(TIMEOUT / 2)
    assert not transport.closed
    await asyncio.sleep(TIMEOUT)
    assert transport.closed and transport.written == b""


async def test_a_head_still_incomplete_after_the_timeout_gets_408() -> None:
    protocol, transport, _ = connect()
    protocol.data_received(b"GET / HTTP/1.1\r\n")
    for _ in range(6):  # bytes keep coming, the head never ends
        await asyncio.sleep(TIMEOUT / 4)
        if not transport.closed:
            protocol.data_received(b"X-Slow: 1\r\n")
    assert "0.2 s" in assert_refused(transport, 408, "header_timeout")


async def test_the_timer_waits_for_the_first_byte_of_the_next_request_and_stops_while_the_app_works() -> None:
    protocol, transport, _ = connect()
    protocol.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab")
    await asyncio.sleep(TIMEOUT * 1.5)  # head complete, body pending: not the head timer's business
    assert not transport.closed
    protocol.data_received(b"cd")
    await asyncio.sleep(TIMEOUT * 1.5)  # answered and idle: uvicorn's keep-alive timeout (5 s) applies
    assert answer_of(transport.written)[0] == 200 and not transport.closed
    transport.written = b""
    protocol.data_received(b"GET / HTTP/1.1\r\n")
    await asyncio.sleep(TIMEOUT * 1.5)
    assert_refused(transport, 408, "header_timeout")


async def test_what_the_parser_refuses_gets_a_json_400() -> None:
    protocol, transport, _ = connect()
    protocol.data_received(b"GET / HTTP/1.1\r\nHost x\r\n\r\n")
    assert_refused(transport, 400, "bad_request")


def test_a_refusal_is_a_whole_response_in_the_error_shape() -> None:
    raw = refusal_bytes(431, "header_too_large", "too big", [(b"date", b"today")])
    status, headers, body = answer_of(raw)
    assert status == 431 and raw.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert headers == {"date": "today", "content-type": "application/json", "content-length": str(len(body)),
                       "connection": "close"}
    assert json.loads(body) == {"error": "header_too_large", "message": "too big"}


def test_each_configuration_gets_its_own_class() -> None:
    small, large = http_protocol(HeadLimits(100, 1)), http_protocol(HeadLimits(200, 2))
    assert small.limits == HeadLimits(100, 1) and large.limits == HeadLimits(200, 2)
    assert issubclass(small, HttpToolsProtocol)


@pytest.mark.parametrize("piece", [1, 7, 4096])
async def test_the_count_holds_however_the_head_is_cut(piece: int) -> None:
    protocol, transport, parser = connect()
    head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"a" * (2 * LIMIT)
    for start in range(0, len(head), piece):
        protocol.data_received(head[start:start + piece])
    assert_refused(transport, 431, "header_too_large")
    assert sum(parser.fed) == LIMIT + 1


def test_the_lean_websocket_protocol_still_has_what_it_relies_on() -> None:
    source = inspect.getsource(WebSocketsSansIOProtocol)
    # Every read of the handshake comes before the answer is sent, and the keepalive starts after it.
    assert source.count("self.request") == 1 and "self.request = event" in source
    sent = inspect.getsource(WebSocketsSansIOProtocol.send)
    assert sent.index("self.conn.send_response(self.response)") < sent.index("self.start_keepalive()")
    assert "self.response" not in sent[sent.index("self.start_keepalive()"):]
    # websockets' server parser keeps the request in its generator's frame (why headers are emptied).
    parse = inspect.getsource(ServerProtocol.parse)
    assert "request = yield from Request.parse(" in parse and "yield from super().parse()" in parse


async def test_a_websocket_lets_go_of_its_handshake_once_accepted_and_goes_on_working() -> None:
    seen: list[LeanWebSocketsProtocol] = []
    requests: list[Request] = []

    class Watched(LeanWebSocketsProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            seen.append(self)
            super().connection_made(transport)

        def handle_connect(self, event: Request) -> None:
            requests.append(event)
            super().handle_connect(event)

    async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "websocket"
        assert (b"x-asked-by", b"test") in scope["headers"]
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": message["text"].upper()})

    config = uvicorn.Config(echo, host="127.0.0.1", port=0, ws=Watched, ws_ping_interval=0.05,
                            log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        async with websockets.connect(f"ws://127.0.0.1:{port}/", additional_headers={"X-Asked-By": "test"}) as ws:
            await ws.send("hello")
            assert await ws.recv() == "HELLO"
            assert seen and seen[0].request is None and seen[0].response is None
            assert len(requests) == 1 and list(requests[0].headers.raw_items()) == []
            await asyncio.sleep(0.2)  # some pings answered after the handshake was let go
            await ws.send("still here")
            assert await ws.recv() == "STILL HERE"
    finally:
        server.should_exit = True
        await serving
