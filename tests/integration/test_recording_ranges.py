"""The recording answers HTTP byte ranges, so a browser's <video> can seek in it; one playback is audited once."""

from __future__ import annotations

import io
import json

import av

from tests.support.accounts import PASSWORD, make_user
from tests.support.api import audit_kinds, bearer, end_session, paired_session
from tests.support.segments import put_segment, webm_segment


def test_the_recording_serves_byte_ranges_and_audits_each_playback_once(broker, admin) -> None:
    session_id, host_token = paired_session(broker, admin)
    for index in range(3):
        stored = put_segment(broker, session_id, host_token, index, webm_segment(60 * index), offset_ms=index * 1000)
        assert stored.status_code in (200, 201, 204), stored.text
    assert end_session(broker, admin, session_id).status_code in (200, 204)
    path = f"/audit/sessions/{session_id}/recording"

    whole = broker.http.get(path, headers=admin)
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    body = whole.content
    with av.open(io.BytesIO(body)) as container:
        assert abs(float(container.duration / av.time_base) - 3.0) < 0.6

    first = broker.http.get(path, headers={**admin, "Range": "bytes=0-"})
    assert first.status_code == 206 and first.content == body
    assert first.headers["content-range"] == f"bytes 0-{len(body) - 1}/{len(body)}"
    middle = broker.http.get(path, headers={**admin, "Range": "bytes=100-199"})
    assert middle.status_code == 206 and middle.content == body[100:200]
    assert middle.headers["content-range"] == f"bytes 100-199/{len(body)}"
    tail = broker.http.get(path, headers={**admin, "Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.content == body[-50:]
    beyond = broker.http.get(path, headers={**admin, "Range": f"bytes={len(body)}-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(body)}"

    # The whole answer, the range from 0: two playbacks; seeking within one is not another.
    assert audit_kinds(broker, session_id).count("recording.played") == 2


def test_every_spelling_of_a_range_from_the_start_is_audited_as_a_playback(broker, admin) -> None:
    """``bytes=-<more than the size>``, ``bytes=00-`` and ``bytes=0000-`` return the whole recording: each is a playback."""
    session_id, host_token = paired_session(broker, admin)
    assert put_segment(broker, session_id, host_token, 0, webm_segment(90), offset_ms=0).status_code == 204
    path = f"/audit/sessions/{session_id}/recording"
    whole = broker.http.get(path, headers=admin).content
    for n, spelling in enumerate(("bytes=-999999999", "bytes=00-", "bytes=0000-"), start=2):
        answer = broker.http.get(path, headers={**admin, "Range": spelling})
        assert answer.status_code == 206 and answer.content == whole, spelling
        assert audit_kinds(broker, session_id).count("recording.played") == n, spelling


def test_a_range_that_skips_the_first_byte_is_audited_unless_the_viewer_is_already_playing(broker, admin) -> None:
    session_id, host_token = paired_session(broker, admin)
    assert put_segment(broker, session_id, host_token, 0, webm_segment(90), offset_ms=0).status_code == 204
    make_user(broker, "ursula", role="auditor")
    auditor = bearer(broker.login("ursula", PASSWORD))
    path = f"/audit/sessions/{session_id}/recording"
    size = len(broker.http.get(path, headers=admin).content)
    assert audit_kinds(broker, session_id).count("recording.played") == 1

    # Almost all of it, without byte 0, by someone who is not playing it: audited, with what was served.
    skipped = broker.http.get(path, headers={**auditor, "Range": "bytes=1-"})
    assert skipped.status_code == 206 and len(skipped.content) == size - 1
    played = broker.sql("SELECT actor, data FROM audit_events WHERE session_id = ? AND kind = 'recording.played'"
                        " ORDER BY id", session_id)
    assert [actor for actor, _ in played] == ["user:admin", "user:ursula"]
    assert json.loads(str(played[-1][1]))["bytes"] == f"1-{size - 1}"
    # Seeking on within that playback is not another one; a range that returns nothing is not audited.
    assert broker.http.get(path, headers={**auditor, "Range": "bytes=10-20"}).status_code == 206
    assert broker.http.get(path, headers={**auditor, "Range": f"bytes={size}-"}).status_code == 416
    assert audit_kinds(broker, session_id).count("recording.played") == 2
