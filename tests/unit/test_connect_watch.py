"""The 15 s connection deadline and the failure text (peer.connect_watch)."""

from __future__ import annotations

import asyncio

import pytest

from peer.connect_watch import CONNECT_LIMIT_SECONDS, Attempt, ConnectDeadline, failure_text, ice_failed_message
from peer.ice import watch_connection
from protocol.signalling import TurnFailure


def test_waits_until_the_limit_then_fails() -> None:
    deadline = ConnectDeadline(started_at=50.0)
    assert CONNECT_LIMIT_SECONDS == 15.0
    assert deadline.check(50.0, "new") is Attempt.waiting
    assert deadline.check(64.9, "connecting") is Attempt.waiting
    assert deadline.check(65.0, "connecting") is Attempt.failed
    assert deadline.waited(65.0) == pytest.approx(15.0)


def test_connected_in_time_never_fails_later() -> None:
    deadline = ConnectDeadline(started_at=0.0, limit=15.0)
    assert deadline.check(3.0, "connected") is Attempt.connected
    assert deadline.check(100.0, "failed") is Attempt.connected  # a path lost later is recovery's business


@pytest.mark.parametrize("state", ["failed", "closed"])
def test_ice_failing_early_is_failure_at_once(state: str) -> None:
    assert ConnectDeadline(started_at=0.0).check(2.0, state) is Attempt.failed


def test_the_text_names_what_to_check_and_the_relay_failures() -> None:
    refused = [TurnFailure(url="turn:r:3478", reason="the relay refused the credentials")]
    ours = failure_text("the technician", ice_failed_message(1, 15.04, ["host", "relay"], [], refused))
    assert ours.startswith("Could not connect to the technician: no network path worked (gave up after 15.0 s).")
    assert "firewall" in ours and "TURN settings" in ours
    assert "turn:r:3478: the relay refused the credentials" in ours
    # ICE can fail long before the deadline: the text says how long this side really tried.
    early = failure_text("the technician", ice_failed_message(1, 0.84, ["host"], [], []))
    assert "(gave up after 0.8 s)" in early and "relay said" not in early
    theirs = failure_text("the end user", ice_failed_message(2, 15.0, ["host"], [], []), theirs=True)
    assert theirs.startswith("Could not connect to the end user") and "firewall" in theirs
    assert "relay said" not in theirs


def test_ice_failed_lists_each_type_once_in_order() -> None:
    message = ice_failed_message(2, 15.04, ["relay", "host", "host"], [], [])
    assert (message.attempt, message.seconds, message.local_types, message.remote_types) == (2, 15.0, ["host", "relay"], [])
    many = [TurnFailure(url=f"turn:r{i}", reason="x") for i in range(12)]
    assert len(ice_failed_message(1, 1e9, [], ["srflx"], many).turn_failures) == 8


class _Pc:
    """What watch_connection reads of a peer connection (no transports: no candidates yet)."""

    sctp = None

    def __init__(self, state: str) -> None:
        self.connectionState = state  # aiortc's name

    def getTransceivers(self) -> list[object]:  # noqa: N802 - aiortc's name
        return []


def test_watch_connection_reports_a_failed_attempt_and_nothing_else() -> None:
    failed = asyncio.run(watch_connection(_Pc("failed"), 3, lambda: True))  # type: ignore[arg-type]
    assert failed is not None and failed.attempt == 3 and failed.local_types == [] and failed.seconds < 1
    assert asyncio.run(watch_connection(_Pc("connected"), 1, lambda: True)) is None  # type: ignore[arg-type]
    assert asyncio.run(watch_connection(_Pc("new"), 1, lambda: False)) is None  # type: ignore[arg-type]  # replaced
