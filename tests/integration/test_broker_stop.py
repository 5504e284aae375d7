"""A broker told to stop (SIGTERM: a stop, a rolling restart) stops within seconds, long polls or not.

A long poll whose client has gone ends within a second (``broker/server/long_polls.py``); one whose
client still waits is cut after ``DESKHAND_SHUTDOWN_GRACE_SECONDS``. Before, a stop waited for every
poll under way, up to its 25 s wait, and a test broker was killed after 10.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from tests.support.api import HOST_BODY, bearer
from tests.support.broker import BrokerProcess

pytestmark = pytest.mark.both_stacks

REQUEST = {"name": "Dana Example", "summary": "The printer says offline", **HOST_BODY}
WAIT = 25


def held_poll(broker: BrokerProcess, outcome: list[Any], timeout: float) -> threading.Thread:
    """A help request's long poll (its place cannot change: it is the only one) by a client that gives up
    after ``timeout`` seconds; what it got lands in ``outcome``."""
    created = broker.http.post("/requests", json=REQUEST)
    assert created.status_code == 201, created.text
    body = created.json()

    def poll() -> None:
        try:
            outcome.append(httpx.get(broker.api + body["poll_path"].removeprefix("/api/v1"),
                                     params={"wait": WAIT, "position": 1},
                                     headers=bearer(body["request_token"]), timeout=timeout).status_code)
        except httpx.HTTPError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=poll)
    thread.start()
    return thread


def stopped_in(broker: BrokerProcess) -> tuple[float, int]:
    """Seconds a SIGTERM took to end the broker, and its exit code (SIGKILL after 20 s)."""
    asked = time.monotonic()
    code = broker.stop(grace=20)
    return time.monotonic() - asked, code


def test_a_long_poll_whose_client_left_does_not_hold_a_stop(start_broker, broker_db) -> None:
    broker = start_broker(**broker_db.env())
    outcome: list[Any] = []
    held_poll(broker, outcome, timeout=0.5).join(5)
    assert outcome and isinstance(outcome[0], httpx.TimeoutException), outcome
    time.sleep(2)  # the poll notices its client has gone
    took, code = stopped_in(broker)
    assert took < 2, f"the stop waited {took:.1f} s for a poll no one waits for"
    assert code != -9, "stopped, not killed"
    assert "Waiting for background tasks" not in broker.output_text(20)


def test_a_long_poll_still_waited_for_is_cut_after_the_grace(start_broker, broker_db) -> None:
    broker = start_broker(DESKHAND_SHUTDOWN_GRACE_SECONDS="2", **broker_db.env())
    outcome: list[Any] = []
    thread = held_poll(broker, outcome, timeout=WAIT + 10)
    time.sleep(1)
    took, code = stopped_in(broker)
    thread.join(10)
    assert 1.5 < took < 6, f"stopped after {took:.1f} s with a grace of 2 s"
    assert code != -9, "stopped, not killed"
    assert outcome and outcome[0] != 200, f"the poll was cut, not answered late: {outcome}"
