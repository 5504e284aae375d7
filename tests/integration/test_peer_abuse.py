"""What a peer (or whoever holds its token) pushed into the broker, as reported in issue 15, each bounded now.

One test per observed item: event data naming what the broker decides, deeply
nested events and frames, a segment of garbage with its true hash, storage
without quotas, a flood of events, of consent frames and of ICE candidates. A
real broker on 127.0.0.1 and real WebSocket peers; floods are bounded in count
and time.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import av
import httpx
import numpy as np
import pytest
import websockets

from tests.support.api import bearer, end_session, export_bundle, paired_session, play_recording
from tests.support.broker import BrokerProcess
from tests.support.segments import put_segment, webm_segment

EARLY = "2001-01-01T00:00:00+00:00"


def event(event_id: str, kind: str = "chat.sent", **data: Any) -> dict[str, Any]:
    return {"id": event_id, "kind": kind, "at": EARLY, "data": data or {"text": f"message {event_id}"}}


def post_events(broker: BrokerProcess, session_id: str, token: str, events: list[dict[str, Any]]) -> httpx.Response:
    return broker.http.post(f"/sessions/{session_id}/events", headers=bearer(token), json={"events": events})


def peer_rows(broker: BrokerProcess, session_id: str) -> list[tuple[Any, ...]]:
    return broker.sql("SELECT kind, actor, source, session_id, ticket_id, at, data FROM audit_events "
                      "WHERE session_id = ? AND peer_event_id IS NOT NULL ORDER BY id", session_id)


def nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


# --- event data -------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["source", "actor", "session_id", "ticket_id", "kind", "db", "at", "reported_at",
                                 "event_id", "peer_event_id", "data"])
def test_event_data_cannot_name_what_the_broker_decides(broker, admin, key: str) -> None:
    """Before: ``source`` set the stored event's source; the other keys were a 500."""
    session_id, host = paired_session(broker, admin)
    sneaky = {"id": "abuse-key-1", "kind": "chat.sent", "at": EARLY, "data": {"text": "hi", key: "203.0.113.66"}}
    answer = post_events(broker, session_id, host, [sneaky])
    assert answer.status_code == 422 and answer.json()["error"] == "invalid_request", answer.text
    assert peer_rows(broker, session_id) == []


def test_a_stored_event_carries_only_what_the_broker_decides(broker, admin) -> None:
    session_id, host = paired_session(broker, admin)
    received = datetime.now(UTC)
    assert post_events(broker, session_id, host, [event("abuse-own-1")]).status_code == 200
    ((kind, actor, source, stored_session, ticket_id, at, data),) = peer_rows(broker, session_id)
    (ticket,) = broker.sql("SELECT ticket_id FROM support_sessions WHERE id = ?", session_id)[0]
    assert (kind, actor, source, stored_session, ticket_id) == ("chat.sent", f"host:{session_id}", None, session_id, ticket)
    assert abs((datetime.fromisoformat(at).replace(tzinfo=UTC) - received).total_seconds()) < 5
    assert json.loads(data)["reported_at"] == EARLY  # the peer's time is data, never the event's time


@pytest.mark.parametrize("depth", [300, 960, 30_000])
def test_a_deeply_nested_event_is_refused_and_the_report_keeps_working(broker, admin, depth: int) -> None:
    """Before: 300 deep was stored and the session's report answered 500 for good; 960 deep was a 500."""
    session_id, host = paired_session(broker, admin)
    raw = (f'{{"events": [{{"id": "abuse-deep-1", "kind": "chat.sent", "at": "{EARLY}", "data": {{"text": {nested(depth)}}}}}]}}')
    answer = broker.http.post(f"/sessions/{session_id}/events", content=raw,
                              headers={**bearer(host), "Content-Type": "application/json"})
    assert answer.status_code == 422 and answer.json()["error"] == "too_deep", answer.text
    assert peer_rows(broker, session_id) == []
    report = broker.http.get(f"/audit/sessions/{session_id}/report", headers=admin)
    assert report.status_code == 200, report.text


# --- signalling frames ------------------------------------------------------------------


@asynccontextmanager
async def connected(broker: BrokerProcess, session_id: str, token: str) -> AsyncIterator[websockets.ClientConnection]:
    async with websockets.connect(broker.ws_url(session_id), additional_headers=bearer(token), max_size=2**22) as ws:
        yield ws


async def receive(ws: websockets.ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    return message


async def next_of(ws: websockets.ClientConnection, kind: str, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (message := await receive(ws, max(0.01, deadline - time.monotonic())))["type"] != kind:
        pass
    return message


async def drain(ws: websockets.ClientConnection, quiet: float = 0.5) -> list[dict[str, Any]]:
    """Everything that arrives until nothing has for ``quiet`` seconds."""
    got = []
    while True:
        try:
            got.append(await receive(ws, quiet))
        except TimeoutError:
            return got


async def test_a_frame_nested_30000_deep_is_answered_and_the_socket_stays(broker, admin) -> None:
    """Before: json.loads raised RecursionError and the broker closed the socket ("Exception in ASGI application")."""
    session_id, host_token = paired_session(broker, admin)
    async with connected(broker, session_id, host_token) as host, connected(broker, session_id, broker.login()) as tech:
        await next_of(host, "peer_joined")
        await host.send(f'{{"type": "ice", "candidate": {nested(30_000)}}}')
        assert (await next_of(host, "error"))["code"] == "too_deep"
        await host.send(json.dumps({"type": "ice", "candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"}))
        assert (await next_of(tech, "ice"))["candidate"].startswith("candidate:1")
    assert not any("Traceback" in line for line in broker.output)


async def test_a_flood_of_ice_frames_is_refused_to_its_sender_and_the_other_peer_stays(broker, admin) -> None:
    """Before: 20,000 ICE frames in 0.9 s disconnected the technician ("too slow to read signalling")."""
    session_id, host_token = paired_session(broker, admin)
    candidate = json.dumps({"type": "ice", "candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"})
    async with connected(broker, session_id, host_token) as host, connected(broker, session_id, broker.login()) as tech:
        await next_of(host, "peer_joined")
        started = time.monotonic()
        for _ in range(20_000):
            await host.send(candidate)
        relayed = [m for m in await drain(tech) if m["type"] == "ice"]
        elapsed = time.monotonic() - started
        errors = [m for m in await drain(host, 0.2) if m["type"] == "error"]
        assert [e["code"] for e in errors] == ["rate_limited"], errors
        assert 100 <= len(relayed) <= 100 + 20 * elapsed + 1, (len(relayed), elapsed)
        await asyncio.sleep(1.0)  # the host's rate refills: it is heard again, and the technician still reads
        await host.send(json.dumps({"type": "offer", "sdp": "v=0"}))
        assert (await next_of(tech, "offer"))["sdp"] == "v=0"
        await tech.send(json.dumps({"type": "answer", "sdp": "v=0"}))
        assert (await next_of(host, "answer"))["sdp"] == "v=0"


async def test_a_flood_of_consent_frames_becomes_a_handful_of_changes_and_a_revocation_is_at_once(broker, admin) -> None:
    """Before: 3,000 consent frames became 2,335 audit events (and disconnected the technician)."""
    session_id, host_token = paired_session(broker, admin)
    allow = {"type": "consent", "permissions": ["view", "control"], "source": "window"}
    revoke = {"type": "consent", "permissions": ["view"], "source": "window"}

    def stored() -> str:
        return str(broker.sql("SELECT consent FROM support_sessions WHERE id = ?", session_id)[0][0])

    async with connected(broker, session_id, host_token) as host, connected(broker, session_id, broker.login()) as tech:
        await next_of(host, "peer_joined")
        for n in range(3000):
            await host.send(json.dumps(allow if n % 2 == 0 else revoke))
        relayed = [m for m in await drain(tech) if m["type"] == "consent"]
        assert relayed[-1]["permissions"] == ["view"] and stored() == '["view"]'  # the last frame, a revocation
        changes = broker.sql("SELECT count(*) FROM audit_events WHERE session_id = ? AND kind = 'consent.changed'",
                             session_id)[0][0]
        assert changes == len(relayed) <= 12, (changes, len(relayed))
        told = [m["code"] for m in await drain(host, 0.2) if m["type"] == "error"]
        assert 1 <= len(told) <= 2 and set(told) == {"rate_limited"}, told
        # Whether the budget allows it now or it waits its turn, a revocation right after a widening is at once...
        await host.send(json.dumps({**allow, "permissions": ["view", "control", "chat"]}))
        await host.send(json.dumps(revoke))
        deadline = time.monotonic() + 0.5
        while stored() != '["view"]' or time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert [m["permissions"] for m in await drain(tech, 1.5)] in ([], [["view", "control", "chat"], ["view"]])
        assert stored() == '["view"]'
        # ...and the user's last choice always takes effect, a widening within a second or so.
        await host.send(json.dumps(allow))
        assert (await next_of(tech, "consent", timeout=3))["permissions"] == ["view", "control"]
        assert stored() == '["view", "control"]'


# --- recording segments -----------------------------------------------------------------


def encoded_webm(codec: str, *, audio: bool = False, size: tuple[int, int] = (160, 120)) -> bytes:
    """A one-second WebM of ``codec`` (with an Opus track too when ``audio``)."""
    buffer = io.BytesIO()
    width, height = size
    with av.open(buffer, "w", format="webm") as out:
        video = out.add_stream(codec, rate=2)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = out.add_stream("libopus", rate=48000) if audio else None
        for pts in range(2):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), 90, np.uint8), format="rgb24")
            frame.pts = pts
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if sound is not None:
            samples = av.AudioFrame.from_ndarray(np.zeros((1, 960), np.int16), format="s16", layout="mono")
            samples.sample_rate, samples.pts = 48000, 0
            for packet in [*sound.encode(samples), *sound.encode()]:
                out.mux(packet)
    return buffer.getvalue()


def playback_and_export_work(broker: BrokerProcess, admin: dict[str, str], session_id: str, segments: int) -> None:
    played = play_recording(broker, admin, session_id)
    assert played.status_code == 200, played.text
    with av.open(io.BytesIO(played.content)) as container:
        assert len(list(container.decode(video=0))) == 2 * segments
    exported = export_bundle(broker, admin, session_id)
    assert exported.status_code == 200, exported.text


def test_a_segment_that_is_not_what_a_host_records_is_refused_and_the_recording_still_plays(broker, admin) -> None:
    """Before: garbage bytes with their true SHA-256 were stored (204) and playback and export failed for good."""
    session_id, host = paired_session(broker, admin)
    refused = {
        "garbage": os.urandom(4000),
        "a VP9 stream": encoded_webm("libvpx-vp9"),
        "a VP8 stream beside an audio one": encoded_webm("libvpx", audio=True),
        "VP8 cut short": webm_segment(40)[:300],
    }
    for what, data in refused.items():
        answer = put_segment(broker, session_id, host, 0, data, offset_ms=0)
        assert answer.status_code == 422 and answer.json()["error"] == "segment_invalid", (what, answer.text)
    for index in range(2):
        assert put_segment(broker, session_id, host, index, webm_segment(40 + 80 * index),
                           offset_ms=index * 1000).status_code == 204
    assert broker.sql("SELECT count(*) FROM recording_segments WHERE session_id = ?", session_id) == [(2,)]
    assert end_session(broker, admin, session_id).status_code in (200, 204)
    playback_and_export_work(broker, admin, session_id, 2)


# --- quotas and rates (brokers of their own) -------------------------------------------


def test_a_session_stores_at_most_its_quota_of_segments_and_bytes(start_broker, broker_db) -> None:
    """Before: a host stored 20 segments of 32 MB in 7.5 s, at indexes up to 10^7."""
    broker = start_broker(DESKHAND_SESSION_MAX_SEGMENTS="3", DESKHAND_SEGMENT_MAX_BYTES=str(64 * 1024), **broker_db.env())
    admin = {"Authorization": f"Bearer {broker.login()}"}
    session_id, host = paired_session(broker, admin)
    for index in range(3):
        assert put_segment(broker, session_id, host, index, webm_segment(index), offset_ms=index * 1000).status_code == 204
    over = put_segment(broker, session_id, host, 3, webm_segment(3), offset_ms=3000)
    assert over.status_code == 413 and over.json()["error"] == "quota_exceeded", over.text
    big = put_segment(broker, session_id, host, 9_999_999, os.urandom(65 * 1024), offset_ms=9000)
    assert big.status_code == 413 and big.json()["error"] == "too_large", big.text
    assert broker.sql("SELECT count(*), sum(size) FROM recording_segments WHERE session_id = ?", session_id) == \
        broker.sql("SELECT recording_segments, recording_bytes FROM support_sessions WHERE id = ?", session_id)
    assert broker.sql("SELECT count(*) FROM recording_segments WHERE session_id = ?", session_id) == [(3,)]
    # The quota is the session's: another session of the same broker records as usual.
    other, other_host = paired_session(broker, admin)
    assert put_segment(broker, other, other_host, 0, webm_segment(1), offset_ms=0).status_code == 204


def test_a_session_stores_at_most_its_quota_of_events(start_broker, broker_db) -> None:
    broker = start_broker(DESKHAND_SESSION_MAX_EVENTS="600", DESKHAND_SESSION_MAX_EVENT_BYTES="400000", **broker_db.env())
    admin = {"Authorization": f"Bearer {broker.login()}"}
    session_id, host = paired_session(broker, admin)
    assert post_events(broker, session_id, host, [event(f"quota-a-{n:04d}") for n in range(500)]).status_code == 200
    over = post_events(broker, session_id, host, [event(f"quota-b-{n:04d}") for n in range(101)])
    assert over.status_code == 413 and over.json()["error"] == "quota_exceeded", over.text
    assert post_events(broker, session_id, host, [event(f"quota-c-{n:04d}") for n in range(100)]).status_code == 200
    assert broker.sql("SELECT peer_events FROM support_sessions WHERE id = ?", session_id) == [(600,)]
    other, other_host = paired_session(broker, admin)
    long_chats = [event(f"quota-d-{n:04d}", text="x" * 4000) for n in range(100)]  # 100 x ~4 kB: over 400 kB
    over_bytes = post_events(broker, other, other_host, long_chats)
    assert over_bytes.status_code == 413 and "bytes of reported events" in over_bytes.json()["message"]
    assert len(peer_rows(broker, other)) == 0


def test_a_flood_of_events_is_throttled_for_its_sender_only(broker, admin) -> None:
    """Before: 20 batches of 500 events grew the database by 45 MiB in 3.4 s. Default settings here."""
    session_id, host = paired_session(broker, admin)
    started = time.monotonic()
    answers = [post_events(broker, session_id, host, [event(f"flood-{b:02d}-{n:03d}") for n in range(500)])
               for b in range(20)]
    elapsed = time.monotonic() - started
    statuses = [a.status_code for a in answers]
    assert statuses[:2] == [200, 200] and 429 in statuses, statuses
    limited = answers[statuses.index(429)]
    assert limited.json()["error"] == "rate_limited" and int(limited.headers["Retry-After"]) >= 1
    stored = len(peer_rows(broker, session_id))
    assert stored == 500 * statuses.count(200) <= 1000 + 50 * elapsed + 500, (stored, elapsed)
    # The technician's events are its own: the host's flood does not hold them back.
    tech = post_events(broker, session_id, broker.login(), [event(f"tech-{n:03d}") for n in range(500)])
    assert tech.status_code == 200, tech.text
