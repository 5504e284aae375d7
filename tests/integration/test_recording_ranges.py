"""The recording answers HTTP byte ranges, so a browser's <video> can seek in it; one playback is audited once."""

from __future__ import annotations

import io

import av

from tests.support.api import audit_kinds, end_session, paired_session
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
