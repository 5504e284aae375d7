"""A changing screen's segment uploaded by its own frames: the broker puts the stored source's keyframe,
hidden, in front of them (protocol.segment_continuation) and stores the result as the whole segment.

A real broker; segments made by the host's own recorder code
(:class:`~host_client.recorder.SegmentWriter`). A continuation must be stored exactly as
the whole segment would be (same bytes, same trail event, playback and verification
unchanged), and every continuation the broker cannot or must not make is refused with a
JSON error, storing nothing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from protocol.segment_continuation import continued_segment
from tests.integration.test_recording_repeats import refused, segment_events, segment_files, stored_rows
from tests.support.api import bearer, end_session, exported_bundle_verifies, paired_session, play_recording
from tests.support.broker import BrokerProcess
from tests.support.segments import continued_segments, put_continuation, put_segment, typing_pictures, webm_segment

pytestmark = pytest.mark.both_stacks

ORIGIN = 1_780_000_000_000


def test_a_continuation_is_stored_as_the_whole_segment_would_be(
    broker: BrokerProcess, admin: dict[str, str], tmp_path: Path,
) -> None:
    source, writer = continued_segments(typing_pictures(4))
    assert writer.tail is not None
    whole_bytes = continued_segment(source, writer.tail)
    sha256 = hashlib.sha256(whole_bytes).hexdigest()
    continued, host = paired_session(broker, admin)
    whole, whole_host = paired_session(broker, admin)
    for session_id, token in ((continued, host), (whole, whole_host)):
        assert put_segment(broker, session_id, token, 0, source, offset_ms=0, origin_ms=ORIGIN).status_code == 204
    origin = {"X-Recording-Origin-Ms": str(ORIGIN)}
    for attempt in ("stored", "a retry is no change"):
        response = put_continuation(broker, continued, host, 1, writer.tail, source=0, sha256=sha256, offset_ms=1000,
                                    extra=origin)
        assert response.status_code == 204, (attempt, response.text)
    assert put_segment(broker, whole, whole_host, 1, whole_bytes, offset_ms=1000, origin_ms=ORIGIN).status_code == 204

    assert stored_rows(broker, continued) == stored_rows(broker, whole)
    assert segment_events(broker, continued) == segment_events(broker, whole)
    played, played_whole = play_recording(broker, admin, continued), play_recording(broker, admin, whole)
    assert played.status_code == played_whole.status_code == 200 and played.content == played_whole.content

    assert end_session(broker, admin, continued, "done").status_code == 200
    exported_bundle_verifies(broker, continued, tmp_path)
    verdict = broker.http.post("/audit/verify", headers=admin)
    assert verdict.status_code == 200 and verdict.json()["ok"], verdict.text


def test_continuations_the_broker_cannot_make_are_refused_and_store_nothing(
    broker: BrokerProcess, admin: dict[str, str],
) -> None:
    source, writer = continued_segments(typing_pictures(4))
    assert writer.tail is not None
    tail = writer.tail
    sha256 = hashlib.sha256(continued_segment(source, tail)).hexdigest()
    session_id, host = paired_session(broker, admin)
    assert put_segment(broker, session_id, host, 0, source, offset_ms=0).status_code == 204
    assert put_segment(broker, session_id, host, 1, webm_segment(30), offset_ms=1000).status_code == 204
    before = (stored_rows(broker, session_id), segment_events(broker, session_id), segment_files(broker, session_id))

    def put(index: int, body: bytes = tail, *, source: int = 0, digest: str = sha256) -> httpx.Response:
        return put_continuation(broker, session_id, host, index, body, source=source, sha256=digest, offset_ms=index * 1000)

    assert "segment 5 of this session is not stored" in refused(put(6, source=5), 409, "continuation_source_missing")
    assert "only continue from an earlier segment" in refused(put(2, source=2), 422, "continuation_invalid")
    assert "does not match its SHA-256" in refused(put(2, digest="ab" * 32), 422, "continuation_mismatch")
    # Another segment's keyframe in front of these frames makes other bytes than the host committed to.
    refused(put(2, source=1), 422, "continuation_mismatch")
    assert "tail cannot be read" in refused(put(2, b"\x1a\x45\xdf\xa3" + b"x" * 500), 422, "continuation_impossible")
    assert "already stored with other content" in refused(put(1), 409, "segment_exists")
    for bad in ({"X-Segment-Source": "-1"}, {"X-Segment-Source": "zero"}, {"X-Segment-SHA256": "nothex"},
                {"X-Segment-Offset-Ms": "-5"}, {"X-Segment-Duration-Ms": "9999999999"}):
        headers = {**bearer(host), "X-Segment-Source": "0", "X-Segment-SHA256": sha256, "X-Segment-Offset-Ms": "2000",
                   "X-Segment-Duration-Ms": "1000", **bad}
        response = broker.http.put(f"/sessions/{session_id}/recording/2/continue", content=tail, headers=headers)
        assert response.status_code == 422 and "error" in response.json(), (bad, response.text)
    oversized = broker.http.put(
        f"/sessions/{session_id}/recording/2/continue", content=b"\0" * (8 * 1024 * 1024 + 1),
        headers={**bearer(host), "X-Segment-Source": "0", "X-Segment-SHA256": sha256, "X-Segment-Offset-Ms": "2000",
                 "X-Segment-Duration-Ms": "1000"})
    assert oversized.status_code == 413 and "error" in oversized.json(), oversized.text

    assert (stored_rows(broker, session_id), segment_events(broker, session_id), segment_files(broker, session_id)) == before
    assert list((broker.data_dir / "recordings" / ".incoming").glob("*")) == [], "no body is left behind"
    assert put(2).status_code == 204, "the right continuation is taken: nothing was left half stored"


def test_a_host_token_continues_only_from_its_own_sessions_segments(broker: BrokerProcess, admin: dict[str, str]) -> None:
    """docs/security.md: a continuation names a segment of the session in its path, which the token must be the host of."""
    source, writer = continued_segments(typing_pictures(4))
    assert writer.tail is not None
    sha256 = hashlib.sha256(continued_segment(source, writer.tail)).hexdigest()
    victim, victim_host = paired_session(broker, admin)
    attacker, attacker_host = paired_session(broker, admin)
    assert put_segment(broker, victim, victim_host, 0, source, offset_ms=0).status_code == 204
    before = stored_rows(broker, victim)

    from_own_session = put_continuation(broker, attacker, attacker_host, 1, writer.tail, source=0, sha256=sha256, offset_ms=1000)
    refused(from_own_session, 409, "continuation_source_missing")
    into_victim = put_continuation(broker, victim, attacker_host, 1, writer.tail, source=0, sha256=sha256, offset_ms=1000)
    assert into_victim.status_code in (401, 403) and "error" in into_victim.json(), into_victim.text
    as_technician = broker.http.put(
        f"/sessions/{victim}/recording/1/continue", content=writer.tail,
        headers={**admin, "X-Segment-Source": "0", "X-Segment-SHA256": sha256, "X-Segment-Offset-Ms": "1000",
                 "X-Segment-Duration-Ms": "1000"})
    assert as_technician.status_code in (401, 403) and "error" in as_technician.json(), as_technician.text
    assert stored_rows(broker, victim) == before
    assert stored_rows(broker, attacker) == []
