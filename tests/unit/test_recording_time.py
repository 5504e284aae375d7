"""Recording time: where a restarted host continues (host) and where the broker places or refuses a segment."""

from __future__ import annotations

import pytest

from broker.audit.recording_timeline import SegmentSpan, misplacement, placed_offset_ms
from host_client.recording_time import ResumePoint, SpooledSegment, resume_point
from protocol.recording import RecordingStatus

ORIGIN = 1_780_000_000_000
"""When the host started recording, in Unix ms."""


def held(segments: int, end_ms: int, origin_ms: int | None = ORIGIN) -> RecordingStatus:
    return RecordingStatus(segments=segments, next_index=segments, end_ms=end_ms, origin_ms=origin_ms)


def test_a_first_start_takes_now_as_the_origin() -> None:
    now = ORIGIN + 5
    assert resume_point(now, saved_origin_ms=None, held=held(0, 0, None), spooled=[]) == ResumePoint(now, 0, 0)
    assert resume_point(now, saved_origin_ms=None, held=None, spooled=[]) == ResumePoint(now, 0, 0)


def test_a_host_that_was_down_leaves_the_downtime_as_a_gap() -> None:
    # Four segments stored, ending 4 s in; the host comes back 9.5 s after that.
    point = resume_point(ORIGIN + 13_500, saved_origin_ms=ORIGIN, held=held(4, 4_000), spooled=[])
    assert point == ResumePoint(ORIGIN, 4, 13_500)


def test_spooled_segments_come_after_the_stored_ones_and_before_the_new_ones() -> None:
    # Stored 0-3 (to 4 s); 4-8 still in the spool (to 9 s) after a broker outage; killed, back at 15 s.
    spooled = [SpooledSegment(i, i * 1000, 1000, ORIGIN) for i in range(4, 9)]
    point = resume_point(ORIGIN + 15_000, saved_origin_ms=ORIGIN, held=held(4, 4_000), spooled=spooled)
    assert point == ResumePoint(ORIGIN, 9, 15_000)


def test_without_the_broker_the_saved_origin_and_the_spool_suffice() -> None:
    spooled = [SpooledSegment(7, 7_000, 1_000, ORIGIN)]
    assert resume_point(ORIGIN + 20_000, saved_origin_ms=ORIGIN, held=None, spooled=spooled) == ResumePoint(ORIGIN, 8, 20_000)
    # No saved origin either (an older saved session): the spooled segments carry it.
    assert resume_point(ORIGIN + 20_000, saved_origin_ms=None, held=None, spooled=spooled) == ResumePoint(ORIGIN, 8, 20_000)


def test_a_host_that_lost_its_origin_takes_the_brokers() -> None:
    point = resume_point(ORIGIN + 30_000, saved_origin_ms=None, held=held(10, 10_000), spooled=[])
    assert point == ResumePoint(ORIGIN, 10, 30_000)
    # The broker's origin wins over a different saved one: the stored offsets count from it.
    point = resume_point(ORIGIN + 30_000, saved_origin_ms=ORIGIN + 2_000, held=held(10, 10_000), spooled=[])
    assert point == ResumePoint(ORIGIN, 10, 30_000)


def test_a_spooled_segment_timed_from_another_origin_is_placed_by_its_moment() -> None:
    # Spooled by a host that had started a new origin 60 s after the recording's.
    spooled = [SpooledSegment(12, 5_000, 1_000, ORIGIN + 60_000)]
    assert resume_point(ORIGIN + 70_000, saved_origin_ms=None, held=held(10, 10_000), spooled=spooled) == \
        ResumePoint(ORIGIN, 13, 70_000)
    # Its end (66 s from the recording's origin) is where the recording continues at the earliest.
    assert resume_point(ORIGIN + 62_000, saved_origin_ms=None, held=held(10, 10_000), spooled=spooled) == \
        ResumePoint(ORIGIN, 13, 66_000, clock_behind_ms=4_000)


def test_a_clock_that_went_back_continues_at_the_end_without_overlapping() -> None:
    point = resume_point(ORIGIN + 3_000, saved_origin_ms=ORIGIN, held=held(8, 8_000), spooled=[])
    assert point == ResumePoint(ORIGIN, 8, 8_000, clock_behind_ms=5_000)
    before_the_origin = resume_point(ORIGIN - 50_000, saved_origin_ms=ORIGIN, held=held(2, 2_000), spooled=[])
    assert before_the_origin.offset_ms == 2_000 and before_the_origin.clock_behind_ms == 52_000


def test_a_recording_without_any_origin_continues_at_its_end() -> None:
    # Recorded before hosts kept an origin: the downtime cannot be measured.
    spooled = [SpooledSegment(5, 5_000, 1_000)]
    point = resume_point(ORIGIN, saved_origin_ms=None, held=held(5, 5_000, None), spooled=spooled)
    assert point == ResumePoint(ORIGIN - 6_000, 6, 6_000)


def test_the_broker_places_a_segment_by_the_origin_it_was_timed_from() -> None:
    assert placed_offset_ms(1_000, ORIGIN, ORIGIN) == 1_000
    assert placed_offset_ms(1_000, ORIGIN + 60_000, ORIGIN) == 61_000
    assert placed_offset_ms(1_000, None, ORIGIN) == 1_000
    assert placed_offset_ms(1_000, ORIGIN, None) == 1_000


@pytest.mark.parametrize(
    ("segment", "words"),
    [
        (SegmentSpan(5, 4_500, 1_000), "segment 5 would start at 4.500 s, before segment 4 ends at 5.000 s"),
        (SegmentSpan(5, 9_500, 1_000), "segment 5 would end at 10.500 s, after segment 9 starts at 10.000 s"),
        (SegmentSpan(5, -1_000, 1_000), "segment 5 would start 1.000 s before the recording began"),
    ],
)
def test_the_broker_refuses_a_segment_that_overlaps_or_breaks_the_order(segment: SegmentSpan, words: str) -> None:
    assert misplacement(segment, SegmentSpan(4, 4_000, 1_000), SegmentSpan(9, 10_000, 1_000)) == words


def test_a_segment_that_fits_is_placed_also_at_the_edges_and_without_neighbours() -> None:
    before, after = SegmentSpan(4, 4_000, 1_000), SegmentSpan(9, 10_000, 1_000)
    assert misplacement(SegmentSpan(5, 5_000, 5_000), before, after) is None
    assert misplacement(SegmentSpan(5, 7_000, 0), before, after) is None
    assert misplacement(SegmentSpan(0, 0, 1_000), None, None) is None
