"""The console's view tells the technician why media never came, at once (tech_console.remote_view)."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiortc import RTCPeerConnection

from peer.liveness import TECHNICIAN_WORDS, Recovery
from protocol.ice import IceConfig, IceServer
from protocol.signalling import IceFailed, IceRenewed, Offer, TurnFailure
from tech_console.remote_view import RemoteView, ViewError


def test_the_hosts_ice_failed_ends_the_wait_for_a_frame_with_what_to_check() -> None:
    async def run() -> tuple[str, float, RemoteView]:
        view = RemoteView("http://127.0.0.1:9", "s1", "token")
        view._pc = RTCPeerConnection()
        await view._handle(IceFailed(attempt=1, seconds=15.0, local_types=["host"],
                                     turn_failures=[TurnFailure(url="turns:r:443", reason="the relay is unreachable")]))
        started = time.monotonic()
        with pytest.raises(ViewError) as failed:
            await view.wait_for_frame(60)
        return str(failed.value), time.monotonic() - started, view

    text, waited, view = asyncio.run(run())
    assert waited < 1.0  # not the 60 s the caller allowed
    assert text.startswith("Could not connect to the end user") and "firewall" in text and "TURN settings" in text
    assert "turns:r:443: the relay is unreachable" in text
    assert view.peer_connection is None and view.notices == [text]


def test_renewed_ice_and_a_malformed_offer() -> None:
    sent: list[object] = []

    class Channel:
        closed = False

        async def send(self, message: object) -> None:
            sent.append(message)

    async def run() -> RemoteView:
        view = RemoteView("http://127.0.0.1:9", "s1", "token")
        renewed = IceConfig(servers=[IceServer(urls=["turn:127.0.0.1"], username="1:a", credential="c")], loopback_only=True)
        await view._handle(IceRenewed(ice=renewed))
        assert view._ice == renewed
        view._channel = Channel()  # type: ignore[assignment]  # records what the view sends
        await view._handle(Offer(sdp="v=0\r\nm=video x\r\n"))
        await view._tasks.close()
        return view

    view = asyncio.run(run())
    assert view.connect_failure is not None and "malformed" in view.connect_failure
    assert view.peer_connection is None
    (told,) = sent
    assert isinstance(told, IceFailed) and told.attempt == 1  # the host waits for no answer


def test_a_silent_host_is_reconnecting_waits_go_on_and_giving_up_ends_them_with_what_to_check() -> None:
    async def run() -> tuple[str, float, bool, RemoteView]:
        view = RemoteView("http://127.0.0.1:9", "s1", "token")
        view._pc = RTCPeerConnection()
        view._recovery = Recovery(offerer=False, ping_seconds=0.1, silence_seconds=0.3, give_up_seconds=1.0)
        view._recover(view._recovery.opened(time.monotonic()))  # the control channel opened; the host never answers
        view._tasks.start(view._watch_liveness(), "liveness")
        await view.wait_until(lambda: view.reconnecting, 2, "reconnecting")
        started = time.monotonic()
        with pytest.raises(ViewError) as failed:
            await view.wait_for_frame(60)  # not failed by the interruption: only by giving up
        waited = time.monotonic() - started
        reconnecting = view.reconnecting
        await view._tasks.close()
        return str(failed.value), waited, reconnecting, view

    text, waited, reconnecting, view = asyncio.run(run())
    assert 0.3 < waited < 5.0  # about the 1 s given: not the 60 s the caller allowed
    assert text == view.connect_failure and text.startswith("The connection could not be restored")
    assert "ask the user to check their network connection" in text
    assert view.notices == [TECHNICIAN_WORDS.reconnecting, text]
    assert view.peer_connection is None and not reconnecting
