"""When a video receiver asks again for what it lost: NACK retries, then keyframe requests.

aiortc's receiver asks for a lost packet once (a NACK when a newer packet shows
the gap) and never again: if that NACK or its retransmission is lost too, and
the screen is still (no newer packet comes), the picture stays broken. And it
asks again for every seq it ever missed with each new gap, also for those the
jitter buffer gave up on long ago, which costs uplink on a slow link.

:class:`LossRecovery` keeps one receiver's missing seqs on a clock instead:

* a missing seq is asked for (NACK) when a newer packet shows it, then again
  every :func:`nack_interval` (1.5 round trips, at least 50 ms, and at least what
  retransmissions have lately taken: :attr:`LossRecovery.repair_time`) up to
  :data:`NACK_ATTEMPTS` times in all;
* when the last attempt went unanswered for an interval it is *abandoned*: the
  picture is lost and a keyframe is asked for (PLI) at once, unless a keyframe
  newer than the hole has already begun to arrive (never two requests within
  :data:`MIN_PLI_INTERVAL`, whatever a peer's stream does);
* a frame that stalls without its last packet (nothing newer arrives to show
  the gap: a still screen) has the packet after the newest asked for the same
  way, once an interval has passed since the newest arrived;
* the PLI is repeated every :func:`pli_interval` (a round trip plus 100 ms, at
  least 300 ms) until a keyframe's first packet arrives; while that keyframe
  arrives nothing is asked, and a hole in *it* starts the same rules again;
* seqs the jitter buffer has released or skipped are forgotten: never asked
  for again.

Pure logic: the receiver reports arrivals (:meth:`LossRecovery.packet`,
:meth:`LossRecovery.keyframe_started`), what the jitter buffer let go
(:meth:`LossRecovery.forget_before`, :meth:`LossRecovery.picture_lost`) and the
round trip, and sends what :meth:`LossRecovery.tick` returns. Times are seconds
on one monotonic clock; seqs are RTP's 16-bit sequence numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiortc.utils import uint16_add, uint16_gt

NACK_ATTEMPTS = 3
"""NACKs sent for one missing packet before it is abandoned (the first included)."""
MIN_NACK_INTERVAL = 0.05
"""Seconds between NACKs of one packet at least: a retransmission needs a moment even on loopback."""
NACK_INTERVAL_ROUND_TRIPS = 1.5
"""Round trips between NACKs of one packet: the answer's trip plus slack for the sender's turn."""
MIN_PLI_INTERVAL = 0.3
"""Seconds between keyframe requests at least: a keyframe takes a while to encode and to cross a slow link."""
PLI_SLACK = 0.1
"""Seconds beyond a round trip a keyframe request is given before it is repeated."""
ASSUMED_ROUND_TRIP = 0.2
"""The round trip assumed before one is measured: a lost packet is abandoned after about 0.9 s."""
ROUND_TRIP_GAIN = 0.125
"""Weight of a new round-trip sample in the smoothed round trip (RFC 6298's alpha)."""
TRACKED_SPAN = 512
"""Packets behind the newest that are still asked for: the video jitter buffer's capacity.
A larger jump is taken for a new numbering, not for a loss."""


GIVEN_UP_KEPT = 64
"""Abandoned seqs remembered, oldest forgotten first, in case they arrive after all."""
REPAIR_GAIN = 0.125
"""Weight of a faster repair in the smoothed repair time (a slower one is taken at once)."""


def nack_interval(round_trip: float | None, repair_time: float = 0.0) -> float:
    """Seconds between two NACKs of one missing packet: 1.5 round trips, and no less than
    retransmissions have lately taken to arrive (``repair_time``: a queue on the link)."""
    rtt = ASSUMED_ROUND_TRIP if round_trip is None else round_trip
    return max(NACK_INTERVAL_ROUND_TRIPS * rtt, MIN_NACK_INTERVAL, repair_time)


def pli_interval(round_trip: float | None) -> float:
    """Seconds between two keyframe requests while no keyframe comes."""
    rtt = ASSUMED_ROUND_TRIP if round_trip is None else round_trip
    return max(rtt + PLI_SLACK, MIN_PLI_INTERVAL)


def abandon_after(round_trip: float | None, repair_time: float = 0.0) -> float:
    """Seconds from a packet's first NACK until it is abandoned and a keyframe asked for."""
    return NACK_ATTEMPTS * nack_interval(round_trip, repair_time)


@dataclass(frozen=True)
class Nack:
    """Ask the sender again for these packets."""

    sequence_numbers: tuple[int, ...]


@dataclass(frozen=True)
class Pli:
    """Ask the sender for a keyframe (Picture Loss Indication)."""


Action = Nack | Pli


@dataclass
class _Asked:
    times: int
    at: float
    first_at: float


@dataclass
class LossRecovery:
    """One video receiver's missing packets and keyframe wish, on a clock (see the module docstring)."""

    round_trip: float | None = None
    """Seconds, measured by the caller; None until known (:data:`ASSUMED_ROUND_TRIP` is used)."""

    nacks_sent: int = field(default=0, init=False)
    """Seqs asked for so far, each attempt counted."""
    repaired: int = field(default=0, init=False)
    """Missing packets that arrived after all (retransmitted, or late)."""
    abandoned_count: int = field(default=0, init=False)
    """Missing packets given up on."""
    plis_sent: int = field(default=0, init=False)
    """Keyframe requests returned by :meth:`tick`."""
    repair_time: float = field(default=0.0, init=False)
    """Seconds a missing packet lately took from its first NACK to its arrival: a slower repair is
    taken at once, a faster one smoothed in (:data:`REPAIR_GAIN`). The NACK interval is never
    shorter (:func:`nack_interval`): the round trip is measured on an idle moment, but a
    retransmission waits behind the link's queue (up to 200 ms at 1 Mbit/s), and NACKs that ran out
    meanwhile abandoned packets whose answers were on their way, each abandonment a keyframe
    that restarted the picture's refinement (measured through the link emulator, 1 Mbit/s with
    2 % loss and no added delay: no legible picture within 15 s)."""

    _newest: int | None = field(default=None, init=False)
    _missing: dict[int, _Asked] = field(default_factory=dict, init=False)
    _newest_keyframe_start: int | None = field(default=None, init=False)
    _lost_after: int | None = field(default=None, init=False)
    """While a keyframe is wanted: the seq the lost picture reaches; a keyframe starting later ends the wish."""
    _pli_at: float = field(default=float("-inf"), init=False)
    _new_loss: bool = field(default=False, init=False)
    _newest_at: float = field(default=float("-inf"), init=False)
    _frame_open: bool = field(default=False, init=False)
    """The newest packet did not end its frame: the frame's tail may be lost, with nothing after it to show it."""
    _tail_abandoned: int | None = field(default=None, init=False)
    _given_up: dict[int, float] = field(default_factory=dict, init=False)
    """Abandoned seqs and when each was first asked for: one that arrives after all still tells the repair time."""

    @property
    def keyframe_wanted(self) -> bool:
        """A picture was lost and no keyframe has begun to arrive since."""
        return self._lost_after is not None

    def round_trip_measured(self, seconds: float) -> None:
        """A round-trip sample: smoothed as TCP does (RFC 6298), so one delayed answer does not swing the timers."""
        if self.round_trip is None:
            self.round_trip = seconds
        else:
            self.round_trip += ROUND_TRIP_GAIN * (seconds - self.round_trip)

    def _repaired_after(self, seconds: float) -> None:
        taken = max(0.0, seconds)
        if taken >= self.repair_time:
            self.repair_time = taken
        else:
            self.repair_time += REPAIR_GAIN * (taken - self.repair_time)

    def missing(self) -> list[int]:
        """The seqs still asked for, oldest first."""
        return self._in_order(self._missing)

    def packet(self, seq: int, now: float, *, ends_frame: bool = True) -> list[int]:
        """A packet arrived (RTX unwrapped); returns the seqs it shows missing, to NACK now
        (counted as their first attempt). ``ends_frame``: its marker bit is set."""
        asked = self._missing.pop(seq, None)
        if asked is not None:
            self.repaired += 1
            if asked.times > 0:  # asked for (not a stalled frame's tail not yet NACKed)
                self._repaired_after(now - asked.first_at)
        elif (first_asked := self._given_up.pop(seq, None)) is not None:
            self._repaired_after(now - first_asked)  # too late: the next ones get longer
        if self._newest is not None and not uint16_gt(seq, self._newest):
            return []
        previous, self._newest = self._newest, seq
        self._newest_at = now
        self._frame_open = not ends_frame
        if previous is None:
            return []
        gap = uint16_add(seq, -previous) - 1
        if gap >= TRACKED_SPAN:  # the sender numbers anew: nothing here to ask for
            self._missing.clear()
            self._newest_keyframe_start = None
            return []
        shown = [s for s in (uint16_add(previous, offset) for offset in range(1, gap + 1)) if s != self._tail_abandoned]
        if self._tail_abandoned is not None and uint16_gt(seq, self._tail_abandoned):
            self._tail_abandoned = None  # shown and left out above; the 16-bit numbers come round again
        for missing in shown:
            self._missing[missing] = _Asked(times=1, at=now, first_at=now)
        self.nacks_sent += len(shown)
        self.forget_before(uint16_add(seq, -TRACKED_SPAN))
        start = self._newest_keyframe_start
        if start is not None and uint16_add(seq, -start) >= TRACKED_SPAN:
            self._newest_keyframe_start = None  # so old that 16-bit comparisons with it would mislead
        return shown

    def keyframe_started(self, seq: int) -> None:
        """The first packet of a keyframe arrived: a wish for one older than it is fulfilled."""
        if self._newest_keyframe_start is None or uint16_gt(seq, self._newest_keyframe_start):
            self._newest_keyframe_start = seq
        if self._lost_after is not None and not uint16_gt(self._lost_after, seq):
            self._lost_after = None

    def picture_lost(self, seq: int) -> None:
        """The picture up to ``seq`` is lost: ask for a keyframe at the next tick (if not asked already)."""
        if self._newest_keyframe_start is not None and not uint16_gt(seq, self._newest_keyframe_start):
            return  # a keyframe from there on is already arriving
        if self._lost_after is None:
            self._new_loss = True  # asked at once, unless a request went out within MIN_PLI_INTERVAL
            self._lost_after = seq
        elif uint16_gt(seq, self._lost_after):
            self._lost_after = seq

    def forget_before(self, seq: int) -> None:
        """Stop asking for packets older than ``seq``: the jitter buffer has moved past them."""
        for missing in [s for s in self._missing if uint16_gt(seq, s)]:
            del self._missing[missing]

    def waiting_for(self, seq: int) -> bool:
        """Whether ``seq`` is still asked for (False once it arrived, was abandoned or forgotten)."""
        return seq in self._missing

    def tick(self, now: float) -> list[Action]:
        """What to send now: a NACK of the packets due again, then a keyframe request if one is due."""
        interval = nack_interval(self.round_trip, self.repair_time)
        if self._frame_open and self._newest is not None and now - self._newest_at >= interval:
            # A frame stalled without its last packet: ask for the packet after the newest (a sender
            # that never sent it ignores the NACK), one at a time as each answer shows the next.
            tail = uint16_add(self._newest, 1)
            if tail not in self._missing and tail != self._tail_abandoned:
                self._missing[tail] = _Asked(times=0, at=float("-inf"), first_at=now)
        again: list[int] = []
        for seq in self._in_order(self._missing):
            asked = self._missing[seq]
            if now - asked.at < interval:
                continue
            if asked.times < NACK_ATTEMPTS:
                if not asked.times:
                    asked.first_at = now
                asked.times += 1
                asked.at = now
                again.append(seq)
            else:
                del self._missing[seq]
                self.abandoned_count += 1
                self._given_up[seq] = asked.first_at
                while len(self._given_up) > GIVEN_UP_KEPT:
                    del self._given_up[next(iter(self._given_up))]
                if self._newest is not None and uint16_gt(seq, self._newest):
                    self._tail_abandoned = seq  # not to be asked for again when the next packet shows it
                self.picture_lost(seq)
        actions: list[Action] = []
        if again:
            self.nacks_sent += len(again)
            actions.append(Nack(tuple(again)))
        wait = MIN_PLI_INTERVAL if self._new_loss else pli_interval(self.round_trip)
        if self._lost_after is not None and now - self._pli_at >= wait:
            self._pli_at, self._new_loss = now, False
            self.plis_sent += 1
            actions.append(Pli())
        return actions

    def _in_order(self, seqs: dict[int, _Asked]) -> list[int]:
        """``seqs`` oldest first, across the 16-bit wrap (all lie within :data:`TRACKED_SPAN` of the newest)."""
        newest = self._newest if self._newest is not None else 0

        def behind_newest(seq: int) -> int:  # negative for the seq after it (a stalled frame's tail)
            distance = uint16_add(newest, -seq)
            return distance - 0x10000 if distance >= 0x8000 else distance

        return sorted(seqs, key=behind_newest, reverse=True)
