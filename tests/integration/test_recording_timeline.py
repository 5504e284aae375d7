"""The broker keeps each recording on one timeline: one origin, segments in order, none on top of another."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.support.api import bearer, paired_session
from tests.support.segments import put_segment, webm_segment

ORIGIN = 1_780_000_000_000


def status(broker, session_id: str, host_token: str) -> dict:
    response = broker.http.get(f"/sessions/{session_id}/recording", headers=bearer(host_token))
    assert response.status_code == 200, response.text
    return response.json()


def stored(broker, session_id: str) -> list[tuple[int, int, int]]:
    return broker.sql('SELECT "index", offset_ms, duration_ms FROM recording_segments WHERE session_id = ? ORDER BY 1',
                      session_id)


def test_overlapping_and_disordered_segments_are_refused_with_the_fix(broker, admin) -> None:
    session_id, host = paired_session(broker, admin)
    data = webm_segment(90)
    assert status(broker, session_id, host) == {"segments": 0, "next_index": 0, "end_ms": 0, "origin_ms": None}
    assert put_segment(broker, session_id, host, 0, data, offset_ms=0, origin_ms=ORIGIN).status_code == 204
    assert put_segment(broker, session_id, host, 3, data, offset_ms=5_000, origin_ms=ORIGIN).status_code == 204

    on_top = put_segment(broker, session_id, host, 1, data, offset_ms=500, origin_ms=ORIGIN)
    assert on_top.status_code == 409, on_top.text
    body = on_top.json()
    assert body["error"] == "segment_misplaced"
    assert "segment 1 would start at 0.500 s, before segment 0 ends at 1.000 s" in body["message"]
    assert "deskhand-host resume" in body["message"]
    behind_a_later_one = put_segment(broker, session_id, host, 2, data, offset_ms=4_500, origin_ms=ORIGIN)
    assert behind_a_later_one.status_code == 409
    assert "segment 2 would end at 5.500 s, after segment 3 starts at 5.000 s" in behind_a_later_one.json()["message"]
    before_the_start = put_segment(broker, session_id, host, 4, data, offset_ms=0, origin_ms=ORIGIN - 60_000)
    assert before_the_start.status_code == 409
    assert "before the recording began" in before_the_start.json()["message"]

    # What fits goes in, gaps included; the same segment again is no change.
    assert put_segment(broker, session_id, host, 1, data, offset_ms=1_000, origin_ms=ORIGIN).status_code == 204
    assert put_segment(broker, session_id, host, 1, data, offset_ms=1_000, origin_ms=ORIGIN).status_code == 204
    # Timed from another origin (a host that lost the recording's): placed by its moment in time.
    assert put_segment(broker, session_id, host, 4, data, offset_ms=1_000, origin_ms=ORIGIN + 9_000).status_code == 204
    assert stored(broker, session_id) == [(0, 0, 1000), (1, 1000, 1000), (3, 5000, 1000), (4, 10_000, 1000)]
    assert status(broker, session_id, host) == {"segments": 4, "next_index": 5, "end_ms": 11_000, "origin_ms": ORIGIN}
    assert [data["origin_ms"] for data in broker.audit_data(session_id, "recording.segment")] == [ORIGIN] * 4


def test_bad_origins_are_refused_and_hosts_that_declare_none_still_record(broker, admin) -> None:
    session_id, host = paired_session(broker, admin)
    data = webm_segment(30)
    for bad in ("soon", "-1", str(2**47)):
        response = broker.http.put(
            f"/sessions/{session_id}/recording/0", content=data,
            headers={**bearer(host), "X-Segment-SHA256": "0" * 64, "X-Segment-Offset-Ms": "0",
                     "X-Segment-Duration-Ms": "1000", "X-Recording-Origin-Ms": bad})
        assert response.status_code == 422 and response.json()["error"] == "invalid_request", response.text
        assert "x-recording-origin-ms" in response.json()["message"]
    assert put_segment(broker, session_id, host, 0, data, offset_ms=0).status_code == 204
    assert put_segment(broker, session_id, host, 1, data, offset_ms=300).status_code == 409
    assert status(broker, session_id, host) == {"segments": 1, "next_index": 1, "end_ms": 1000, "origin_ms": None}


def test_uploads_at_the_same_moment_are_checked_one_after_the_other(broker, admin) -> None:
    """A host sending many overlapping segments at once gets one stored, the others refused (never a 500)."""
    session_id, host = paired_session(broker, admin)
    segments = [webm_segment(20 * i) for i in range(6)]
    with ThreadPoolExecutor(len(segments)) as pool:
        answers = list(pool.map(
            lambda i: put_segment(broker, session_id, host, i, segments[i], offset_ms=100 * i, origin_ms=ORIGIN).status_code,
            range(len(segments)),
        ))
    assert sorted(answers) == [204] + [409] * (len(segments) - 1), answers
    assert len(stored(broker, session_id)) == 1
