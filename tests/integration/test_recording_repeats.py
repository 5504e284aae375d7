"""A still screen's segment uploaded as a repeat: the broker rebuilds it from the segment it holds.

A real broker; segments made by the host's own recorder code
(:class:`~host_client.recorder.SegmentWriter`). A repeat must be stored exactly as
the whole segment would be (same bytes, same trail event, playback, bundle and
verification unchanged), and every repeat the broker cannot or must not make is
refused with a JSON error, storing nothing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from protocol.segment_repeat import repeat_segment
from tests.support.api import bearer, end_session, exported_bundle_verifies, paired_session, play_recording
from tests.support.broker import BrokerProcess
from tests.support.segments import put_repeat, put_segment, repeat_body, still_segments, webm_segment

pytestmark = pytest.mark.both_stacks

ORIGIN = 1_780_000_000_000


def stored_rows(broker: BrokerProcess, session_id: str) -> list[tuple[object, ...]]:
    """(index, offset, duration, size, SHA-256) of each stored segment."""
    return broker.sql('SELECT "index", offset_ms, duration_ms, size, sha256 FROM recording_segments '
                      'WHERE session_id = ? ORDER BY 1', session_id)


def segment_events(broker: BrokerProcess, session_id: str) -> list[tuple[object, ...]]:
    """(index, SHA-256, size, offset, duration) of each ``recording.segment`` event."""
    return [(data["index"], data["sha256"], data["size"], data["offset_ms"], data["duration_ms"])
            for data in broker.audit_data(session_id, "recording.segment")]


SEGMENTS_LOOKED_AT = 16
"""Indexes whose blobs :func:`segment_files` reads: past any a test here stores."""


def segment_files(broker: BrokerProcess, session_id: str) -> dict[int, str]:
    """The SHA-256 of each segment blob the broker keeps (encrypted, in its data directory or bucket), by index."""
    blobs = broker.blobs()
    return {index: hashlib.sha256(blob).hexdigest() for index in range(SEGMENTS_LOOKED_AT)
            if (blob := blobs.get(f"recordings/{session_id}/{index}.seg")) is not None}


def refused(response: httpx.Response, status: int, code: str) -> str:
    """The refusal's message, once its status and JSON error code are as expected."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code, body
    return str(body["message"])


def test_a_repeat_is_stored_as_the_whole_segment_would_be(broker: BrokerProcess, admin: dict[str, str], tmp_path: Path) -> None:
    source, copy = still_segments(70)
    repeated, host = paired_session(broker, admin)
    whole, whole_host = paired_session(broker, admin)
    for session_id, token in ((repeated, host), (whole, whole_host)):
        assert put_segment(broker, session_id, token, 0, source, offset_ms=0, origin_ms=ORIGIN).status_code == 204
    body = {**repeat_body(0, copy, offset_ms=1000), "origin_ms": ORIGIN}
    assert put_repeat(broker, repeated, host, 1, body).status_code == 204, "the repeat is stored"
    assert put_repeat(broker, repeated, host, 1, body).status_code == 204, "a retry is no change"
    assert put_segment(broker, whole, whole_host, 1, copy, offset_ms=1000, origin_ms=ORIGIN).status_code == 204

    assert stored_rows(broker, repeated) == stored_rows(broker, whole)
    assert [row[1] for row in stored_rows(broker, repeated)][1] == 1000
    assert segment_events(broker, repeated) == segment_events(broker, whole)
    played_repeated, played_whole = play_recording(broker, admin, repeated), play_recording(broker, admin, whole)
    assert played_repeated.status_code == played_whole.status_code == 200
    assert played_repeated.content == played_whole.content

    assert end_session(broker, admin, repeated, "done").status_code == 200
    exported_bundle_verifies(broker, repeated, tmp_path)
    verdict = broker.http.post("/audit/verify", headers=admin)
    assert verdict.status_code == 200 and verdict.json()["ok"], verdict.text


def test_repeats_the_broker_cannot_make_are_refused_and_store_nothing(broker: BrokerProcess, admin: dict[str, str]) -> None:
    source, copy = still_segments(150)
    session_id, host = paired_session(broker, admin)
    assert put_segment(broker, session_id, host, 0, source, offset_ms=0).status_code == 204
    before = (stored_rows(broker, session_id), segment_events(broker, session_id), segment_files(broker, session_id))

    missing = put_repeat(broker, session_id, host, 6, repeat_body(5, copy, offset_ms=6000))
    assert "segment 5 of this session is not stored" in refused(missing, 409, "repeat_source_missing")
    later = put_repeat(broker, session_id, host, 0, repeat_body(0, copy, offset_ms=1000))
    assert "only repeat an earlier segment" in refused(later, 422, "repeat_invalid")
    wrong_hash = {**repeat_body(0, copy, offset_ms=1000), "sha256": "ab" * 32}
    assert "does not match its SHA-256" in refused(put_repeat(broker, session_id, host, 1, wrong_hash), 422, "repeat_mismatch")
    other_times = repeat_body(0, copy, offset_ms=1000, frames_ms=(2, 200))  # other bytes than ``copy``'s hash says
    refused(put_repeat(broker, session_id, host, 1, other_times), 422, "repeat_mismatch")
    too_many = repeat_body(0, copy, offset_ms=1000, frames_ms=(0, 300, 600))
    assert "only 2 frames" in refused(put_repeat(broker, session_id, host, 1, too_many), 422, "repeat_impossible")
    past_the_end = repeat_body(0, copy, offset_ms=1000, duration_ms=0, frames_ms=(0, 1500))
    rebuilt_far = {**past_the_end, "sha256": still_hash(source, (0, 1500))}
    assert "past the declared" in refused(put_repeat(broker, session_id, host, 1, rebuilt_far), 422, "segment_invalid")
    for bad in ({**repeat_body(0, copy, offset_ms=1000), "frames_ms": [761, 2]},
                {**repeat_body(0, copy, offset_ms=1000), "frames_ms": []},
                {**repeat_body(0, copy, offset_ms=1000), "fps": 0},
                {**repeat_body(0, copy, offset_ms=1000), "fps": 31},
                {**repeat_body(0, copy, offset_ms=1000), "fps": 1e-9},
                {**repeat_body(0, copy, offset_ms=1000), "source": -1},
                {**repeat_body(0, copy, offset_ms=1000), "data": "AAAA"},
                {**repeat_body(0, copy, offset_ms=1000), "frames_ms": list(range(1001))}):
        response = put_repeat(broker, session_id, host, 1, bad)
        assert response.status_code == 422 and "error" in response.json(), response.text
    oversized = broker.http.put(f"/sessions/{session_id}/recording/1/repeat", headers={**bearer(host), "Content-Type": "application/json"},
                                content=b'{"frames_ms": [' + b"0, " * 1_000_000 + b"0]}")
    assert oversized.status_code == 413 and "error" in oversized.json(), oversized.text

    assert (stored_rows(broker, session_id), segment_events(broker, session_id), segment_files(broker, session_id)) == before
    # The right repeat is taken: nothing was left half stored.
    assert put_repeat(broker, session_id, host, 1, repeat_body(0, copy, offset_ms=1000)).status_code == 204


def test_a_repeat_does_not_replace_a_stored_segment(broker: BrokerProcess, admin: dict[str, str]) -> None:
    source, copy = still_segments(90)
    session_id, host = paired_session(broker, admin)
    assert put_segment(broker, session_id, host, 0, source, offset_ms=0).status_code == 204
    assert put_segment(broker, session_id, host, 1, webm_segment(20), offset_ms=1000).status_code == 204
    before = stored_rows(broker, session_id)
    taken = put_repeat(broker, session_id, host, 1, repeat_body(0, copy, offset_ms=1000))
    assert "already stored with other content" in refused(taken, 409, "segment_exists")
    overlapping = put_repeat(broker, session_id, host, 2, repeat_body(0, copy, offset_ms=1500))
    assert "segment 2 would start at 1.500 s" in refused(overlapping, 409, "segment_misplaced")
    assert stored_rows(broker, session_id) == before


def test_a_host_token_repeats_only_its_own_sessions_segments(broker: BrokerProcess, admin: dict[str, str]) -> None:
    """docs/security.md: a repeat names a segment of the session in its path, which the token must be the host of."""
    source, copy = still_segments(200)
    victim, victim_host = paired_session(broker, admin)
    attacker, attacker_host = paired_session(broker, admin)
    for index in range(4):
        assert put_segment(broker, victim, victim_host, index, source, offset_ms=index * 1000).status_code == 204
    before = stored_rows(broker, victim)

    # The attacker's own session holds no segment 3: the victim's segment 3 cannot be named from it.
    from_own_session = put_repeat(broker, attacker, attacker_host, 4, repeat_body(3, copy, offset_ms=4000))
    refused(from_own_session, 409, "repeat_source_missing")
    # Nor can the attacker's token store into the victim's session, or the admin's (no host) credentials.
    into_victim = put_repeat(broker, victim, attacker_host, 4, repeat_body(3, copy, offset_ms=4000))
    assert into_victim.status_code in (401, 403) and "error" in into_victim.json(), into_victim.text
    without_token = broker.http.put(f"/sessions/{victim}/recording/4/repeat", json=repeat_body(3, copy, offset_ms=4000))
    assert without_token.status_code == 401 and "error" in without_token.json()
    as_technician = broker.http.put(f"/sessions/{victim}/recording/4/repeat", json=repeat_body(3, copy, offset_ms=4000),
                                    headers=admin)
    assert as_technician.status_code in (401, 403) and "error" in as_technician.json(), as_technician.text
    assert stored_rows(broker, victim) == before
    assert stored_rows(broker, attacker) == []


def still_hash(source: bytes, frames_ms: tuple[int, ...]) -> str:
    """The SHA-256 of the segment repeating ``source`` at ``frames_ms`` (as the host would declare it)."""
    return hashlib.sha256(repeat_segment(source, 2.0, frames_ms)).hexdigest()
