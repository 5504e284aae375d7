"""When a recording upload waits for the live stream: the recording yields the uplink while the link is the limit.

The recording and the live view leave the user's machine on the same uplink. A
one-second segment of a changing screen is tens to hundreds of kilobytes; sent
while the live stream's estimate says the link is congested
(:attr:`peer.stream_budget.StreamBudget.congested`), it queues in front of the
technician's picture. So an upload of any size waits while the live stream is
congested, and for :attr:`UploadYield.calm_seconds` after (a congested link
clears and fills again within a second or two), for as long as the recording's
lag allows: the spool absorbs it. Once the oldest waiting segment is
:attr:`UploadYield.lag_share` of the policy's bound behind
(``recording_max_lag_seconds``, beyond which remote control pauses), uploads go
whatever the link says, so yielding never pauses control by itself.

The live stream needs the link to itself while its connection is set up and its
first picture is sent and sharpened, whatever its estimate says (it has none yet):
:func:`first_picture_due` is that window, in which uploads wait as they do while
the link is congested (with no calm after it). Sent then, the first segment (about
100 kB, recorded before there was a live stream) took about a third of a 1 Mbit/s
uplink while the first keyframe was being refined.

Small uploads (a still screen's repeats, a few hundred bytes) never wait.

Waiting alone is not enough: once the live stream has been calm for a moment the
upload goes, over TCP, which takes every bit the video leaves and fills the
bottleneck queue (measured at 1.5 Mbit/s and 150 ms: tbf's 200 ms queue full,
the video's estimate down to 0.4-0.7 Mbit/s, input waiting behind the queue).
So while the link limits the live picture (:meth:`StreamBudget.link_limited
<peer.stream_budget.StreamBudget.link_limited>`), an upload that goes is also
paced (:meth:`UploadYield.pace`): its body is written at
:attr:`UploadYield.link_share` of the live stream's target (before the upload's own
share), never below :data:`MIN_PACE`, a share that grows with the recording's lag to
:data:`TOP_SHARE` at :data:`RESERVE_SHARE` of the bound. A TCP sender that the application
holds below what the link has left keeps no queue at the bottleneck, and while the
link limits the picture the live stream leaves it that pace as it goes
(:attr:`peer.stream_budget.StreamBudget.upload_share`): at its whole target beside a
paced upload, a 1 Mbit/s link was overfilled by a quarter.

Unheld and paced is not enough either when the link cannot carry both: at 1
Mbit/s a scrolling screen records about 0.5-0.6 Mbit/s even at the limited
quality, and the live stream's estimate yields to a competing TCP upload only
slowly, so the lag passed the bound within 5 s of scrolling and control paused
(measured through the link emulator, `bench/link_sweep.py`, 1 Mbit/s and 150 ms).
So while the link limits the live stream, from :data:`RESERVE_SHARE` of the bound on, until the
lag is back under :data:`RELEASE_SHARE`, the live stream sets part of the link aside for the recording
(:meth:`UploadYield.reserve`, :meth:`peer.stream_budget.StreamBudget.reserve`), uploads
no longer wait for a congested stream, and they are written at :data:`RESERVE_PACE` times
that part (unpaced, TCP also took what the picture's refinement needed and filled the
bottleneck queue): :data:`CATCH_UP` times the rate at which the recording is
piling up now (the bytes of the segments of the last :data:`RECENT_SECONDS`), so it
catches up while the screen keeps changing, and at least what gets every waiting
segment stored before it is :data:`DEADLINE_SHARE` of the bound behind. The
technician's picture gets coarser and slower for those seconds; the evidence stays
whole and control goes on.

Once the screen settles (still for :data:`STILL_SECONDS`), the recording piles up no
more (a still screen's segments are repeats), and only the deadlines count: the
backlog of a scroll drains at about a segment a second, and the rest of the link
sharpens the technician's picture. How long the picture waits after a scroll is
the backlog the scroll left, so the part is set aside early (half a second behind)
and held: the recording takes its share of the link *while* the screen moves (the
picture is coarser and slower then) and little is left to drain when it settles. At a
3 s lag, a 1 Mbit/s link's scroll left 250-390 kB waiting, 2-3 s of the whole link,
and the picture 2 s after the scroll was 23-26 dB (``bench/link_sweep.py``).

Even so, spread evenly over the deadlines, the backlog and the settled screen's own
first segments (a keyframe each, 40-70 kB at 1 Mbit/s) took a fifth to a half of the
link in the two seconds the picture sharpens in, and the paced upload beside a
refinement sent at the whole target overfilled the link and cut the estimate: 25-30 dB
2 s after a scroll in half the runs. So while the settled picture sharpens (the caller
says so: the screen still, its last frames capped), uploads wait and nothing is set
aside, for as long as the deadlines allow: :meth:`UploadYield.defer_due` checks, every
time the lag is read, that every waiting segment would still be stored in time if the
uploads started :data:`DEFER_AHEAD` later at :data:`DEFER_LINK_SHARE` of what the link
carries. An earliest deadline then ends the wait, and the recording takes what it needs.

Pure logic, times passed in: seconds on one monotonic clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

TOP_SHARE = 0.5
"""A paced upload's share of the live stream's target just before :data:`RESERVE_SHARE` (from
:attr:`UploadYield.link_share` with no lag): about what the part set aside from there leaves the
recording on a narrow link (at 1 Mbit/s a changing screen records at 0.4-0.55 Mbit/s). Up to the whole
target, as before, the picture got its floor for the last part of the ramp."""
RESERVE_PACE = 1.1
"""While part of the link is set aside, uploads are written at this multiple of it (a little over: the
part is what stores the segments in time, and an upload's own round trips take some of it)."""
POLL_SECONDS = 0.25
"""How long a waiting upload sleeps before it asks again."""
MIN_PACE = 8_000
"""Bytes per second a paced upload never falls below (64 kbit/s: the recording still moves)."""
RESERVE_SHARE = 0.1
"""The live stream sets part of the link aside for the recording once it is this share of the bound behind
(0.5 s of the default 5 s: a segment stored within half a second of being made counts as keeping up). At 0.6
a scroll at 1 Mbit/s held the lag near 3 s and left 250-390 kB waiting when the screen settled, which the
deadlines then took before the picture could sharpen (23-26 dB 2 s after the scroll); at 0.3, 1.5-2 s and
about 200 kB (23-32 dB); at 0.1, 27-40 dB (single probe runs of the 1 Mbit/s cells, ``bench/link_sweep.py``).
Not while the first picture is on the way (the host's session holds the part back then)."""
CATCH_UP = 1.15
"""Past the reserve share, the live stream leaves the recording this multiple of the rate it piles up at
(more drains the lag sooner, but the live picture then gets next to nothing: at 1 Mbit/s the
limited recording of a scrolling screen alone takes half the link)."""
RECENT_SECONDS = 2.0
"""The rate the recording piles up at: the upload bytes per recorded second of the waiting segments that are
less than this far behind..."""
STILL_SECONDS = 0.5
"""...while the screen keeps changing: once it has been still this long, the recording piles up at nothing
(the segments of a still screen are repeats), whatever the last ones of the change cost."""
RELEASE_SHARE = 0.05
"""Once set aside, the recording's part of the link stays until the oldest waiting segment is less than this
share of the bound behind (a quarter of a second: the backlog is gone). Released the moment the lag fell back under
:data:`RESERVE_SHARE`, the part came and went with every stored segment, and the live stream's target
jumped from its floor to its whole memory and back twice a second (at 1 Mbit/s after a scroll: a new
frame cap, hence a keyframe, and the sharpening picture from 31.5 back to 27 dB)."""
SHORTEST_RATE_SECONDS = 1.0
"""A rate is measured over this many recorded seconds at least: a burst is no rate of 8x its size."""
DEADLINE_SHARE = 0.9
"""Past the reserve share, the live stream leaves the recording at least what gets each waiting segment stored
before it is this share of the bound behind (the rest of the bound: an upload's own round trips)."""
SOONEST_DEADLINE = 0.25
"""Seconds a segment already past its deadline is given: it gets the whole link, never an infinite rate."""
FIRST_PICTURE_SECONDS = 1.0
"""How long after the media connection is up the first picture has the link to itself (as long as the
recording's lag allows, :attr:`UploadYield.lag_share`): at 1 Mbit/s and 150 ms it reached 30 dB
1.1 s after the connection came up with an upload beside it (``bench/link_sweep.py``'s first legible
frame). Longer holds push the backlog into what the technician does next."""
DEFER_AHEAD = 1.0
"""While a settled picture sharpens, uploads wait only if every waiting segment would still be stored in time
when they started this many seconds from now (:meth:`UploadYield.defer_due`): the lag is read again half a
second later, and an upload's own round trips take some of the rest."""
DEFER_LINK_SHARE = 0.8
"""...at no more than this share of what the link carries: the rest is for the segments still to come (a
settled screen's first ones are a keyframe each, 40-70 kB at 1 Mbit/s) and the picture."""
PACE_CHUNK_BYTES = 4096
"""A paced upload's body is written in pieces of this size, each followed by the time it takes at the pace
(a piece leaves as a burst of three packets, which a bottleneck queue absorbs)."""


STILL_MARGIN_SECONDS = 0.01
"""How long after the screen has been still for :data:`STILL_SECONDS` the host looks (its clock must be past it)."""


def next_watch_due(interval: float, *, still_seconds: float, refining: bool) -> float:
    """Seconds until the host next looks at the recording's lag and tells the live stream what to leave it:
    every ``interval``, or sooner, just as a screen whose picture is being refined (``refining``) has been still
    (``still_seconds``) for :data:`STILL_SECONDS`, when its settled picture starts to sharpen: the uploads then
    wait and the part set aside for them is released at once. Found on the next regular look, the settled
    keyframe waited 0.25 s on average (up to ``interval``) behind the uploads, and at 1 Mbit/s came 1.5-2 s
    after the screen settled (``bench/link_sweep.py``)."""
    to_still = STILL_SECONDS - still_seconds
    if not refining or not to_still >= 0:  # NaN too
        return interval
    return min(interval, to_still + STILL_MARGIN_SECONDS)


def first_picture_due(connection_state: str | None, connected_at: float | None, now: float) -> bool:
    """Whether the live stream's media connection (``connection_state``, as aiortc says it; None when there
    is none) is being set up, or came up at ``connected_at`` less than :data:`FIRST_PICTURE_SECONDS`
    before ``now``: its first picture is on the way and being sharpened."""
    if connection_state in ("new", "connecting"):
        return True
    return connection_state == "connected" and connected_at is not None and now - connected_at < FIRST_PICTURE_SECONDS


@dataclass
class UploadYield:
    """Whether the next recording upload waits for the live stream, and for how long."""

    lag_share: float = 0.3
    """Uploads stop waiting once the recording is this share of the bound behind (or once the live stream
    leaves them part of the link, :meth:`reserve`, which it does sooner). Half the bound was measured too short at
    1 Mbit/s: a second of a changing screen still costs about 60 kB at the limited quality, and the
    backlog of 2.5 s did not drain before the bound."""
    calm_seconds: float = 2.0
    """Uploads keep waiting this long after the live stream was last seen congested."""
    small_bytes: int = 4096
    """Uploads of at most this many bytes never wait."""
    link_share: float = 0.25
    """A paced upload's rate: this share of the live stream's target bit rate (its target before any
    upload's share), growing with the lag to :data:`TOP_SHARE`."""
    _congested_at: float = field(default=float("-inf"), init=False)
    reserving: bool = field(default=False, init=False)
    """Part of the link is set aside for the recording (:meth:`reserve_due`); uploads then go at its pace."""
    reserved_rate: float = field(default=0.0, init=False)
    """Bit/s of the link set aside for the recording, as :meth:`reserve` last said."""
    may_defer: bool = field(default=False, init=False)
    """The deadlines allow uploads to wait for a sharpening picture (:meth:`defer_due`, as last asked)."""
    waited_seconds: float = field(default=0.0, init=False)
    """Seconds uploads were told to wait, in all (the figures and tests read it)."""

    def __post_init__(self) -> None:
        if not 0 < self.lag_share <= 1:
            raise ValueError("lag_share must be in (0, 1]")
        if not 0 < self.link_share <= 1:
            raise ValueError("link_share must be in (0, 1]")

    def wait(self, now: float, *, congested: bool, lag_seconds: float, max_lag_seconds: float, size: int,
             starting: bool = False, sharpening: bool = False) -> float:
        """Seconds to wait before an upload of ``size`` bytes (0: go now): the live stream is
        ``congested`` or not at ``now``, or ``starting`` (:func:`first_picture_due`: held as long,
        with no calm after), the oldest waiting segment ``lag_seconds`` behind, and the policy
        pauses control beyond ``max_lag_seconds``. Never while part of the link is set aside for the
        recording (:attr:`reserving`), unless the stream is starting; always while its settled
        picture is ``sharpening`` and the deadlines allow (:attr:`may_defer`)."""
        if congested:
            self._congested_at = now
        if size <= self.small_bytes:
            return 0.0
        if sharpening and self.may_defer:
            self.waited_seconds += POLL_SECONDS
            return POLL_SECONDS
        if self.reserving and not starting:
            return 0.0
        room = max_lag_seconds * self.lag_share - lag_seconds
        if room <= 0 or (not starting and now - self._congested_at >= self.calm_seconds):
            return 0.0
        wait = min(POLL_SECONDS, room)
        self.waited_seconds += wait
        return wait

    def pace(self, *, live_limit: float | None, lag_seconds: float, max_lag_seconds: float,
             sharpening: bool = False) -> float | None:
        """Bytes per second an upload's body should be written at now (None: as fast as it goes).

        Paced while the link limits the live stream (``live_limit``: its target bit rate then,
        None while it is not limited): to a share of it while the oldest waiting segment, ``lag_seconds``
        behind, is within :data:`RESERVE_SHARE` of ``max_lag_seconds``, and at :data:`RESERVE_PACE` times
        the part the live stream sets aside while it does (:meth:`reserve`); at :data:`MIN_PACE` while the
        settled picture is ``sharpening`` and the deadlines allow it (:attr:`may_defer`). Asked again for
        each piece of the body.
        """
        if live_limit is None:
            return None
        if sharpening and self.may_defer:
            return float(MIN_PACE)
        if self.reserving:
            # At what the live stream leaves it: unpaced, TCP took what refinement needed as well, filled the
            # bottleneck queue, and the picture's cut by loss left it less still.
            return max(float(MIN_PACE), RESERVE_PACE * self.reserved_rate / 8)
        most_lag = max_lag_seconds * RESERVE_SHARE
        if lag_seconds >= most_lag:
            return None
        if not live_limit > 0:  # NaN too
            return float(MIN_PACE)
        # From the share at no lag up to TOP_SHARE at the reserve share: a recording that falls behind
        # catches up without a cliff from a share to the part set aside for it.
        share = self.link_share + (max(self.link_share, TOP_SHARE) - self.link_share) * max(0.0, lag_seconds) / most_lag
        return max(float(MIN_PACE), live_limit / 8 * share)

    def reserve_due(self, *, lag_seconds: float, max_lag_seconds: float) -> bool:
        """Whether the live stream sets part of the link aside (:meth:`reserve`) now, the oldest waiting
        segment ``lag_seconds`` behind: from :data:`RESERVE_SHARE` of ``max_lag_seconds`` on, and once
        set aside, until the lag is back under :data:`RELEASE_SHARE` of it. Asked every time the lag
        is read (it remembers which side it is on)."""
        share = RELEASE_SHARE if self.reserving else RESERVE_SHARE
        self.reserving = lag_seconds > 0 and lag_seconds >= max_lag_seconds * share
        return self.reserving

    def release(self) -> None:
        """Set nothing aside any more (the link no longer limits the live stream): uploads go as before."""
        self.reserving = False
        self.reserved_rate = 0.0
        self.may_defer = False

    def defer_due(self, waiting: Sequence[WaitingSegment], *, max_lag_seconds: float, capacity: float) -> bool:
        """Whether uploads may wait while the live stream's settled picture sharpens (and nothing is set aside
        for them): every one of the ``waiting`` segments (oldest first) would still be stored before it is
        :data:`DEADLINE_SHARE` of ``max_lag_seconds`` behind if uploads started :data:`DEFER_AHEAD` from now
        and took :data:`DEFER_LINK_SHARE` of ``capacity`` (bit/s the link carries, the recording's part
        included). Asked every time the lag is read; remembered in :attr:`may_defer`."""
        deadline = max_lag_seconds * DEADLINE_SHARE
        allowed = capacity > 0  # NaN too
        total = 0
        for segment in waiting:
            if not allowed:
                break
            total += segment.upload_bytes
            left = deadline - segment.lag_seconds - DEFER_AHEAD
            allowed = left > 0 and 8 * total <= DEFER_LINK_SHARE * capacity * left
        self.may_defer = allowed
        return allowed

    def reserve(self, waiting: Sequence[WaitingSegment], *, max_lag_seconds: float,
                still_seconds: float = 0.0) -> float:
        """Bit/s the live stream should leave the recording now (0: none): once :meth:`reserve_due` for
        the oldest of the ``waiting`` segments (oldest first), the larger of :data:`CATCH_UP` times the
        rate the recording piles up at (:data:`RECENT_SECONDS`; nothing once the screen has been still,
        ``still_seconds``, for :data:`STILL_SECONDS`) and what stores every segment before it is
        :data:`DEADLINE_SHARE` of ``max_lag_seconds`` behind."""
        self.reserved_rate = 0.0
        if not waiting or not self.reserve_due(lag_seconds=waiting[0].lag_seconds, max_lag_seconds=max_lag_seconds):
            return 0.0
        deadline = max_lag_seconds * DEADLINE_SHARE
        in_time = 0.0
        total = 0
        for segment in waiting:
            total += segment.upload_bytes
            in_time = max(in_time, total / max(SOONEST_DEADLINE, deadline - segment.lag_seconds))
        piling_up = 0.0
        if still_seconds < STILL_SECONDS:
            recent = [segment for segment in waiting if segment.lag_seconds < RECENT_SECONDS]
            piling_up = sum(segment.upload_bytes for segment in recent) / max(
                SHORTEST_RATE_SECONDS, sum(segment.seconds for segment in recent))
        self.reserved_rate = 8 * max(in_time, CATCH_UP * piling_up)
        return self.reserved_rate


@dataclass(frozen=True)
class WaitingSegment:
    """A recorded segment not yet stored at the broker, as :meth:`UploadYield.reserve` weighs it."""

    upload_bytes: int
    """What its upload takes (a continued segment's own frames; a repeat's few hundred bytes)."""
    lag_seconds: float
    """How far behind it is, as :meth:`host_client.recorder.RecordingUploader.lag_seconds` says of the oldest."""
    seconds: float
    """The seconds of screen it records."""
