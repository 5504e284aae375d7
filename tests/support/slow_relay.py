"""A TCP relay on 127.0.0.1 that can hold back a server's answers: a slow broker, for real.

    async with SlowRelay(broker.base_url) as relay:
        relay.answer_delay = 2.0          # the broker's bytes reach the client 2 s late
        client_url = relay.url            # "http://127.0.0.1:PORT"
        relay.requests_seen(b"POST ")     # how many requests went through, by their first line

Requests reach the server at once; only what it sends back waits. So the server
does the work and answers in time, but the client sees the answer late (or, if
it gave up and closed the connection, never): what a client's timeout meets
when a broker or a network is slow. Everything runs on the test's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit


class SlowRelay:
    """Relays 127.0.0.1:<port> to ``target_url``'s host and port, delaying the replies."""

    def __init__(self, target_url: str) -> None:
        target = urlsplit(target_url)
        assert target.hostname is not None and target.port is not None, target_url
        self._target = (target.hostname, target.port)
        self._server: asyncio.Server | None = None
        self._to_server = bytearray()
        self._tasks: set[asyncio.Task[None]] = set()
        self.answer_delay = 0.0
        """Seconds each piece of the server's answer is held before it goes to the client."""
        self.url = ""

    async def __aenter__(self) -> SlowRelay:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def requests_seen(self, first_bytes: bytes) -> int:
        """How many times ``first_bytes`` (e.g. ``b"POST /api/v1/sessions/"``) went to the server."""
        return self._to_server.count(first_bytes)

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            server_reader, server_writer = await asyncio.open_connection(*self._target)
        except OSError:
            client_writer.close()
            self._tasks.discard(task)
            return
        try:
            await asyncio.gather(
                self._pump(client_reader, server_writer, record=True),
                self._pump(server_reader, client_writer, delay=True),
            )
        finally:
            for writer in (client_writer, server_writer):
                writer.close()
            self._tasks.discard(task)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, record: bool = False, delay: bool = False,
    ) -> None:
        """Copy until either side closes; the other direction is closed with it."""
        try:
            while data := await reader.read(65536):
                if record:
                    self._to_server += data
                if delay and self.answer_delay:
                    await asyncio.sleep(self.answer_delay)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
