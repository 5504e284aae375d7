"""A started playback serves the recording in HTTP byte ranges, so a browser's <video> can seek in it.

A playback starts with a POST, which is audited (``recording.played``, with the hash and
size of what it may serve); its byte-range GETs present its id and are not audited again.
Without a playback of one's own for that session nothing is served, and nothing recorded.
"""

from __future__ import annotations

import hashlib
import io
import json

import av
import httpx

from tests.support.accounts import PASSWORD, make_user
from tests.support.api import audit_kinds, bearer, end_session, export_bundle, fetch_playback, paired_session, start_playback
from tests.support.broker import BrokerProcess
from tests.support.segments import put_segment, webm_segment


def recorded_session(broker: BrokerProcess, admin: dict[str, str], segments: int = 3) -> str:
    """An ended session with ``segments`` one-second recording segments; its id."""
    session_id, host_token = paired_session(broker, admin)
    for index in range(segments):
        stored = put_segment(broker, session_id, host_token, index, webm_segment(60 * index), offset_ms=index * 1000)
        assert stored.status_code in (200, 201, 204), stored.text
    assert end_session(broker, admin, session_id).status_code in (200, 204)
    return session_id


def test_a_playback_is_audited_once_when_it_starts_and_serves_byte_ranges(broker, admin) -> None:
    session_id = recorded_session(broker, admin)
    started = start_playback(broker, admin, session_id)
    assert started.status_code == 201, started.text
    playback = started.json()
    assert playback["segments"] == 3 and playback["url"].endswith(f"?playback={playback['playback_id']}")

    whole = fetch_playback(broker, admin, session_id, playback["playback_id"])
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    body = whole.content
    assert len(body) == playback["bytes"]
    with av.open(io.BytesIO(body)) as container:
        assert abs(float(container.duration / av.time_base) - 3.0) < 0.6
    # What the event says is what the playback serves.
    (data,), = broker.sql("SELECT data FROM audit_events WHERE session_id = ? AND kind = 'recording.played'", session_id)
    assert json.loads(str(data)) == {"recording_sha256": hashlib.sha256(body).hexdigest(), "recording_bytes": len(body),
                                     "segments": 3}

    def ask(spelling: str) -> httpx.Response:
        return fetch_playback(broker, admin, session_id, playback["playback_id"], spelling)

    for spelling in ("bytes=0-", "bytes=00-", "bytes=-999999999"):
        answer = ask(spelling)
        assert answer.status_code == 206 and answer.content == body, spelling
        assert answer.headers["content-range"] == f"bytes 0-{len(body) - 1}/{len(body)}"
    middle = ask("bytes=100-199")
    assert middle.status_code == 206 and middle.content == body[100:200]
    assert middle.headers["content-range"] == f"bytes 100-199/{len(body)}"
    tail = ask("bytes=-50")
    assert tail.status_code == 206 and tail.content == body[-50:]
    beyond = ask(f"bytes={len(body)}-")
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(body)}"

    # Seeking within a playback, from the start or elsewhere, is that one playback; the next is another.
    assert audit_kinds(broker, session_id).count("recording.played") == 1
    assert start_playback(broker, admin, session_id).status_code == 201
    assert audit_kinds(broker, session_id).count("recording.played") == 2


def test_without_a_playback_of_ones_own_for_that_session_nothing_is_served_nor_audited(broker, admin) -> None:
    session_id, other_session = recorded_session(broker, admin, 1), recorded_session(broker, admin, 1)
    make_user(broker, "ursula", role="auditor")
    auditor = bearer(broker.login("ursula", PASSWORD))
    mine = start_playback(broker, admin, session_id).json()["playback_id"]
    elsewhere = start_playback(broker, admin, other_session).json()["playback_id"]
    path = f"/audit/sessions/{session_id}/recording"

    refusals = [
        broker.http.get(path, headers=admin),  # no playback at all
        broker.http.get(path, headers={**admin, "Range": "bytes=0-"}),
        fetch_playback(broker, admin, session_id, "made-up-id"),
        fetch_playback(broker, admin, session_id, elsewhere),  # another session's
        fetch_playback(broker, auditor, session_id, mine),  # another auditor's
    ]
    for refused in refusals:
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"] == "application/json"
        assert refused.json()["error"] == "playback_required" and "/playbacks" in refused.json()["message"]
    assert audit_kinds(broker, session_id).count("recording.played") == 1  # the one admin started
    # A session that does not exist is 404, as everywhere; with a playback of its own, the auditor gets the bytes.
    unknown = broker.http.get("/audit/sessions/00000000-0000-4000-8000-000000000000/recording", headers=admin)
    assert unknown.status_code == 404
    assert fetch_playback(broker, auditor, session_id, start_playback(broker, auditor, session_id).json()["playback_id"]).status_code == 200


def test_an_export_is_a_post_audited_once_and_a_get_makes_none(broker, admin) -> None:
    session_id = recorded_session(broker, admin, 1)
    assert broker.http.get(f"/audit/sessions/{session_id}/export", headers=admin).status_code in (404, 405)
    assert "audit.exported" not in audit_kinds(broker, session_id)
    exported = export_bundle(broker, admin, session_id)
    assert exported.status_code == 200 and exported.headers["content-type"] == "application/zip"
    assert audit_kinds(broker, session_id).count("audit.exported") == 1


def test_a_session_without_a_recording_has_nothing_to_play(broker, admin) -> None:
    session_id = recorded_session(broker, admin, 0)
    refused = start_playback(broker, admin, session_id)
    assert refused.status_code == 404 and refused.json()["error"] == "no_recording", refused.text
    assert "recording.played" not in audit_kinds(broker, session_id)
