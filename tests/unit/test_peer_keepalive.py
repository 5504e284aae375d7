"""peer.keepalive: a peer pings the broker only when the broker has gone quiet, and gives up
on a broker that leaves its ping unanswered. Against a real websockets server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import websockets
from websockets.asyncio.connection import Connection
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Opcode

from peer.keepalive import BROKER_SILENT, QuietPeerConnection

INTERVAL = 0.3


class CountingServerConnection(ServerConnection):
    """The broker's side, counting the pings it receives."""

    pings_received = 0

    def process_event(self, event: Any) -> None:
        if getattr(event, "opcode", None) is Opcode.PING:
            self.pings_received += 1
        super().process_event(event)


@asynccontextmanager
async def server(ping_interval: float | None) -> AsyncIterator[tuple[str, list[CountingServerConnection]]]:
    accepted: list[CountingServerConnection] = []

    async def hold(connection: CountingServerConnection) -> None:
        accepted.append(connection)
        await connection.wait_closed()

    async with serve(hold, "127.0.0.1", 0, ping_interval=ping_interval, close_timeout=0.2,
                     create_connection=CountingServerConnection) as running:
        port = next(iter(running.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/", accepted


def quiet_client(url: str, **kwargs: Any) -> Any:
    return websockets.connect(url, create_connection=QuietPeerConnection, ping_interval=INTERVAL,
                              ping_timeout=INTERVAL, close_timeout=0.2, **kwargs)


async def test_a_peer_sends_no_pings_while_the_broker_pings_it() -> None:
    async with server(ping_interval=INTERVAL / 3) as (url, accepted), quiet_client(url) as ws:
        await asyncio.sleep(INTERVAL * 5)
        assert isinstance(ws, QuietPeerConnection)
        assert ws.pings_sent == 0 and accepted[0].pings_received == 0
        await ws.send("still open")


async def test_a_peer_pings_a_broker_that_sends_nothing_and_stays_connected_while_answered() -> None:
    async with server(ping_interval=None) as (url, accepted), quiet_client(url) as ws:
        await asyncio.sleep(INTERVAL * 5.5)
        # One ping a quiet interval (the pong starts the next one): 3 to 5 in 5.5 intervals.
        assert 3 <= ws.pings_sent <= 5 and accepted[0].pings_received == ws.pings_sent
        await ws.send("still open")


async def test_a_broker_that_stops_answering_is_left_with_code_1011() -> None:
    async with server(ping_interval=None) as (url, accepted), quiet_client(url) as ws:
        await asyncio.sleep(0.05)
        accepted[0].transport.pause_reading()  # reads nothing more: no pong, no closing handshake
        async with asyncio.timeout(INTERVAL * 2 + 0.2 + 5):
            await ws.wait_closed()
        sent = ws.close_exc.sent  # what the peer said as it left (the broker, reading nothing, said nothing)
        assert sent is not None and sent.code == 1011 and sent.reason == BROKER_SILENT
        assert ws.pings_sent == 1
        accepted[0].transport.resume_reading()


def test_websockets_still_runs_and_cancels_keepalive_as_relied_on() -> None:
    started = inspect.getsource(Connection.start_keepalive)
    assert "self.keepalive()" in started and "self.ping_interval is not None" in started
    lost = inspect.getsource(Connection.connection_lost)
    assert "self.keepalive_task.cancel()" in lost or "keepalive_task" in inspect.getsource(Connection)
    assert "process_event" in inspect.getsource(Connection.data_received)
