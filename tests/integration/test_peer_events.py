"""Peer events are stored exactly once: ids, repeats, races, a broker slower than the client, bad input.

A real broker; the peer is :class:`peer.events.EventReporter` itself or plain
HTTP. The slow broker is the real one behind :class:`tests.support.slow_relay.SlowRelay`,
which holds back its answers so the reporter times out and sends again.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from peer import events
from peer.events import EventReporter
from tests.support.api import bearer, paired_session
from tests.support.broker import BrokerProcess
from tests.support.polling import async_wait_until
from tests.support.slow_relay import SlowRelay

pytestmark = pytest.mark.both_stacks

EVENTS_POST = b"POST /api/v1/sessions/"
NOW = datetime.now(UTC).isoformat()


def event(event_id: str, kind: str = "chat.sent", **data: Any) -> dict[str, Any]:
    return {"id": event_id, "kind": kind, "at": NOW, "data": data or {"text": f"message {event_id}"}}


def post(broker: BrokerProcess, session_id: str, token: str, body: Any) -> httpx.Response:
    return broker.http.post(f"/sessions/{session_id}/events", headers=bearer(token), json=body)


def stored_ids(broker: BrokerProcess, session_id: str) -> list[str]:
    """Every peer event id stored for the session, one per row (a duplicate would show twice)."""
    rows = broker.sql("SELECT peer_event_id FROM audit_events WHERE session_id = ? AND peer_event_id IS NOT NULL "
                      "ORDER BY id", session_id)
    return [str(i) for (i,) in rows]


def test_a_batch_mixing_new_and_repeated_events_stores_the_new_ones_and_names_the_others(broker, admin) -> None:
    session_id, host = paired_session(broker, admin)
    first = post(broker, session_id, host, {"events": [event("aaaaaaaa-1"), event("aaaaaaaa-2")]})
    assert first.status_code == 200, first.text
    assert first.json() == {"stored": ["aaaaaaaa-1", "aaaaaaaa-2"], "already_stored": []}

    again = post(broker, session_id, host, {"events": [event("aaaaaaaa-2"), event("aaaaaaaa-3"), event("aaaaaaaa-3")]})
    assert again.status_code == 200, again.text
    assert again.json() == {"stored": ["aaaaaaaa-3"], "already_stored": ["aaaaaaaa-2", "aaaaaaaa-3"]}
    assert stored_ids(broker, session_id) == ["aaaaaaaa-1", "aaaaaaaa-2", "aaaaaaaa-3"]

    # The id is the peer's own: the technician may use one the host used.
    tech = post(broker, session_id, broker.login(), {"events": [event("aaaaaaaa-1")]})
    assert tech.json() == {"stored": ["aaaaaaaa-1"], "already_stored": []}
    # The hash covers the id and the peer's time (in data); the row's own time is the broker's.
    (data,) = broker.sql("SELECT data FROM audit_events WHERE session_id = ? AND peer_event_id = 'aaaaaaaa-3'", session_id)[0]
    assert json.loads(data) == {"text": "message aaaaaaaa-3", "event_id": "aaaaaaaa-3",
                                "reported_at": datetime.fromisoformat(NOW).isoformat()}


def test_the_same_batch_sent_at_the_same_moment_is_stored_once(broker, admin) -> None:
    session_id, host = paired_session(broker, admin)
    body = {"events": [event(f"bbbbbbbb-{n}") for n in range(50)]}
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: post(broker, session_id, host, body), range(4)))
    assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
    stored = [i for a in answers for i in a.json()["stored"]]
    assert sorted(stored) == sorted(e["id"] for e in body["events"])
    assert sorted(stored_ids(broker, session_id)) == sorted(stored)


def test_the_database_refuses_a_second_copy_of_an_id(broker, admin) -> None:
    """The unique index, not only the look-up: even a writer that skips the check cannot store twice."""
    session_id, host = paired_session(broker, admin)
    post(broker, session_id, host, {"events": [event("cccccccc-1")]})
    with pytest.raises(Exception, match=r"UNIQUE constraint failed|duplicate key value violates unique constraint"):
        broker.sql("INSERT INTO audit_events (at, kind, actor, session_id, data, peer_event_id) "
                   "SELECT at, kind, actor, session_id, data, peer_event_id FROM audit_events WHERE peer_event_id = 'cccccccc-1'")


async def test_a_broker_answering_slower_than_the_client_waits_still_stores_every_event_once(broker, admin) -> None:
    session_id, host = paired_session(broker, admin)
    async with SlowRelay(broker.base_url) as relay:
        relay.answer_delay = 2.0
        reporter = EventReporter(relay.url, host, session_id, request_timeout=0.5)
        reporter.start()
        reporter.add("chat.sent", text="Is the printer on?")
        reporter.add("clipboard.sent", chars=3, sha256="a" * 64)
        reporter.add("monitor.selected", index=1)
        reporter.count("input.applied", 7)
        # Each request reaches the broker (which stores the events) and times out at the client.
        await async_wait_until(lambda: relay.requests_seen(EVENTS_POST) >= 3, "the reporter to send again", timeout=15)
        relay.answer_delay = 0.0
        await reporter.close()
    ids = stored_ids(broker, session_id)
    assert len(ids) == len(set(ids)) == 4, ids
    assert reporter.already_stored >= 1, "the broker answered a repeat as already stored"
    rows = broker.sql("SELECT kind, data FROM audit_events WHERE session_id = ? AND peer_event_id IS NOT NULL ORDER BY id",
                      session_id)
    assert sorted(kind for kind, _ in rows) == ["chat.sent", "clipboard.sent", "input.applied", "monitor.selected"]
    assert json.loads(next(d for k, d in rows if k == "input.applied"))["count"] == 7


async def test_closing_while_a_batch_is_on_its_way_waits_for_its_answer_instead_of_sending_it_again(broker, admin) -> None:
    session_id, host = paired_session(broker, admin)
    async with SlowRelay(broker.base_url) as relay:
        relay.answer_delay = 1.0
        reporter = EventReporter(relay.url, host, session_id)
        reporter.start()
        reporter.add("chat.sent", text="Done?")
        await async_wait_until(lambda: relay.requests_seen(EVENTS_POST) == 1, "the batch on its way")
        await reporter.close()
        assert relay.requests_seen(EVENTS_POST) == 1
    assert (reporter.delivered, reporter.already_stored) == (1, 0)
    assert len(stored_ids(broker, session_id)) == 1


BAD_EVENTS = {
    "no id": {"kind": "chat.sent", "at": NOW, "data": {"text": "hi"}},
    "a short id": event("abc"),
    "an id with a slash": event("aaaaaaaa/1"),
    "a long id": event("a" * 65),
    "an id that is a number": {**event("x"), "id": 12345678},
    "an unknown kind": event("dddddddd-1", "session.ended", reason="x"),
    "a kind of the other role": event("dddddddd-1", "input.sent", count=1, seconds=1.0),
    "a count that is text": event("dddddddd-1", "input.applied", count="3", seconds=1.0),
    "data the kind does not have": event("dddddddd-1", "chat.sent", text="hi", reported_at="2020-01-01T00:00:00Z"),
    "a chat too long": event("dddddddd-1", "chat.sent", text="x" * 4001),
    "a hash that is not one": event("dddddddd-1", "clipboard.sent", chars=1, sha256="zz"),
    "a monitor 0": event("dddddddd-1", "monitor.selected", index=0),
    "a time without zone": {**event("dddddddd-1"), "at": "2026-01-01T10:00:00"},
    "text typed while keystroke logging is off": event("dddddddd-1", "input.text", text="secret"),
}


@pytest.mark.parametrize("what", BAD_EVENTS)
def test_bad_events_are_refused_with_the_error_shape_and_nothing_is_stored(broker, admin, what: str) -> None:
    session_id, host = paired_session(broker, admin)
    answer = post(broker, session_id, host, {"events": [event("eeeeeeee-1"), BAD_EVENTS[what]]})
    assert answer.status_code in (403, 422), answer.text
    body = answer.json()
    assert set(body) >= {"error", "message"} and body["error"] in ("invalid_request", "invalid_event", "not_allowed")
    assert stored_ids(broker, session_id) == []


def test_the_host_marks_a_media_gap_in_the_trail_and_the_technician_cannot(broker, admin) -> None:
    session_id, host = paired_session(broker, admin)
    gap = [event("gggggggg-1", "media.interrupted", silent_seconds=3.1),
           event("gggggggg-2", "media.restored", silent_seconds=9.4, attempts=3),
           event("gggggggg-3", "media.lost", seconds=60.0, attempts=20)]
    stored = post(broker, session_id, host, {"events": gap})
    assert stored.status_code == 200, stored.text
    rows = broker.sql("SELECT kind, data FROM audit_events WHERE session_id = ? AND peer_event_id IS NOT NULL "
                      "ORDER BY id", session_id)
    assert [(kind, {k: v for k, v in json.loads(data).items() if k not in ("event_id", "reported_at")})
            for kind, data in rows] == [("media.interrupted", {"silent_seconds": 3.1}),
                                        ("media.restored", {"silent_seconds": 9.4, "attempts": 3}),
                                        ("media.lost", {"seconds": 60.0, "attempts": 20})]
    refused = post(broker, session_id, broker.login(), {"events": [event("gggggggg-4", "media.interrupted", silent_seconds=3.0)]})
    assert refused.status_code == 422 and refused.json()["error"] == "invalid_event"


def test_a_batch_too_large_or_not_json_is_refused(broker, admin) -> None:
    session_id, host = paired_session(broker, admin)
    too_many = post(broker, session_id, host, {"events": [event(f"ffffffff-{n}") for n in range(501)]})
    assert too_many.status_code == 422 and too_many.json()["error"] == "invalid_request"
    garbled = broker.http.post(f"/sessions/{session_id}/events", headers={**bearer(host), "Content-Type": "application/json"},
                               content=b"{not json")
    assert garbled.status_code == 422 and garbled.json()["error"] == "invalid_request"
    assert stored_ids(broker, session_id) == []


async def test_what_the_other_side_reports_receiving_is_sent_at_once(broker, admin, monkeypatch) -> None:
    """A chat message's sending reaches the broker before the other side's receipt (sent each second)."""
    monkeypatch.setattr(events, "FLUSH_SECONDS", 60.0)  # nothing goes by the clock in this test
    session_id, host = paired_session(broker, admin)
    reporter = EventReporter(broker.base_url, host, session_id)
    reporter.start()
    reporter.count("input.applied")
    reporter.add("chat.sent", text="now")
    await async_wait_until(lambda: reporter.delivered == 1, "the chat event", timeout=10)
    assert [k for (k,) in broker.sql("SELECT kind FROM audit_events WHERE session_id = ? AND peer_event_id IS NOT NULL",
                                     session_id)] == ["chat.sent"]
    await reporter.close()
    assert reporter.delivered == 2, "the count went when the reporter closed"


async def test_a_queue_of_long_messages_goes_in_batches_within_the_body_limit(broker, admin) -> None:
    """300 chat messages of 4,000 two-byte characters are 2.4 MB: more than one request may carry."""
    session_id, host = paired_session(broker, admin)
    async with SlowRelay(broker.base_url) as relay:
        relay.answer_delay = 0.0
        reporter = EventReporter(relay.url, host, session_id)
        for n in range(300):
            reporter.add("chat.sent", text=f"{n:04d}" + "é" * 3996)
        await reporter.close()
        sent = relay.requests_seen(EVENTS_POST)
    assert reporter.delivered == 300 and len(stored_ids(broker, session_id)) == 300
    assert sent >= 3, sent  # each within MAX_EVENT_BATCH_BYTES, none refused as too large
