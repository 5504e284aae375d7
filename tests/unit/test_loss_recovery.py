"""LossRecovery: NACK retries on a clock, then keyframe requests until a keyframe begins."""

from __future__ import annotations

import pytest

from peer.loss_recovery import (
    MIN_NACK_INTERVAL,
    MIN_PLI_INTERVAL,
    NACK_ATTEMPTS,
    TRACKED_SPAN,
    LossRecovery,
    Nack,
    Pli,
    abandon_after,
    nack_interval,
    pli_interval,
)


def test_intervals_follow_the_round_trip_with_floors() -> None:
    assert nack_interval(0.001) == MIN_NACK_INTERVAL
    assert nack_interval(0.2) == pytest.approx(0.3)
    assert pli_interval(0.001) == MIN_PLI_INTERVAL
    assert pli_interval(0.4) == pytest.approx(0.5)
    assert abandon_after(0.2) == pytest.approx(NACK_ATTEMPTS * 0.3)
    assert nack_interval(None) > MIN_NACK_INTERVAL  # an assumed round trip, not the loopback floor


def test_a_gap_is_nacked_at_once_then_again_on_the_clock() -> None:
    recovery = LossRecovery(round_trip=0.1)
    assert recovery.packet(10, now=0.0) == []
    assert recovery.packet(13, now=0.0) == [11, 12]  # for the caller to NACK now
    assert recovery.tick(0.1) == []  # 1.5 round trips not over
    assert recovery.tick(0.16) == [Nack((11, 12))]
    assert recovery.packet(11, now=0.2) == []  # its retransmission, 0.2 s after the first NACK
    assert recovery.repaired == 1 and recovery.repair_time == pytest.approx(0.2)
    assert recovery.tick(0.32) == [], "retransmissions take 0.2 s on this link: 12's may be on its way"
    assert recovery.tick(0.37) == [Nack((12,))]
    assert recovery.missing() == [12]
    assert recovery.nacks_sent == 5


def test_an_unanswered_packet_is_abandoned_and_a_keyframe_asked_for_at_once() -> None:
    recovery = LossRecovery(round_trip=0.1)
    recovery.packet(1, now=0.0)
    recovery.packet(3, now=0.0)
    actions = []
    now = 0.0
    while Pli() not in actions:
        now += 0.01
        actions += recovery.tick(now)
    assert actions == [Nack((2,))] * (NACK_ATTEMPTS - 1) + [Pli()]
    assert now == pytest.approx(abandon_after(0.1), abs=0.011)
    assert not recovery.waiting_for(2) and recovery.abandoned_count == 1
    assert recovery.packet(5, now=now) == [4]  # a new gap: only the new seq, never the abandoned one
    assert recovery.keyframe_wanted


def test_retransmissions_slowed_by_a_queue_stretch_the_nack_clock_and_faster_ones_shrink_it() -> None:
    # A link with no added delay (round trip 2 ms) whose bottleneck queue holds 150 ms.
    recovery = LossRecovery(round_trip=0.002)
    assert abandon_after(0.002) == pytest.approx(NACK_ATTEMPTS * MIN_NACK_INTERVAL)
    recovery.packet(1, now=0.0)
    recovery.packet(3, now=0.0)
    recovery.tick(0.06)  # 2 asked again: its answer is still queued
    recovery.packet(2, now=0.15)
    assert recovery.repair_time == pytest.approx(0.15), "timed from the first NACK"
    assert nack_interval(0.002, recovery.repair_time) == pytest.approx(0.15)
    recovery.packet(5, now=1.0)  # 4 lost: not abandoned before three of the repair times
    now, actions = 1.0, []
    while Pli() not in actions:
        now += 0.01
        actions += recovery.tick(now)
    assert now == pytest.approx(1.0 + abandon_after(0.002, 0.15), abs=0.011)
    recovery.packet(7, now=2.0)
    recovery.packet(6, now=2.01)  # a quick repair (the queue drained): smoothed in, not taken at once
    assert 0.01 < recovery.repair_time < 0.15


def test_a_packet_that_arrives_after_it_was_abandoned_still_lengthens_the_clock() -> None:
    recovery = LossRecovery(round_trip=0.002)
    recovery.packet(1, now=0.0)
    recovery.packet(3, now=0.0)
    now = 0.0
    while recovery.waiting_for(2):
        now += 0.01
        recovery.tick(now)
    assert recovery.repair_time == 0.0
    recovery.packet(2, now=0.4)  # its retransmission, behind a queue
    assert recovery.repair_time == pytest.approx(0.4) and recovery.repaired == 0


def test_keyframe_requests_repeat_until_a_keyframe_begins_and_pause_while_it_arrives() -> None:
    recovery = LossRecovery(round_trip=0.05)
    recovery.picture_lost(100)
    assert recovery.tick(0.0) == [Pli()]
    assert recovery.tick(0.2) == []
    assert recovery.tick(MIN_PLI_INTERVAL) == [Pli()]  # the request or its keyframe was lost
    recovery.keyframe_started(101)
    assert not recovery.keyframe_wanted
    assert recovery.tick(1.0) == []  # the keyframe is arriving: nothing to ask
    recovery.picture_lost(150)  # a hole in that keyframe, abandoned: asked at once again
    assert recovery.tick(1.01) == [Pli()]
    recovery.keyframe_started(160)
    recovery.picture_lost(170)  # and in the next, soon after: never two requests within MIN_PLI_INTERVAL
    assert recovery.tick(1.2) == []
    assert recovery.tick(1.01 + MIN_PLI_INTERVAL) == [Pli()]
    assert recovery.plis_sent == 4


def test_an_older_keyframe_does_not_end_the_wish_and_a_newer_one_prevents_it() -> None:
    recovery = LossRecovery()
    recovery.picture_lost(100)
    recovery.keyframe_started(90)  # a late retransmission of an old keyframe's start
    assert recovery.keyframe_wanted
    recovery.keyframe_started(120)
    assert not recovery.keyframe_wanted
    recovery.picture_lost(110)  # a hole behind the keyframe already arriving: nothing is lost
    recovery.picture_lost(120)  # the keyframe's first packet began a new numbering: nothing lost either
    assert not recovery.keyframe_wanted and recovery.tick(5.0) == []


def test_what_the_jitter_buffer_moved_past_is_never_asked_for_again() -> None:
    recovery = LossRecovery(round_trip=0.01)
    recovery.packet(1, now=0.0)
    recovery.packet(5, now=0.0)  # 2, 3, 4 missing
    recovery.forget_before(4)  # skipped to a keyframe at 5? here: released up to 4
    assert recovery.missing() == [4]
    assert recovery.tick(1.0) == [Nack((4,))]


def test_sequence_numbers_wrap() -> None:
    recovery = LossRecovery(round_trip=0.01)
    recovery.packet(65534, now=0.0)
    assert recovery.packet(1, now=0.0) == [65535, 0]
    assert recovery.packet(2, now=0.0, ends_frame=False) == []
    recovery.tick(1.0)  # 3 asked for: the stalled frame's tail
    assert recovery.missing() == [65535, 0, 3]
    recovery.packet(3, now=1.0)
    assert recovery.missing() == [65535, 0]
    recovery.forget_before(0)
    assert recovery.missing() == [0]


def test_a_jump_beyond_the_tracked_span_is_a_new_numbering_not_a_loss() -> None:
    recovery = LossRecovery()
    recovery.packet(100, now=0.0)
    recovery.packet(102, now=0.0)
    assert recovery.packet(100 + 2 * TRACKED_SPAN, now=0.0) == []
    assert recovery.missing() == []
    recovery.packet(103 + 2 * TRACKED_SPAN, now=0.0)
    assert recovery.missing() == [101 + 2 * TRACKED_SPAN, 102 + 2 * TRACKED_SPAN]


def test_round_trip_samples_are_smoothed() -> None:
    recovery = LossRecovery()
    recovery.round_trip_measured(0.1)
    assert recovery.round_trip == pytest.approx(0.1)
    recovery.round_trip_measured(0.9)  # one answer held up
    assert recovery.round_trip == pytest.approx(0.2)


def test_a_frame_stalled_without_its_last_packet_has_the_next_packet_asked_for() -> None:
    recovery = LossRecovery(round_trip=0.1)
    recovery.packet(10, now=0.0)
    recovery.packet(11, now=0.0, ends_frame=False)  # 12, the frame's last, is lost; nothing follows
    assert recovery.tick(0.1) == []  # 12 may still be on its way
    assert recovery.tick(0.16) == [Nack((12,))]
    assert recovery.packet(12, now=0.2, ends_frame=False) == []  # answered; the frame goes on: 13 next
    assert recovery.repaired == 1
    actions = []
    for step in range(1, 80):
        actions += recovery.tick(0.2 + step * 0.01)
    assert actions[:NACK_ATTEMPTS + 1] == [Nack((13,))] * NACK_ATTEMPTS + [Pli()]
    assert recovery.packet(14, now=2.0) == [], "13 was given up: not asked for again when 14 shows it"
    assert recovery.missing() == []


def test_a_complete_frame_is_no_stall() -> None:
    recovery = LossRecovery(round_trip=0.1)
    recovery.packet(10, now=0.0)
    recovery.packet(11, now=0.0, ends_frame=True)
    assert recovery.tick(10.0) == []
