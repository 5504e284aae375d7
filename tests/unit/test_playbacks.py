"""broker.audit.playbacks.Playbacks: a playback id is its account's, for its session, while in use."""

from __future__ import annotations

from broker.audit.evidence import SegmentRef
from broker.audit.playbacks import Playbacks

SEGMENTS = (SegmentRef(0, 0, 1000, 10, "a" * 64, "b" * 64),)


def test_a_playback_is_found_only_by_its_account_for_its_session() -> None:
    playbacks = Playbacks()
    started = playbacks.start(7, "s1", SEGMENTS, 10, now=0.0)
    assert playbacks.find(started.id, 7, "s1", now=1.0) is started
    assert playbacks.find(started.id, 8, "s1", now=1.0) is None
    assert playbacks.find(started.id, 7, "s2", now=1.0) is None
    assert playbacks.find("not-an-id", 7, "s1", now=1.0) is None
    assert playbacks.find(started.id, 7, "s1", now=2.0) is started  # others' attempts took nothing away


def test_a_playback_lapses_when_unused_and_use_keeps_it() -> None:
    playbacks = Playbacks(idle_seconds=10)
    kept, dropped = playbacks.start(7, "s1", SEGMENTS, 10, now=0.0), playbacks.start(7, "s1", SEGMENTS, 10, now=0.0)
    for now in (9.0, 18.0, 27.0):
        assert playbacks.find(kept.id, 7, "s1", now=now) is kept
    assert playbacks.find(dropped.id, 7, "s1", now=27.0) is None
    assert playbacks.find(kept.id, 7, "s1", now=37.5) is None


def test_ids_are_new_each_time_and_the_longest_unused_goes_first_when_full() -> None:
    playbacks = Playbacks(kept=2)
    first, second = playbacks.start(1, "s", SEGMENTS, 10, now=0.0), playbacks.start(1, "s", SEGMENTS, 10, now=0.0)
    assert first.id != second.id and len(first.id) >= 32
    assert playbacks.find(first.id, 1, "s", now=1.0) is first  # used: now the second is the longest unused
    playbacks.start(1, "s", SEGMENTS, 10, now=2.0)
    assert playbacks.find(second.id, 1, "s", now=2.0) is None
    assert playbacks.find(first.id, 1, "s", now=2.0) is first
