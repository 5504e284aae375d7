"""The link pacer (peer.pacer): order, rate, retransmissions, whole-frame drops and keyframe requests,
on a made-up clock."""

from __future__ import annotations

import itertools

import pytest

from peer.pacer import (
    BACKLOG_SECONDS,
    BURST_SECONDS,
    FALLBACK_PACE,
    KEYFRAME_PATIENCE,
    KEYFRAME_REQUEST_INTERVAL,
    MAX_QUEUE_DELAY,
    MIN_PACE,
    PACE_FACTOR,
    RTX_QUEUE_LIMIT,
    LinkPacer,
    PaceBudget,
    PacedPacket,
    Verdict,
)
from tests.support.paced_video import FixedBudget

SENDER = 0x1234
PACKET = 1200


class Frames:
    """Packets of consecutive frames, numbered as a sender numbers them."""

    def __init__(self) -> None:
        self.seq = 0
        self.timestamp = 0

    def frame(self, packets: int, *, key: bool = False) -> list[PacedPacket]:
        self.timestamp += 3000
        frame = []
        for index in range(packets):
            frame.append(PacedPacket(
                data=bytes(PACKET), sender=SENDER, sequence_number=self.seq, timestamp=self.timestamp,
                marker=index == packets - 1, keyframe_start=key and index == 0,
            ))
            self.seq = (self.seq + 1) & 0xFFFF
        return frame


def rtx(original: int) -> PacedPacket:
    return PacedPacket(data=bytes(PACKET), sender=SENDER, sequence_number=original + 50_000,
                       timestamp=0, original_sequence_number=original)


def pacer_with(budget: PaceBudget | None = None, now: float = 0.0) -> LinkPacer:
    pacer = LinkPacer(now)
    pacer.add_sender(SENDER, budget if budget is not None else FixedBudget())
    return pacer


def offer_all(pacer: LinkPacer, packets: list[PacedPacket], now: float) -> list[Verdict]:
    return [pacer.offer(packet, now) for packet in packets]


def drain(pacer: LinkPacer, start: float, until: float) -> list[tuple[float, PacedPacket]]:
    """Pop every packet the pacer lets go before ``until``, sleeping as it says."""
    sent = []
    now = start
    while now < until:
        packet = pacer.pop(now)
        if packet is not None:
            sent.append((now, packet))
            continue
        due = pacer.next_departure(now)
        if due is None:
            break
        now = max(due, now + 1e-6)
    return sent


def test_the_pace_is_the_factor_times_the_budget_with_a_floor_and_a_fallback() -> None:
    budget = FixedBudget(2_000_000)
    pacer = pacer_with(budget)
    assert pacer.pace(0) == PACE_FACTOR * 2_000_000
    budget.bitrate = 10_000
    assert pacer.pace(0) == MIN_PACE
    budget.bitrate = float("nan")
    assert pacer.pace(0) == FALLBACK_PACE
    bare = LinkPacer(0)
    bare.add_sender(SENDER, None)
    assert bare.pace(0) == FALLBACK_PACE
    assert isinstance(budget, PaceBudget)


def encode_and_drain(pacer: LinkPacer, packets: list[PacedPacket], start: float) -> list[tuple[float, PacedPacket]]:
    """What the aiortc hook does: the encoder offers a packet while its sender is not backlogged,
    the drain pops when the pacer lets it."""
    sent: list[tuple[float, PacedPacket]] = []
    now = start
    waiting = list(packets)
    while waiting or pacer.next_departure(now) is not None:
        while waiting and not pacer.backlogged(SENDER, now):
            assert pacer.offer(waiting.pop(0), now) is Verdict.QUEUED
        packet = pacer.pop(now)
        if packet is not None:
            sent.append((now, packet))
            continue
        due = pacer.next_departure(now)
        now = max(due if due is not None else now, now + 1e-6)
    return sent


def test_packets_leave_in_order_at_the_pace_after_a_small_burst() -> None:
    budget = FixedBudget(1_000_000)
    pacer = pacer_with(budget)
    frames = Frames()
    sent = encode_and_drain(pacer, frames.frame(100, key=True), 0.0)  # a 120 KB keyframe
    assert pacer.stats(sent[-1][0]).frames_dropped == 0
    assert [packet.sequence_number for _, packet in sent] == list(range(100))
    elapsed = sent[-1][0] - sent[0][0]
    pace = PACE_FACTOR * 1_000_000
    # 99 packets after the first at the pace (the burst lets only the first go at once at 1.5 Mbit/s).
    assert elapsed == pytest.approx(99 * PACKET * 8 / pace, rel=0.05)
    burst = sum(1 for at, _ in sent if at < 1e-9)
    assert burst * PACKET <= max(1500, pace / 8 * BURST_SECONDS) + PACKET


def test_a_pace_cut_slows_what_is_queued() -> None:
    budget = FixedBudget(4_000_000)
    pacer = pacer_with(budget)
    offer_all(pacer, Frames().frame(10), 0.0)
    budget.bitrate = 400_000
    sent = drain(pacer, 0.0, 10.0)
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(sent[2:])]
    assert min(gaps) == pytest.approx(PACKET * 8 / (PACE_FACTOR * 400_000), rel=0.01)


def test_retransmissions_go_first_once_per_round_trip_and_never_for_dropped_packets() -> None:
    pacer = pacer_with()
    frames = Frames()
    offer_all(pacer, frames.frame(5), 0.0)
    sent = [packet.sequence_number for _, packet in drain(pacer, 0.0, 1.0)]
    offer_all(pacer, frames.frame(5), 1.0)
    assert pacer.offer(rtx(2), 1.0) is Verdict.QUEUED
    assert pacer.offer(rtx(2), 1.05) is Verdict.REFUSED  # the same NACK again within the round trip
    first = pacer.pop(1.1)
    assert first is not None and first.original_sequence_number == 2
    assert pacer.offer(rtx(2), 1.0 + pacer.round_trip + 0.01) is Verdict.QUEUED  # asked again a round trip on
    assert sent == [0, 1, 2, 3, 4]
    assert pacer.stats(1.1).retransmissions_refused == 1


def test_the_retransmission_queue_is_bounded() -> None:
    pacer = pacer_with()
    verdicts = [pacer.offer(rtx(seq), 0.0) for seq in range(RTX_QUEUE_LIMIT + 5)]
    assert verdicts.count(Verdict.QUEUED) == RTX_QUEUE_LIMIT
    assert verdicts.count(Verdict.REFUSED) == 5


def overflow(pacer: LinkPacer, frames: Frames) -> list[PacedPacket]:
    """Queue frames with no room for them until the queue is dropped; returns what was offered."""
    offered = frames.frame(3, key=True)
    offer_all(pacer, offered, 0.0)
    pacer.pop(0.0)  # one packet of the keyframe leaves: the rest is a partly sent frame
    late = frames.frame(3)
    offered += late
    offer_all(pacer, late[:2], MAX_QUEUE_DELAY / 2)  # a frame half offered when the queue overflows
    pacer.pop(MAX_QUEUE_DELAY + 0.01)  # the overflow is found when the next packet could leave
    return offered


def test_an_overflowing_queue_drops_whole_frames_and_refuses_their_retransmission() -> None:
    budget = FixedBudget(1_000_000)
    pacer = pacer_with(budget)
    frames = Frames()
    offered = overflow(pacer, frames)
    now = MAX_QUEUE_DELAY + 0.01
    assert pacer.stats(now).queued_bytes == 0
    assert pacer.stats(now).frames_dropped == 2
    assert budget.drops == [now]
    # The rest of the frame in flight is dropped as it comes.
    assert pacer.offer(offered[-1], now) is Verdict.DROPPED
    for packet in offered[1:]:
        assert pacer.offer(rtx(packet.sequence_number), now) is Verdict.REFUSED
    assert pacer.offer(rtx(offered[0].sequence_number), now) is Verdict.QUEUED  # it did leave


def test_after_a_drop_delta_frames_wait_for_a_keyframe_which_is_asked_for_at_a_measured_pace() -> None:
    pacer = pacer_with()
    frames = Frames()
    overflow(pacer, frames)
    now = MAX_QUEUE_DELAY + 0.01
    assert pacer.take_keyframe_request(SENDER, now)
    assert not pacer.take_keyframe_request(SENDER, now + 0.1)
    assert set(offer_all(pacer, frames.frame(2), now + 0.2)) == {Verdict.DROPPED}
    assert pacer.take_keyframe_request(SENDER, now + KEYFRAME_REQUEST_INTERVAL)
    assert set(offer_all(pacer, frames.frame(2, key=True), now + 0.6)) == {Verdict.QUEUED}
    assert not pacer.take_keyframe_request(SENDER, now + 2 * KEYFRAME_REQUEST_INTERVAL)
    assert set(offer_all(pacer, frames.frame(2), now + 0.7)) == {Verdict.QUEUED}
    stats = pacer.stats(now + 0.7)
    assert (stats.frames_dropped, stats.keyframes_asked) == (3, 2)


def test_waiting_for_a_keyframe_gives_up_after_its_patience() -> None:
    pacer = pacer_with()
    frames = Frames()
    overflow(pacer, frames)
    dropped_at = MAX_QUEUE_DELAY + 0.01
    assert set(offer_all(pacer, frames.frame(2), dropped_at + KEYFRAME_PATIENCE / 2)) == {Verdict.DROPPED}
    assert set(offer_all(pacer, frames.frame(2), dropped_at + KEYFRAME_PATIENCE)) == {Verdict.QUEUED}
    assert not pacer.take_keyframe_request(SENDER, dropped_at + KEYFRAME_PATIENCE + 1)


def test_a_still_screen_stops_asking_for_keyframes_after_the_patience() -> None:
    pacer = pacer_with()
    overflow(pacer, Frames())
    now = MAX_QUEUE_DELAY + 0.01
    asked = [t for t in (now, now + 0.5, now + 1.0, now + 1.5, now + 3) if pacer.take_keyframe_request(SENDER, t)]
    assert asked == [now, now + 0.5]


def test_a_keyframe_longer_than_the_queue_delay_at_the_pace_leaves_whole_and_a_stall_behind_it_still_overflows() -> None:
    budget = FixedBudget(1_000_000)  # the start: paced at 1.5 Mbit/s
    pacer = pacer_with(budget)
    frames = Frames()
    keyframe = frames.frame(60, key=True)  # 72 kB, a first keyframe under its 0.7 s window: 0.38 s at the pace
    assert set(offer_all(pacer, keyframe, 0.0)) == {Verdict.QUEUED}
    sent = drain(pacer, 0.0, 1.0)
    assert [packet for _, packet in sent] == keyframe and sent[-1][0] > MAX_QUEUE_DELAY
    assert pacer.stats(1.0).frames_dropped == 0
    # The allowance is for the frame's own packets ahead: frames queued behind others still overflow.
    budget.bitrate = 1.0  # the floor pace, 300 kbit/s
    for _ in range(30):
        offer_all(pacer, frames.frame(2), 1.0)
    drain(pacer, 1.0, 1.0 + MAX_QUEUE_DELAY + 0.2)
    assert pacer.stats(1.0 + MAX_QUEUE_DELAY + 0.2).frames_dropped > 0


def test_a_queue_bigger_than_twice_the_recent_keyframes_overflows_at_once() -> None:
    budget = FixedBudget(100_000_000)  # a pace at which the age bound is far
    pacer = pacer_with(budget)
    frames = Frames()
    offer_all(pacer, frames.frame(10, key=True), 0.0)
    drain(pacer, 0.0, 0.03)
    budget.bitrate = 200_000  # the estimate collapses: the age-derived byte bound is now below a keyframe
    verdicts = offer_all(pacer, frames.frame(25), 0.033)
    assert pacer.stats(0.033).frames_dropped == 1
    assert verdicts[-1] is Verdict.DROPPED  # found while the frame was still coming: its rest is dropped


def test_backlog_says_when_the_encoder_should_wait() -> None:
    budget = FixedBudget(1_000_000)
    pacer = pacer_with(budget)
    frames = Frames()
    room = int(PACE_FACTOR * 1_000_000 / 8 * BACKLOG_SECONDS) // PACKET
    offer_all(pacer, frames.frame(room), 0.0)
    assert not pacer.backlogged(SENDER, 0.0)
    pacer.offer(frames.frame(1)[0], 0.0)
    assert pacer.backlogged(SENDER, 0.0)
    drain(pacer, 0.0, 0.02)
    assert not pacer.backlogged(SENDER, 0.02)
    assert not pacer.backlogged(0x7777, 0.0)  # not paced here: never waits


def test_senders_share_the_link_oldest_first_and_may_leave() -> None:
    pacer = pacer_with()
    other = 0x4321
    pacer.add_sender(other, FixedBudget(1_000_000))
    assert pacer.pace(0) == 2 * PACE_FACTOR * 1_000_000
    offer_all(pacer, Frames().frame(2), 0.0)
    pacer.offer(PacedPacket(data=bytes(PACKET), sender=other, sequence_number=9, timestamp=1), 0.001)
    order = [packet.sender for _, packet in drain(pacer, 0.002, 1.0)]
    assert order == [SENDER, SENDER, other]
    pacer.remove_sender(other)
    assert pacer.senders == [SENDER]
    with pytest.raises(KeyError):
        pacer.offer(PacedPacket(data=b"x", sender=other, sequence_number=1, timestamp=1), 1.0)


def test_stats_show_the_queue_delay() -> None:
    pacer = pacer_with()
    offer_all(pacer, Frames().frame(3), 0.0)
    stats = pacer.stats(0.1)
    assert stats.queue_delay_ms == pytest.approx(100)
    assert stats.queued_bytes == 3 * PACKET and stats.pace_bps == PACE_FACTOR * 1_000_000
    assert pacer.next_departure(0.0) == 0.0
    assert LinkPacer(0).next_departure(0.0) is None
