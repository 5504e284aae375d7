"""peer.signalling: how often a peer retries the broker, when it stops, and what counts as unreachable."""

from __future__ import annotations

import asyncio

import pytest

from peer.signalling import ReconnectSchedule, SignallingChannel


def test_delays_grow_then_stay_at_the_last_one() -> None:
    schedule = ReconnectSchedule(delays=(0.5, 1.0, 4.0), give_up_after=100)
    assert [schedule.next_delay(now) for now in (0, 1, 2, 3, 4)] == [0.5, 1.0, 4.0, 4.0, 4.0]


def test_it_gives_up_once_the_broker_was_gone_too_long() -> None:
    schedule = ReconnectSchedule(delays=(1.0,), give_up_after=10)
    assert schedule.next_delay(100.0) == 1.0
    assert schedule.next_delay(110.0) == 1.0
    assert schedule.next_delay(110.5) is None


def test_a_connection_starts_the_schedule_afresh() -> None:
    schedule = ReconnectSchedule(delays=(0.5, 8.0), give_up_after=10)
    schedule.next_delay(0.0)
    schedule.next_delay(9.0)
    schedule.connected()
    assert schedule.next_delay(50.0) == 0.5
    assert schedule.next_delay(59.0) == 8.0
    assert schedule.next_delay(61.0) is None


async def test_a_broker_that_dies_during_the_handshake_is_unreachable_not_a_refusal() -> None:
    """A connection cut before the broker answers the upgrade is an OSError, which peers retry."""

    async def die_mid_handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(die_mid_handshake, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        with pytest.raises(OSError, match="handshake broke off"):
            await SignallingChannel.open(f"http://127.0.0.1:{port}", "/api/v1/sessions/x/signal", "dhh_token")
