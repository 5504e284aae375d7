"""Where a recording segment sits on its session's timeline, and which places the broker refuses.

A session's recording has one origin in time (``SupportSession.recording_origin_ms``,
by the host's clock); each segment says when it starts as an offset from the origin
it was timed against. The joined recording places segments in index order at their
offsets, so the broker keeps the two orders the same and never lets segments overlap:
a host that is buggy or hostile cannot stack one stretch of time on another.

Pure functions over numbers, so the rules are tested without a broker.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SegmentSpan:
    """One segment's number and the stretch of the session's timeline it covers (ms from the origin)."""

    index: int
    offset_ms: int
    duration_ms: int

    @property
    def end_ms(self) -> int:
        return self.offset_ms + self.duration_ms


def placed_offset_ms(offset_ms: int, declared_origin_ms: int | None, session_origin_ms: int | None) -> int:
    """Where a segment starts on the session's timeline.

    ``offset_ms`` counts from ``declared_origin_ms``, the origin the host timed it
    against; a host that lost its copy of the origin, and could not ask the broker,
    starts a new one. Both origins are by the same host's clock, so the segment keeps
    its moment in time: the offset is moved by the difference. Without a declared or
    a session origin the offset is taken as it is (hosts that never declared one).
    """
    if declared_origin_ms is None or session_origin_ms is None:
        return offset_ms
    return offset_ms + declared_origin_ms - session_origin_ms


def misplacement(segment: SegmentSpan, before: SegmentSpan | None, after: SegmentSpan | None) -> str | None:
    """Why ``segment`` cannot be stored between its stored neighbours by number, or None when it fits.

    ``before`` is the stored segment with the highest number below ``segment``'s,
    ``after`` the one with the lowest number above it. A segment must start no earlier
    than ``before`` ends and end no later than ``after`` starts; as every stored segment
    was checked this way, checking the two neighbours keeps the whole recording in
    order and free of overlaps.
    """
    if segment.offset_ms < 0:
        return f"segment {segment.index} would start {_seconds(-segment.offset_ms)} before the recording began"
    if before is not None and segment.offset_ms < before.end_ms:
        return (f"segment {segment.index} would start at {_seconds(segment.offset_ms)}, before segment "
                f"{before.index} ends at {_seconds(before.end_ms)}")
    if after is not None and segment.end_ms > after.offset_ms:
        return (f"segment {segment.index} would end at {_seconds(segment.end_ms)}, after segment "
                f"{after.index} starts at {_seconds(after.offset_ms)}")
    return None


def _seconds(ms: int) -> str:
    return f"{ms / 1000:.3f} s"
