"""peer.broker_client: every client's requests to the broker, against a small stand-in on 127.0.0.1.

The stand-in answers from a few fixed routes and notes what it was sent and from which
client port (one port for several requests: the connection was reused).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from pydantic import BaseModel

from broker.settings import Settings
from host_client.join import JoinRefused
from peer import broker_client
from peer.broker_client import IDLE_CONNECTION_SECONDS, BrokerClient, environment_proxy
from peer.broker_errors import BrokerRefusal
from peer.transfers import TransferError
from tech_console.client import ConsoleError


class Pong(BaseModel):
    text: str


@dataclass
class StandIn:
    url: str
    authorizations: list[str | None] = field(default_factory=list)
    content_types: list[str | None] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    queries: list[dict[str, str]] = field(default_factory=list)
    client_ports: list[int] = field(default_factory=list)


@pytest.fixture
async def stand_in() -> AsyncIterator[StandIn]:
    seen = StandIn(url="")

    async def note(request: web.Request) -> None:
        seen.authorizations.append(request.headers.get("Authorization"))
        seen.content_types.append(request.headers.get("Content-Type"))
        seen.bodies.append(await request.read())
        seen.queries.append(dict(request.query))
        peer = request.transport.get_extra_info("peername") if request.transport else None
        seen.client_ports.append(peer[1] if peer else -1)

    async def pong(request: web.Request) -> web.Response:
        await note(request)
        return web.json_response({"text": "pong"})

    async def pongs(request: web.Request) -> web.Response:
        await note(request)
        return web.json_response([{"text": "a"}, {"text": "b"}])

    async def busy(request: web.Request) -> web.Response:
        await note(request)
        return web.json_response({"error": "rate_limited", "message": "too many at once"}, status=429,
                                 headers={"Retry-After": "7"})

    async def proxy_page(request: web.Request) -> web.Response:
        await note(request)
        return web.Response(status=502, text="<html><body>502 Bad Gateway</body></html>", content_type="text/html")

    async def foreign(request: web.Request) -> web.Response:
        await note(request)
        return web.Response(text="<html>a router's login page</html>", content_type="text/html")

    async def download(request: web.Request) -> web.StreamResponse:
        await note(request)
        return web.Response(body=bytes(range(256)) * 10)  # 2560 bytes

    app = web.Application()
    app.router.add_route("*", "/api/v1/pong", pong)
    app.router.add_get("/api/v1/pongs", pongs)
    app.router.add_post("/api/v1/busy", busy)
    app.router.add_get("/api/v1/proxy", proxy_page)
    app.router.add_get("/api/v1/foreign", foreign)
    app.router.add_get("/api/v1/download", download)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    seen.url = f"http://127.0.0.1:{port}/"
    try:
        yield seen
    finally:
        await runner.cleanup()


async def test_the_token_goes_as_a_bearer_unless_a_call_needs_none(stand_in: StandIn) -> None:
    async with BrokerClient(stand_in.url, "dhu_secret") as broker:
        assert await broker.call("GET", "/api/v1/pong", Pong, refusal=BrokerRefusal) == Pong(text="pong")
        await broker.call("POST", "/api/v1/pong", None, refusal=BrokerRefusal, body=Pong(text="hi"), auth=False)
        broker.token = None
        await broker.call("GET", "/api/v1/pong", None, refusal=BrokerRefusal)
    assert stand_in.authorizations == ["Bearer dhu_secret", None, None]
    assert stand_in.content_types[1] == "application/json" and stand_in.bodies[1] == b'{"text":"hi"}'


async def test_query_values_and_lists_of_models(stand_in: StandIn) -> None:
    async with BrokerClient(stand_in.url) as broker:
        pongs = await broker.call(
            "GET", "/api/v1/pongs", list[Pong], refusal=BrokerRefusal,
            params={"limit": 5, "wait": 2.5, "mine": True, "left_out": None},
        )
    assert [p.text for p in pongs] == ["a", "b"]
    assert stand_in.queries == [{"limit": "5", "wait": "2.5", "mine": "true"}]


@pytest.mark.parametrize("kind", [JoinRefused, TransferError, ConsoleError])
async def test_a_refusal_becomes_the_callers_kind_with_its_code_and_retry_after(
    stand_in: StandIn, kind: type[BrokerRefusal],
) -> None:
    async with BrokerClient(stand_in.url) as broker:
        with pytest.raises(kind) as refused:
            await broker.call("POST", "/api/v1/busy", Pong, refusal=kind)
    assert (refused.value.status, refused.value.error, refused.value.message, refused.value.retry_after) == (
        429, "rate_limited", "too many at once", 7.0)


async def test_a_proxys_error_page_says_the_status(stand_in: StandIn) -> None:
    async with BrokerClient(stand_in.url) as broker:
        with pytest.raises(ConsoleError) as refused:
            await broker.call("GET", "/api/v1/proxy", Pong, refusal=ConsoleError)
        reply = await broker.send("GET", "/api/v1/proxy", refusal=ConsoleError)  # send() leaves the status to the caller
    assert (refused.value.status, refused.value.error, refused.value.message) == (502, None, "the broker answered HTTP 502")
    assert reply.status == 502 and reply.body.startswith(b"<html>")


async def test_an_answer_that_is_not_the_brokers_is_refused_in_words(stand_in: StandIn) -> None:
    async with BrokerClient(stand_in.url) as broker:
        with pytest.raises(JoinRefused, match="not a Deskhand broker's answer") as refused:
            await broker.call("GET", "/api/v1/foreign", Pong, refusal=JoinRefused)
    assert refused.value.status is None  # as if no broker had answered: a host waiting for help tries again


async def test_a_broker_that_is_not_there_is_a_refusal_saying_what_to_check() -> None:
    with socket.socket() as probe:  # a port nobody listens on: connecting is refused at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with BrokerClient(f"http://127.0.0.1:{port}", hint="check the address you were given") as broker:
        with pytest.raises(JoinRefused) as refused:
            await broker.call("GET", "/api/v1/pong", Pong, refusal=JoinRefused)
    assert refused.value.status is None
    assert refused.value.message.startswith(f"cannot reach the broker at http://127.0.0.1:{port} (")
    assert refused.value.message.endswith("); check the address you were given")


async def test_one_connection_serves_every_request_until_closed(stand_in: StandIn) -> None:
    broker = BrokerClient(stand_in.url)
    for _ in range(3):
        await broker.call("GET", "/api/v1/pong", Pong, refusal=BrokerRefusal)
    await broker.aclose()
    await broker.call("GET", "/api/v1/pong", Pong, refusal=BrokerRefusal)  # a new pool after closing
    await broker.aclose()
    first, second, third, after = stand_in.client_ports
    assert first == second == third and after != first


async def test_an_idle_connection_is_let_go_before_the_broker_would_close_it(
    stand_in: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A connection the broker closes at the moment a request goes out fails with a reset: the
    # client must give idle ones up first (aiohttp's default, 15 s, is exactly the broker's).
    assert Settings.model_fields["http_keepalive_seconds"].default > IDLE_CONNECTION_SECONDS
    monkeypatch.setattr(broker_client, "IDLE_CONNECTION_SECONDS", 0.2)
    broker = BrokerClient(stand_in.url)
    await broker.call("GET", "/api/v1/pong", Pong, refusal=BrokerRefusal)
    await broker.call("GET", "/api/v1/pong", Pong, refusal=BrokerRefusal)
    await asyncio.sleep(1.5)  # aiohttp drops idle connections on its cleanup tick after the timeout
    await broker.call("GET", "/api/v1/pong", Pong, refusal=BrokerRefusal)
    await broker.aclose()
    first, second, after_idle = stand_in.client_ports
    assert first == second and after_idle != first


async def test_a_download_comes_in_pieces_of_the_size_asked(stand_in: StandIn) -> None:
    async with BrokerClient(stand_in.url, "dhu_x") as broker, broker.stream(
        "GET", "/api/v1/download", refusal=ConsoleError,
    ) as answer:
        pieces = [piece async for piece in answer.chunks(1000)]
    assert answer.length == 2560 and [len(p) for p in pieces] == [1000, 1000, 560]
    assert b"".join(pieces) == bytes(range(256)) * 10 and stand_in.authorizations == ["Bearer dhu_x"]


async def test_a_refused_download_is_the_callers_refusal(stand_in: StandIn) -> None:
    async with BrokerClient(stand_in.url) as broker:
        with pytest.raises(ConsoleError, match="the broker answered HTTP 502"):
            async with broker.stream("GET", "/api/v1/proxy", refusal=ConsoleError):
                pytest.fail("a refused answer has no body to read")


def test_the_environments_proxy_is_used_except_where_no_proxy_says(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert environment_proxy("https://broker.example") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "inside.example")
    assert environment_proxy("https://broker.example") == "http://proxy.example:3128"
    assert environment_proxy("http://broker.example") is None
    assert environment_proxy("https://inside.example") is None


async def test_a_connection_gives_up_when_its_data_goes_unacknowledged(stand_in: StandIn,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[socket.socket] = []
    original = broker_client._socket_giving_up_when_unacked

    def recording(addr_info: object) -> socket.socket:
        made.append(original(addr_info))
        return made[-1]

    monkeypatch.setattr(broker_client, "_socket_giving_up_when_unacked", recording)
    async with BrokerClient(stand_in.url) as broker:
        reply = await broker.send("GET", "/api/v1/pong", refusal=BrokerRefusal)
        assert reply.status == 200
        assert made, "the request went through a socket of the client's own making"
        timeout_ms = made[0].getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT)
    assert timeout_ms == int(broker_client.UNACKED_SECONDS * 1000)
