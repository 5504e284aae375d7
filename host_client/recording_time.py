"""Where a session's recording continues when a host starts recording it again.

A recording has one origin in time: the moment the host first started recording
the session, in Unix milliseconds by the host's clock. Every segment's offset
counts from it, so the joined recording's timeline is the session's, and the
time a host was down (killed, crashed, restarted) stays a gap. The host keeps
the origin with its saved session; the broker learns it with every segment and
tells it back (``GET .../recording``), so a host that lost its copy still places
new segments where they belong.

Clocks: while a host runs, offsets advance with the monotonic clock, so a
wall-clock jump during the session changes nothing. Only across a restart is the
time measured with the wall clock (the monotonic clock does not survive a reboot).
A clock that went back while the host was down would put new segments on top of
old ones: the recording then continues right where it ended, losing the gap but
never overlapping. A clock that went forward shows as a gap that long; nothing on
the host can tell it from real downtime.

Pure functions: the caller passes the time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from protocol.recording import RecordingStatus


@dataclass(frozen=True)
class SpooledSegment:
    """A segment still in the host's spool: its number, offset, length and the origin it was timed from."""

    index: int
    offset_ms: int
    duration_ms: int
    origin_ms: int | None = None
    """None for segments spooled by hosts that did not note it: taken to share the recording's origin."""


@dataclass(frozen=True)
class ResumePoint:
    """Where recording starts (again): the origin it counts from, the next segment's number and offset."""

    origin_ms: int
    index: int
    offset_ms: int
    clock_behind_ms: int = 0
    """How far the host's clock showed a time before the end of what was already recorded (a clock
    that went back); the recording then continues right at that end. 0 normally."""


def resume_point(
    now_ms: int,
    *,
    saved_origin_ms: int | None,
    held: RecordingStatus | None,
    spooled: Sequence[SpooledSegment],
) -> ResumePoint:
    """Where to start recording at ``now_ms`` (Unix ms, this host's clock).

    ``saved_origin_ms`` is the origin the host saved, ``held`` what the broker holds
    (None when it could not be asked), ``spooled`` what waits in the spool. The origin
    is the broker's, else the saved one, else that of a spooled segment; numbering and
    time continue after both what the broker holds and what the spool holds.
    """
    origin_ms = next(
        (o for o in (held.origin_ms if held else None, saved_origin_ms, *(s.origin_ms for s in spooled)) if o is not None),
        None,
    )
    index = max([held.next_index if held else 0, *(s.index + 1 for s in spooled)])
    recorded = bool(held and held.segments) or bool(spooled)
    if origin_ms is None:
        if not recorded:
            return ResumePoint(origin_ms=now_ms, index=index, offset_ms=0)
        # Recorded by a host that kept no origin: continue at the end; the downtime cannot be measured.
        end_ms = _recorded_end_ms(None, held, spooled)
        return ResumePoint(origin_ms=now_ms - end_ms, index=index, offset_ms=end_ms)
    end_ms = _recorded_end_ms(origin_ms, held, spooled)
    offset_ms = now_ms - origin_ms
    if offset_ms < end_ms:
        return ResumePoint(origin_ms=origin_ms, index=index, offset_ms=end_ms, clock_behind_ms=end_ms - offset_ms)
    return ResumePoint(origin_ms=origin_ms, index=index, offset_ms=offset_ms)


def _recorded_end_ms(origin_ms: int | None, held: RecordingStatus | None, spooled: Sequence[SpooledSegment]) -> int:
    """Where the last segment recorded so far ends, in ms from ``origin_ms`` (0 when none was).

    A spooled segment timed from another origin (its host had lost the recording's) is
    moved by the difference, as the broker will place it.
    """
    ends = [held.end_ms if held else 0]
    for segment in spooled:
        shift = segment.origin_ms - origin_ms if segment.origin_ms is not None and origin_ms is not None else 0
        ends.append(segment.offset_ms + segment.duration_ms + shift)
    return max(ends)
