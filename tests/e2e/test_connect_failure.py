"""A media connection that cannot be made, or a garbled answer, against a real host and broker.

The technician's view runs in this process; what it sends on signalling is altered on
its way out (``SignallingChannel.send`` patched here), the host is a real
``deskhand-host`` process. Neither may wait forever or crash: both people are told
what happened and what to check, and the session goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from pydantic import BaseModel

from peer.signalling import SignallingChannel
from protocol.signalling import Answer
from tests.support.live_session import live_session

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def broker_env() -> dict[str, str]:
    return {"DESKHAND_ICE_LOOPBACK": "true"}


def alter_answers(monkeypatch: pytest.MonkeyPatch, change: Callable[[str], str]) -> None:
    """Every answer the view sends goes out as ``change(sdp)`` (the host is another process)."""
    original = SignallingChannel.send

    async def send(channel: SignallingChannel, message: BaseModel) -> None:
        if isinstance(message, Answer):
            message = Answer(sdp=change(message.sdp))
        await original(channel, message)

    monkeypatch.setattr(SignallingChannel, "send", send)


async def test_a_garbled_answer_ends_the_attempt_and_the_next_one_connects(broker, xvfb, monkeypatch) -> None:
    alter_answers(monkeypatch, lambda sdp: "v=0\r\nm=application x\r\n")
    async with live_session(broker, xvfb.env, "--consent", "view") as live:
        await live.consented()
        await asyncio.sleep(2)  # the host has the garbled answer now
        monkeypatch.undo()
        # The technician's signalling drops and comes back: the host offers again.
        view = live.view
        assert view._channel is not None
        await view._channel.close()
        frame = await view.wait_for_frame(30)
        assert frame.width > 0
    assert "connection setup this computer cannot use" in live.output, live.output
    assert live.output.count("is connected") >= 1  # once media flowed on the second attempt
    assert "Traceback" not in live.errors, live.errors
    assert "Traceback" not in live.output, live.output
