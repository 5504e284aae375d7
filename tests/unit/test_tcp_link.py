"""The TCP half of the link emulator: its loss rules (pure) and the delaying relay on loopback."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.support.tcp_link import loss_ruleset, serve


def test_loss_rules_drop_what_arrives_for_the_port_at_either_end() -> None:
    server = loss_ruleset(5900, 0.02, server_side=True)
    assert "hook input" in server and "tcp dport 5900 numgen random mod 1000000 < 20000 counter drop" in server
    assert "tcp sport 5900 numgen random mod 1000000 < 20000 counter drop" in loss_ruleset(5900, 0.02, server_side=False)
    for port, loss in ((5900, 0.0), (5900, 1.0), (0, 0.1), (70000, 0.1)):
        with pytest.raises(ValueError):
            loss_ruleset(port, loss, server_side=True)


async def test_the_relay_delays_each_way_and_keeps_the_stream_whole() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    upstream = await asyncio.start_server(echo, "127.0.0.1", 0)
    upstream_port = upstream.sockets[0].getsockname()[1]
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    relay_port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    relay = asyncio.create_task(serve(("127.0.0.1", relay_port), ("127.0.0.1", upstream_port), 0.05))
    try:
        for _ in range(100):
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", relay_port)
                break
            except OSError:
                await asyncio.sleep(0.02)
        payload = bytes(range(256)) * 4000  # 1 MB, many chunks
        started = time.monotonic()
        writer.write(payload)
        await writer.drain()
        writer.write_eof()
        echoed = await asyncio.wait_for(reader.read(-1), 10)
        took = time.monotonic() - started
        writer.close()
    finally:
        relay.cancel()
        upstream.close()
    assert echoed == payload
    assert took >= 0.1, took  # 50 ms there and 50 ms back at the least
