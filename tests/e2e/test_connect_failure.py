"""A media connection that cannot be made, or a garbled answer, against a real host and broker.

The technician's view runs in this process; what it sends on signalling is altered on
its way out (``SignallingChannel.send`` patched here), the host is a real
``deskhand-host`` process. Neither may wait forever or crash: both people are told
what happened and what to check, and the session goes on.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable

import pytest
from pydantic import BaseModel

from peer.connect_watch import CONNECT_LIMIT_SECONDS
from peer.signalling import SignallingChannel
from protocol.signalling import Answer
from tech_console.remote_view import ViewError
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


async def test_no_working_path_is_explained_to_both_sides_within_the_limit(broker, xvfb, monkeypatch) -> None:
    # A wrong ICE password: the host's checks can never be answered, so no pair ever works.
    alter_answers(monkeypatch, lambda sdp: re.sub(r"a=ice-pwd:\S+", "a=ice-pwd:" + "x" * 24, sdp))
    async with live_session(broker, xvfb.env, "--consent", "view") as live:
        await live.consented()
        started = time.monotonic()
        with pytest.raises(ViewError) as failed:
            await live.view.wait_for_frame(60)
        waited = time.monotonic() - started
        text = str(failed.value)
        await asyncio.sleep(1)  # the host prints what it was told
    assert waited < CONNECT_LIMIT_SECONDS + 5, waited
    assert text.startswith("Could not connect to the end user") and "firewall" in text, text
    assert "Could not connect to the technician" in live.output, live.output
    assert "TURN settings" in live.output
    assert "is connected" not in live.output  # the technician joined, but media never flowed
    assert "Traceback" not in live.errors, live.errors


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
