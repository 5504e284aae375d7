"""peer.signalling.keep_signalling, both peers' signalling loop, with scripted channels (no sockets)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from pydantic import BaseModel

from peer.signalling import ReconnectSchedule, SignallingOver, SignallingRefused, keep_signalling


class Note(BaseModel):
    text: str


class ScriptedChannel:
    """A connection that delivers its messages, then drops."""

    def __init__(self, *texts: str) -> None:
        self.texts = texts

    async def messages(self) -> AsyncIterator[BaseModel]:
        for text in self.texts:
            yield Note(text=text)


class ScriptedPeer:
    def __init__(self, *connections: ScriptedChannel | Exception, stop_after: str | None = None,
                 stop_when_dropped: bool = False) -> None:
        self.connections = list(connections)
        self.stop_after = stop_after
        self.stop_when_dropped = stop_when_dropped
        self.handled: list[str] = []
        self.connects = 0
        self.drops = 0
        self.done = False

    def over(self) -> bool:
        return self.done

    async def open(self) -> ScriptedChannel:
        if not self.connections:
            raise OSError("the broker is gone")
        nxt = self.connections.pop(0)
        if isinstance(nxt, Exception):
            raise nxt
        return nxt

    async def connected(self, channel: ScriptedChannel) -> None:
        self.connects += 1

    async def handle(self, message: BaseModel) -> None:
        assert isinstance(message, Note)
        if message.text == "bad":
            raise ValueError("this message breaks its handler")
        self.handled.append(message.text)
        self.done = message.text == self.stop_after

    def dropped(self) -> bool:
        self.drops += 1
        return self.stop_when_dropped


def quick() -> ReconnectSchedule:
    return ReconnectSchedule(delays=(0.0,), give_up_after=0.2)


async def keep(
    peer: ScriptedPeer, channel: ScriptedChannel | None = None, schedule: ReconnectSchedule | None = None
) -> SignallingOver | None:
    """:func:`keep_signalling` with the scripted peer and channels."""
    return await keep_signalling(peer, channel, schedule)  # type: ignore[arg-type]  # stand-ins for the real peer and channel


async def test_a_message_whose_handling_fails_is_logged_and_the_next_one_handled(caplog: pytest.LogCaptureFixture) -> None:
    peer = ScriptedPeer(ScriptedChannel("one", "bad", "two", "end"), stop_after="end")
    with caplog.at_level(logging.ERROR, logger="peer.signalling"):
        assert await keep(peer, schedule=quick()) is None
    assert peer.handled == ["one", "two", "end"]
    assert [r.getMessage() for r in caplog.records] == ["handling a Note from the broker failed"]


async def test_a_dropped_connection_is_opened_again_and_told_what_it_must_hear_first() -> None:
    peer = ScriptedPeer(ScriptedChannel("one"), OSError("refused for now"), ScriptedChannel("two", "end"), stop_after="end")
    assert await keep(peer, schedule=quick()) is None
    assert peer.handled == ["one", "two", "end"] and peer.connects == 2 and peer.drops == 2


async def test_an_already_open_channel_is_used_first() -> None:
    peer = ScriptedPeer(stop_after="first")
    assert await keep(peer, ScriptedChannel("first"), schedule=quick()) is None
    assert peer.handled == ["first"] and peer.connects == 1


@pytest.mark.parametrize("status", [401, 403, 404, 410])
async def test_a_refusal_that_ends_the_session_stops_at_once(status: int) -> None:
    peer = ScriptedPeer(SignallingRefused("the session is over", status=status))
    over = await keep(peer, schedule=quick())
    assert over == SignallingOver("the session is over", refused=True)


async def test_a_busy_broker_is_tried_again() -> None:
    peer = ScriptedPeer(SignallingRefused("busy", status=503), ScriptedChannel("end"), stop_after="end")
    assert await keep(peer, schedule=quick()) is None
    assert peer.handled == ["end"]


async def test_a_peer_that_wants_out_is_not_kept_reconnecting() -> None:
    peer = ScriptedPeer(ScriptedChannel("one"), ScriptedChannel("never"), stop_when_dropped=True)
    assert await keep(peer, schedule=quick()) is None
    assert peer.handled == ["one"] and peer.drops == 1


async def test_a_broker_out_of_reach_for_too_long_ends_signalling() -> None:
    peer = ScriptedPeer()  # every attempt: OSError
    over = await keep(peer, schedule=ReconnectSchedule(delays=(0.01,), give_up_after=0.05))
    assert over == SignallingOver("lost the connection to the broker", refused=False)
