"""When each packet of a video sender leaves: a token bucket tied to the stream's budget.

aiortc sends a frame's packets the moment they are encoded. A 100 KB keyframe
is then a burst of 80 packets in a few milliseconds, and a slow link's
bottleneck queue (a home router's, a mobile uplink's) overflows and drops its
tail: the picture never arrives, and every keyframe asked for again meets the
same fate. :class:`LinkPacer` spreads the packets at a pace a little above the
rate the stream should fit (:data:`PACE_FACTOR` x the budget's
``target_bitrate``), so the queue that grows is ours, where it can be managed:

* retransmissions (RTX) go first, once per sequence number per round trip, and
  never for a packet the pacer itself dropped;
* media waits in order; the sender is told it is *backlogged* (and should not
  encode more yet) once the queue needs more than :data:`BACKLOG_SECONDS` to
  leave, so the next frame is a fresh grab, not a stale one;
* a queue that still overflows (its head waiting longer than :data:`MAX_QUEUE_DELAY`
  or two frame-times beyond what its own frame's earlier packets take at the pace, or more
  bytes than twice the largest recent keyframe, the one being queued included)
  is dropped as whole frames, the rest of a frame in flight included: a broken
  group of pictures is worth nothing to the decoder. Delta frames are then
  refused until a keyframe comes, which the pacer asks for (at most every
  :data:`KEYFRAME_REQUEST_INTERVAL`, waiting at most :data:`KEYFRAME_PATIENCE`),
  and the budget hears of the drop (``frames_dropped``: the link is congested).

RTCP and data channels never pass here (the aiortc hook in
:mod:`peer.aiortc_hooks` routes only a video sender's RTP to it), and the pace
leaves the rest of the link to them.

Pure logic: packets come in with :meth:`LinkPacer.offer`, leave with
:meth:`LinkPacer.pop`; the caller sleeps until :meth:`LinkPacer.next_departure`.
Times are seconds on one monotonic clock, passed in.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

PACE_FACTOR = 1.5
"""Pace = this x the rate the stream should fit: a keyframe leaves faster than the average
without bursting at line rate.

Measured (tests/netns/test_paced_uplink.py, 1.5 Mbit/s uplink, a scrolling text desktop,
the budget's target following REMB): 1.5 gave 18-25 frames in 10 s but sent 1.7 Mbit/s of
UDP, over the link on its own; 1.2 gave 14-20 frames at 1.0 Mbit/s of UDP; 1.0 gave 12-16
at 0.8 Mbit/s. Below 1.5, a full-screen change on a fast link before any estimate (1 Mbit/s
start) waits over 0.1 s in the queue (tests/e2e/test_screen_stream.py). Room for input on a
slow link must therefore come from the budget's target staying under the link's capacity."""
MIN_PACE = 300_000
"""Bit/s the pace never falls below (a keyframe must still get through a very low estimate)."""
FALLBACK_PACE = 1_500_000
"""Bit/s for a sender whose track has no :class:`PaceBudget` (:data:`PACE_FACTOR` x 1 Mbit/s)."""
BURST_SECONDS = 0.005
"""Seconds of pace that may leave back to back after a quiet spell."""
MIN_BURST_BYTES = 1500
"""The burst is at least one full packet, or nothing could leave at a low pace."""
BACKLOG_SECONDS = 0.05
"""A sender whose queued packets need longer than this to leave is backlogged (its encoder waits)."""
MAX_QUEUE_DELAY = 0.3
"""Seconds the oldest queued media packet may wait before the queue is dropped as overflowing."""
QUEUE_DELAY_FRAMES = 2
"""... or this many frame-times, when frames come slower than that."""
FRAME_INTERVAL_CAP = 0.5
"""Longest frame-time counted: a still screen's rare frames must not let the queue age for seconds."""
KEYFRAME_QUEUE_FACTOR = 2.0
"""The queue overflows past this many times the largest of the recent keyframes..."""
KEYFRAME_MEMORY = 4
"""... of the last this many."""
KEYFRAME_REQUEST_INTERVAL = 0.5
"""Seconds between two keyframe requests while waiting for one after a drop."""
KEYFRAME_PATIENCE = 1.0
"""Seconds delta frames are refused while waiting for a keyframe; then they flow again."""
DEFAULT_ROUND_TRIP = 0.25
"""Seconds a retransmission of the same packet is refused for, until a round trip is known."""
RTX_QUEUE_LIMIT = 256
"""Retransmissions queued at most; more are refused (a NACK storm must not starve the media)."""
DROPPED_MEMORY = 4096
"""Dropped sequence numbers remembered (their retransmission refused)."""


@runtime_checkable
class PaceBudget(Protocol):
    """What the pacer needs from a stream's budget (:class:`peer.stream_budget.StreamBudget` has it)."""

    def target_bitrate(self, now: float) -> float:
        """Bit/s the stream should fit now."""
        ...

    def frames_dropped(self, now: float) -> None:
        """The pacer had to drop frames for lack of link (congestion)."""
        ...


class Verdict(enum.Enum):
    """What :meth:`LinkPacer.offer` did with a packet."""

    QUEUED = "queued"
    DROPPED = "dropped"
    """A media packet of a frame being dropped (overflow, or a delta frame while a keyframe is awaited)."""
    REFUSED = "refused"
    """A retransmission not worth sending: of a dropped packet, a repeat within a round trip, or too many."""


@dataclass(frozen=True)
class PacedPacket:
    """One serialized RTP packet and what the pacer needs to know about it."""

    data: bytes
    sender: int
    """The sender it belongs to (its media SSRC)."""
    sequence_number: int
    timestamp: int
    marker: bool = False
    keyframe_start: bool = False
    """The first packet of a keyframe (see :func:`peer.rtp_bytes.starts_keyframe`)."""
    original_sequence_number: int | None = None
    """For a retransmission (RTX): the media packet it carries again; None for media."""

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class PacerStats:
    """How the pacer is doing, for a "slow connection" indicator."""

    pace_bps: float
    queue_delay_ms: float
    """How long the oldest queued media packet has waited."""
    queued_bytes: int
    frames_dropped: int
    keyframes_asked: int
    retransmissions_refused: int
    packets_sent: int


@dataclass
class _Queued:
    packet: PacedPacket
    enqueued_at: float
    ahead_in_frame: int = 0
    """Bytes of its own frame queued before it: at the pace, the wait that is no sign of overflow."""


def _budget_pace(budget: PaceBudget | None, now: float) -> float:
    if budget is None:
        return float(FALLBACK_PACE)
    target = budget.target_bitrate(now)
    if not math.isfinite(target):
        return float(FALLBACK_PACE)
    return max(float(MIN_PACE), PACE_FACTOR * target)


@dataclass
class _SenderQueue:
    """One sender's queues and its frame-dropping state."""

    budget: PaceBudget | None
    media: deque[_Queued] = field(default_factory=deque)
    rtx: deque[_Queued] = field(default_factory=deque)
    media_bytes: int = 0
    rtx_bytes: int = 0
    offered_timestamp: int | None = None
    offered_complete: bool = True
    """The last media packet offered ended its frame (marker)."""
    discarding: int | None = None
    """The timestamp of a frame whose packets are dropped as they come."""
    keyframe_wanted_since: float | None = None
    keyframe_asked_at: float = float("-inf")
    keyframe_sizes: deque[int] = field(default_factory=lambda: deque(maxlen=KEYFRAME_MEMORY))
    frame_bytes: int = 0
    frame_is_key: bool = False
    frame_started_at: float | None = None
    frame_interval: float = 0.0
    dropped: set[int] = field(default_factory=set)
    dropped_order: deque[int] = field(default_factory=deque)
    retransmitted: dict[int, float] = field(default_factory=dict)
    frames_dropped: int = 0
    keyframes_asked: int = 0
    retransmissions_refused: int = 0

    def offer_media(self, packet: PacedPacket, now: float) -> Verdict:
        if packet.timestamp != self.offered_timestamp:
            self._frame_started(packet, now)
        self.offered_complete = packet.marker
        if self.discarding == packet.timestamp:
            self._forget(packet.sequence_number)
            return Verdict.DROPPED
        self.media.append(_Queued(packet, now, self.frame_bytes))
        self.media_bytes += packet.size
        self.frame_bytes += packet.size
        if packet.marker and self.frame_is_key:
            self.keyframe_sizes.append(self.frame_bytes)
        return Verdict.QUEUED

    def _frame_started(self, packet: PacedPacket, now: float) -> None:
        if self.frame_started_at is not None:
            self.frame_interval = min(FRAME_INTERVAL_CAP, max(0.0, now - self.frame_started_at))
        self.frame_started_at = now
        self.offered_timestamp = packet.timestamp
        self.frame_bytes = 0
        self.frame_is_key = packet.keyframe_start
        self.discarding = None
        if self.keyframe_wanted_since is None:
            return
        if packet.keyframe_start or now - self.keyframe_wanted_since >= KEYFRAME_PATIENCE:
            self.keyframe_wanted_since = None
            return
        self.discarding = packet.timestamp  # a delta frame on a picture the receiver will not have
        self.frames_dropped += 1

    def offer_rtx(self, packet: PacedPacket, now: float, round_trip: float) -> Verdict:
        original = packet.original_sequence_number
        assert original is not None
        while self.retransmitted and now - next(iter(self.retransmitted.values())) >= round_trip:
            del self.retransmitted[next(iter(self.retransmitted))]
        if original in self.dropped or original in self.retransmitted or len(self.rtx) >= RTX_QUEUE_LIMIT:
            self.retransmissions_refused += 1
            return Verdict.REFUSED
        self.retransmitted[original] = now
        self.rtx.append(_Queued(packet, now))
        self.rtx_bytes += packet.size
        return Verdict.QUEUED

    def max_queue_delay(self) -> float:
        return max(MAX_QUEUE_DELAY, QUEUE_DELAY_FRAMES * self.frame_interval)

    def max_queue_bytes(self, pace: float) -> float:
        largest_keyframe = max(self.keyframe_sizes, default=0)
        if self.frame_is_key:  # the keyframe being offered counts as it comes
            largest_keyframe = max(largest_keyframe, self.frame_bytes)
        return max(KEYFRAME_QUEUE_FACTOR * largest_keyframe, pace / 8 * self.max_queue_delay())

    def expire(self, now: float, pace: float) -> None:
        """Drop the media queue if it overflows, and retransmissions too old to matter."""
        limit = self.max_queue_delay()
        while self.rtx and now - self.rtx[0].enqueued_at > limit:
            self.rtx_bytes -= self.rtx.popleft().packet.size
        if not self.media:
            return
        head = self.media[0]
        # A frame's own packets leave one after another at the pace: its last packet's wait for those
        # before it is no overflow (the stream's first keyframe takes up to 0.7 s of the start budget).
        waited = now - head.enqueued_at - head.ahead_in_frame * 8 / pace
        if waited <= limit and self.media_bytes <= self.max_queue_bytes(pace):
            return
        self.frames_dropped += len({queued.packet.timestamp for queued in self.media})
        for queued in self.media:
            self._forget(queued.packet.sequence_number)
        self.media.clear()
        self.media_bytes = 0
        if not self.offered_complete:  # the frame being encoded is broken too: its rest goes as it comes
            self.discarding = self.offered_timestamp
        if self.keyframe_wanted_since is None:
            self.keyframe_wanted_since = now
        if self.budget is not None:
            self.budget.frames_dropped(now)

    def _forget(self, sequence_number: int) -> None:
        if sequence_number in self.dropped:
            return
        self.dropped.add(sequence_number)
        self.dropped_order.append(sequence_number)
        if len(self.dropped_order) > DROPPED_MEMORY:
            self.dropped.discard(self.dropped_order.popleft())

    def take_keyframe_request(self, now: float) -> bool:
        since = self.keyframe_wanted_since
        if since is None:
            return False
        if now - since >= KEYFRAME_PATIENCE:
            self.keyframe_wanted_since = None  # given up: delta frames flow again
            return False
        if now - self.keyframe_asked_at < KEYFRAME_REQUEST_INTERVAL:
            return False
        self.keyframe_asked_at = now
        self.keyframes_asked += 1
        return True


class LinkPacer:
    """The token bucket of one link (one DTLS transport) and a queue per video sender on it."""

    def __init__(self, now: float) -> None:
        self._senders: dict[int, _SenderQueue] = {}
        self._credit = float(MIN_BURST_BYTES)
        self._refilled_at = now
        self.round_trip = DEFAULT_ROUND_TRIP
        """Seconds; a retransmission of the same packet within it is refused."""
        self.packets_sent = 0

    @property
    def senders(self) -> list[int]:
        """The senders (media SSRCs) paced here."""
        return list(self._senders)

    def add_sender(self, sender: int, budget: PaceBudget | None) -> None:
        """Pace ``sender`` from now on, at :data:`PACE_FACTOR` x ``budget``'s target (or :data:`FALLBACK_PACE`)."""
        self._senders.setdefault(sender, _SenderQueue(budget))

    def remove_sender(self, sender: int) -> None:
        """Stop pacing ``sender``; what it had queued is forgotten."""
        self._senders.pop(sender, None)

    def pace(self, now: float) -> float:
        """Bit/s packets leave at now: the sum of every sender's pace."""
        return sum(_budget_pace(queue.budget, now) for queue in self._senders.values()) or float(FALLBACK_PACE)

    def offer(self, packet: PacedPacket, now: float) -> Verdict:
        """Take ``packet`` into its sender's queue (media) or retransmission queue (RTX), or drop or refuse it."""
        queue = self._senders.get(packet.sender)
        if queue is None:
            raise KeyError(f"sender {packet.sender} is not paced here")
        if packet.original_sequence_number is not None:
            return queue.offer_rtx(packet, now, self.round_trip)
        verdict = queue.offer_media(packet, now)
        queue.expire(now, _budget_pace(queue.budget, now))
        return verdict

    def pop(self, now: float) -> PacedPacket | None:
        """The packet to send now, if one is queued and the bucket allows it."""
        self._refill(now)
        for each in self._senders.values():
            each.expire(now, _budget_pace(each.budget, now))
        if self._credit < 0:
            return None
        queue = self._next()
        if queue is None:
            return None
        if queue.rtx:
            queued = queue.rtx.popleft()
            queue.rtx_bytes -= queued.packet.size
        else:
            queued = queue.media.popleft()
            queue.media_bytes -= queued.packet.size
        self._credit -= queued.packet.size
        self.packets_sent += 1
        return queued.packet

    def _next(self) -> _SenderQueue | None:
        """The queue whose packet leaves next: the oldest retransmission first, then the oldest media."""
        with_rtx = [queue for queue in self._senders.values() if queue.rtx]
        if with_rtx:
            return min(with_rtx, key=lambda queue: queue.rtx[0].enqueued_at)
        with_media = [queue for queue in self._senders.values() if queue.media]
        if with_media:
            return min(with_media, key=lambda queue: queue.media[0].enqueued_at)
        return None

    def next_departure(self, now: float) -> float | None:
        """When the next queued packet may leave (``now`` or later), or None when nothing is queued."""
        if self._next() is None:
            return None
        pace = self._refill(now)
        if self._credit >= 0:
            return now
        return now + -self._credit * 8 / pace

    def backlogged(self, sender: int, now: float) -> bool:
        """Whether ``sender`` should wait before offering more media: what is queued needs more
        than :data:`BACKLOG_SECONDS` to leave."""
        if sender not in self._senders:
            return False
        queued = sum(queue.media_bytes + queue.rtx_bytes for queue in self._senders.values())
        return queued * 8 > self.pace(now) * BACKLOG_SECONDS

    def take_keyframe_request(self, sender: int, now: float) -> bool:
        """Whether ``sender``'s encoder should be asked for a keyframe now (True once per request)."""
        queue = self._senders.get(sender)
        return queue is not None and queue.take_keyframe_request(now)

    def stats(self, now: float) -> PacerStats:
        """The pace, the queue and what was dropped, summed over the senders."""
        queues = list(self._senders.values())
        oldest = min((queue.media[0].enqueued_at for queue in queues if queue.media), default=now)
        return PacerStats(
            pace_bps=self.pace(now),
            queue_delay_ms=max(0.0, now - oldest) * 1000,
            queued_bytes=sum(queue.media_bytes + queue.rtx_bytes for queue in queues),
            frames_dropped=sum(queue.frames_dropped for queue in queues),
            keyframes_asked=sum(queue.keyframes_asked for queue in queues),
            retransmissions_refused=sum(queue.retransmissions_refused for queue in queues),
            packets_sent=self.packets_sent,
        )

    def _burst(self, pace: float) -> float:
        return max(float(MIN_BURST_BYTES), pace / 8 * BURST_SECONDS)

    def _refill(self, now: float) -> float:
        """Add the credit earned since the last refill (up to the burst); return the pace."""
        pace = self.pace(now)
        elapsed = max(0.0, now - self._refilled_at)
        self._credit = min(self._burst(pace), self._credit + pace / 8 * elapsed)
        self._refilled_at = max(self._refilled_at, now)
        return pace
