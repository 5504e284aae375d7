"""How often to send a screen frame, and at what scale, for what the link carries.

Desktop video is mostly text. An encoder squeezed to a bitrate raises its
quantiser and text turns to mush long before the picture looks "low
resolution". Deskhand's encoder therefore codes at constant quality
(:mod:`peer.screen_encoder`), and :class:`StreamBudget` fits the stream to the
link by sending *fewer frames* (a technician reads text at 8 fps just fine)
and, only when even the lowest frame rate is too much, *smaller frames*, one
scale step at a time, held for a while so a wobbling estimate cannot cause a
keyframe storm (a new size means a new encoder and a keyframe).

The link speaks through the receiver's estimate (REMB). A REMB estimator never
reports much above what it receives (aiortc caps it at 1.5x the incoming rate,
Chromium similarly), so the estimate is not a capacity to fill, and after a
quiet minute it is low only because little came in: it then climbs with what
arrives. It means *congestion* when we send more than it says and it has
stopped climbing (the estimator saw queues grow and holds at, or drops to, a
share of what gets through). The frame rate follows the classic AIMD rule:
multiplicative decrease on congestion, additive increase otherwise.

An estimate also lags: aiortc's measures what arrived over its last second and
then climbs 8 % a second, so when a scroll follows typing it still says what
typing sent (706 kbit/s against 1.47 Mbit/s sent, in a loopback log). On an
*untried* link (no congestion for :data:`UNTRIED_AFTER` seconds, or ever) a low
estimate therefore counts only once the stream has been above the estimates for
the estimator's window (:data:`ESTIMATOR_WINDOW`) and they *fell* since it rose
(the estimator's decrease: 0.85x what arrived), or once it has been above them
for :data:`ESTIMATE_STALE` seconds. Once the link has pushed back, a low
estimate is believed at once.

The budget also says how many bits the stream may spend (:meth:`StreamBudget.target_bitrate`),
which caps every frame (:meth:`StreamBudget.frame_cap`, applied by the encoder as x264's
VBV) and paces the packets (``peer.pacer``). Since a bare estimate is no capacity,
the target is a *capacity memory*:

* :data:`START_BITRATE` before any estimate: the first frames (the first keyframe
  above all) fit a 1 Mbit/s link. aiortc's estimator says nothing for the first
  ~3 s of video, so this start carries the whole first picture;
* an estimate above the memory raises it at once. It can only be above because the
  stream pushed that much through (the estimator caps itself at 1.5x what arrives);
* the budget probes by itself: aiortc's estimator starts from what arrived in its
  first 3 s (a quiet screen: next to nothing) and then climbs only 8 % a second, so
  while the stream wants more than its target the target grows until the link
  pushes back (an estimate under congestion, or dropped frames). On an untried link
  the stream wants more when it goes over the target or sends capped frames faster
  than refinement would (a moving screen), from :data:`UNTRIED_PROBE_AFTER` after
  its first frame on (before, the first picture is still being sharpened); the target then grows
  :data:`UNTRIED_PROBE_PER_SECOND` a second, at once and at least to what is sent, and
  the frame rate is *not* cut: a scroll after typing keeps its frame rate on a fast
  link, and a narrow one pushes back within a second or two. Either probe stops at
  :data:`PROBE_CEILING` times what the link has shown it carries (a receiver report
  with next to no loss, or the estimate): a report comes about once a second, and a
  fast link's next one lifts the ceiling. On a link that pushed
  back (within :data:`UNTRIED_AFTER`), the stream wants more when it went over its
  target (and the frame rate was cut to fit); after :data:`PROBE_QUIET` seconds
  without congestion the target grows :data:`PROBE_PER_SECOND` a second. Refinement
  alone never probes: it fits the target by construction and keeps to its interval;
* an estimate while congested (see above) replaces the memory, down or up: it is what
  the link carries now. Not an estimate below :data:`STALE_SHARE` of what receiver reports
  showed getting through lately: it speaks of a quieter past (the estimator's decrease takes
  what arrived over its last second), not of congestion. And within :data:`PROBE_QUIET` of a
  cut for lost packets or dropped frames, an estimate only lowers the memory: the report of
  what arrived outranks the estimate's view of delay;
* an estimate below the memory on an uncongested link is a quiet screen, not a
  narrow link: the memory stays, and only its part above :data:`START_BITRATE` (or
  above the newest estimate) decays, with a half-life of :data:`CAPACITY_HALF_LIFE`,
  so a capacity seen long ago is not trusted forever;
* dropped frames (the pacer's queue overflowed, :meth:`StreamBudget.frames_dropped`)
  are congestion: the memory is cut below what was sent, the frame rate too;
* so is a receiver report of heavy loss (:meth:`StreamBudget.receiver_loss`, over
  :data:`LOSS_CONGESTED`): the memory is cut below what got through, of what was sent while
  the lost packets went out (:data:`REPORT_SPAN`). It bounds the untried link's probing where
  the estimator stays silent.

The memory is the link's. A recording upload written at a pace (the host's
:meth:`~host_client.upload_yield.UploadYield.pace`) takes that pace off the target while it
goes (:meth:`StreamBudget.uploading`), and an estimate or a cut made meanwhile counts it as
carried: the link carried the video and the upload. While part of it is set aside for the
session's recording, the stream's target is what the link carried when the share was first set
aside (the memory; on an untried link, the newest estimate and a paced upload's share when lower) less the share
(:meth:`StreamBudget.reserve`): the recording leaves the user's machine on the same uplink, and
once it falls far enough behind that remote control would soon pause, the live picture makes
room for it (the host's
:class:`~host_client.upload_yield.UploadYield` says how much). An estimate or dropped
frames while a share is set aside speak of the video alone, squeezed by the share:
the memory then holds (neither estimates nor probes move it), and dropped frames
or lost packets cut it below what got through plus what the uploads took at their pace
(the share counts only as far as uploads went).

The order of degradation is frame rate, then scale (both above, driven by the
estimate, and the frame rate also by the stream going over its own target on a link
that pushed back; both are what a *moving* screen costs, and a screen that settles
goes back to full size, :meth:`StreamBudget.settled`), then
quality: the frame cap makes x264 raise its quantiser only when a frame would not
fit; the capture then *refines* (re-sends the settled screen while the last frame
was capped, :attr:`StreamBudget.last_frame_capped`) until the picture is back at
full quality.

Pure logic: the capture track asks :meth:`StreamBudget.interval` and reads
:attr:`StreamBudget.scale`; the encoder reports :meth:`StreamBudget.sent` and
:meth:`StreamBudget.link_bitrate`. Times are seconds on one monotonic clock.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

SCALES: tuple[float, ...] = (1.0, 0.75, 0.5)
"""Picture scales tried in order while the link stays congested at the lowest frame rate."""
SETTLED_SECONDS = 0.25
"""Seconds a screen is still before a smaller scale taken for motion ends (:meth:`StreamBudget.settled`): the
capture's first refinement of a settled screen comes 0.3 s after its last change (`host_client.capture.REFINE_AFTER`)."""
RATE_WINDOW = 1.0
"""Seconds of sent frames the send rate is measured over."""
INCREASE_PER_SECOND = 5.0
"""Frames per second the frame-rate cap regains each second without congestion."""
HEADROOM = 0.9
"""On congestion, aim this far below the estimate, so queues on the path drain."""
CLIMB = 1.05
"""An estimate above this multiple of the one a window ago is still climbing (no congestion yet)."""
START_BITRATE = 1_000_000.0
"""Bit/s the stream fits before any estimate: its first keyframe, capped to :data:`FIRST_KEYFRAME_WINDOW`
of it, is legible at once and leaves a 1 Mbit/s link within 0.7 s."""
MIN_BITRATE = 150_000.0
"""The target never goes below this (a 1080p keyframe cannot be made much smaller; scale helps below)."""
CAPACITY_HALF_LIFE = 30.0
"""Seconds in which a remembered capacity above the start (and above the newest estimate) halves."""
KEYFRAME_WINDOW = 0.2
"""Seconds of budget the largest frame may take (a keyframe, or the first change after a pause): on a
1 Mbit/s link 25 kB, gone in 0.2 s, inside a bottleneck queue of 200 ms."""
FIRST_KEYFRAME_WINDOW = 0.7
"""Seconds of budget the stream's very first frame may take: the technician is waiting for a picture,
and one legible keyframe costs fewer bytes than a blurred one and its refinement. At the 1 Mbit/s
start, on the benchmark's 1080p text (``bench/first_picture.py``): 51 kB at 30.8 dB, legible in one
frame, where 0.2 s gave 18.8 kB at 23.5 dB and took 66.5 kB in 7 frames to 30 dB; through a 1 Mbit/s,
150 ms link the first legible frame came 0.25-0.4 s sooner, and 40 dB 0.6-0.9 s sooner. Paced at 1.5x
the target, it leaves a 1 Mbit/s link's 200 ms bottleneck queue a third full at most. The cap in
force then falls to :data:`KEYFRAME_WINDOW` on the first frame too large for it (:func:`recap_due`)."""
SETTLED_KEYFRAME_WINDOW = 1.5
"""Seconds of budget the keyframe of a screen that settled after capped motion may take
(:meth:`StreamBudget.settled_frame_cap`). Refinement frames sharpen a picture x264 made coarse at
a far lower cost per dB from a good picture than from a coarse one: on the benchmark's 1080p text a
keyframe at 22.5 dB (14 kB) and its refinement took 169 kB to 40 dB (``bench/first_picture.py``),
where one keyframe of 96 kB is 38.7 dB and one of 117 kB 41.3 dB (x264 alone, the cap as here). At
1 Mbit/s the coarse picture a scroll left climbed 3 dB a second and was 29-35 dB 2 s after the screen
settled (through the link emulator, ``bench/link_sweep.py``). The picture is still then: the link has
nothing else to carry for the live view, and the keyframe leaves, paced, in about a second."""
SETTLED_FRAMES_OF_REFILL = 4
"""The settled keyframe's cap refills this share of its burst per frame: x264 lets one frame take its whole
VBV buffer only while the buffer holds fewer than five frames' refill, and half of it otherwise (with the
per-frame allowance of the target, the keyframe came out at 49 kB under an 85 kB burst)."""
CAPPED_SHARE = 0.25
"""A frame that used at least this share of its per-frame allowance counts as capped: x264 would have
liked more, and the settled screen is encoded again to sharpen it. Measured at 1 Mbit/s on 1080p text
(4.2 kB a frame): refinement frames take 1.9-5 kB (the first after a keyframe less, the keyframe drained
the VBV buffer) until the picture is at full quality, then fall to 1 kB, 0.3 kB, 23 bytes. Taking a
sharp picture for capped costs one small frame; the reverse would leave it blurred."""
REFINE_FPS = 15.0
"""Frames a second at which a capped picture is refined at most, and so what the per-frame allowance is
sized for (1/15 s of the target: 8.3 kB at 1 Mbit/s). Refinement sharpens as fast as the link allows only
if the host encodes that many frames a second (1080p: 10-25 ms each); 60 would not keep up."""
REFINE_SHARE = 0.8
"""Refinement spends at most this share of the target: the rest drains what a keyframe's burst left in
the bottleneck queue and carries input and RTCP. (At the full target, through a 1 Mbit/s tbf and no
pacer, the queue never drained, every frame lost packets, and no picture came after the first.)"""
PROBE_PER_SECOND = 2.0
"""On a link that pushed back (see :data:`UNTRIED_AFTER`): while the stream presses on its target (it
sent more than the target within the last :data:`PROBE_QUIET` seconds, so the frame rate was cut to
fit) and no congestion was seen for :data:`PROBE_QUIET` seconds, the target grows by this factor a
second: aiortc's estimator starts at what arrived in its first 3 s (a quiet screen: next to nothing)
and then climbs 8 % a second, far too slowly to lead."""
OVER_TARGET = 1.1
"""The stream sends more than its target above this multiple of it (a one-second window can hold one
frame too many at its edges, and x264 keeps to its allowance on average, not to the byte)."""
PROBE_QUIET = 2.0
"""Seconds after congestion (an estimate's or dropped frames) before the target probes upwards again."""
UNTRIED_AFTER = 60.0
"""Seconds without congestion after which the link counts as *untried* again (and at the start): nothing
it did says it is narrow, so a stream pressing on its target is not held to it (see
:data:`UNTRIED_PROBE_PER_SECOND`)."""
UNTRIED_PROBE_PER_SECOND = 8.0
"""On an untried link, the target of a stream pressing on it grows by this factor a second, at once and
at least to what the stream sends, and the frame rate is not cut to it: a scroll after typing (1 Mbit/s
target, 4-7 Mbit/s wanted) would otherwise spend seconds at a third of its frame rate while the target
climbs, on loopback as on a LAN. A narrow link pushes back within a second or two (the estimator's
decrease, or the pacer's dropped frames), and from then on the careful rules hold."""
UNTRIED_PROBE_AFTER = 3.0
"""Seconds after the stream's first frame before an untried link's probe may start. Until then the
receiver has hardly spoken (aiortc's first estimate comes 1-3 s into the video) and the first picture
is still being sharpened: every frame is capped, typing's too, whatever the link carries. Probing then
took a 1 Mbit/s link's target to 2.5 Mbit/s within a second of typing (0 ms, through the link
emulator): lost packets, three keyframes in 1.3 s and typing marks 0.2-1 s late, before the estimate
said congestion."""
MOVING_SHARE = 0.85
"""A capped frame that follows a capped frame within this share of the refinement interval comes from a
moving screen, not from refinement (whose frames keep to that interval)."""
ESTIMATOR_WINDOW = 1.0
"""Seconds over which the estimator measures what arrives (aiortc: a 1 s rate counter): on an untried
link, an estimate made within this long after the stream rose above it is about the quieter past, not
congestion."""
ESTIMATE_STALE = 3.0
"""Seconds the stream may stay above, on an untried link, an estimate that has not fallen since before it rose (the
estimator holding a figure from a quiet screen) before that estimate counts as congestion anyway."""
RECAP_RATIO = 1.5
"""A new frame cap means a new encoder, hence a keyframe under it (the picture blurred and refined again):
the cap in force is lowered only when the wanted one is this factor below it..."""
RECAP_UP_RATIO = 3.0
"""...and raised only when the wanted one is this factor above it: a 1080p text keyframe under the new
cap is blurred again and refined for about a second, and every typed character meanwhile rides in a
capped refinement frame. At 2.5 Mbit/s (150 ms, 1 % loss) a raise from the 1 Mbit/s start to 1.8 Mbit/s
cost a 35 kB keyframe and 0.8 s more of refinement in the first seconds of typing, for frames that were
only 1.8x larger."""
RECAP_HOLD = 2.0
"""...and this many seconds after the last change (or the last try, see :func:`recap_due`)."""
LOSS_CONGESTED = 0.1
"""A receiver report saying more than this share of the video's packets were lost since the last one is
congestion (GCC's loss-based rule, draft-ietf-rmcat-gcc-02 section 6: over 10 % the sender backs off,
under 2 % it may grow). Random loss on a bad Wi-Fi or mobile link stays below it (and NACK/RTX recovers
it); a stream sent at several times what the link carries loses most of its packets. On an untried link
this is often the first word: a REMB estimator that misses the queue's growth (behind a relay, with loss
either way) keeps climbing 8 % a second while the stream probes far above the link (seen on a 2.5 Mbit/s
link with 1 % loss: a 135 Mbit/s target, and the scroll's every frame broken)."""
LOSS_CONGESTED_PACKETS = 2
"""...and of at least this many packets, when the sender knows how many (the report's cumulative count):
one packet of a typing stream's seven or eight a second is 13-15 % lost, and at 2 % random loss one report
in seven or so of typing says so. Taken for congestion, such a report cut a 2.5 Mbit/s link's memory to
0.27 Mbit/s, and the recording's share kept it there for the scroll and the 6 s after it (through the link
emulator). A queue that overflows drops a frame's packets in runs."""
NACK_WINDOW = 0.5
"""Seconds of NACKs weighed against the packets sent over the same time (:meth:`StreamBudget.packets_nacked`)."""
NACK_CONGESTED_PACKETS = 8
"""Packets NACKed within :data:`NACK_WINDOW` from which a share over :data:`LOSS_CONGESTED` is congestion: the
receiver's NACKs come a round trip after the loss, the receiver report up to a second later. A probe of an
untried 1 Mbit/s link to 2.25 Mbit/s at a scroll's start lost 38 % and then 54 % of its packets, reported 1.1 s
into the scroll, two keyframes asked for meanwhile (through the link emulator). Random loss does not come in
runs that long: 2 % of a 1 Mbit/s stream is about one packet in half a second, and 8 lost of a 20 Mbit/s link's
packets in half a second with no queue overflowing is a tenth of them."""
RTP_PAYLOAD_BYTES = 1200
"""About how much of a frame one RTP packet carries (aiortc packetizes H.264 under 1300 bytes)."""
LOSS_FREE = 0.02
"""A receiver report of at most this share lost shows the link carried what was sent meanwhile (GCC's
"under 2 %": the sender may grow)."""
PROBE_CEILING = 3.0
"""A probe never takes the target above this multiple of what the link has shown it carries (the
most sent over a report that lost at most :data:`LOSS_FREE`, or the receiver's estimate; the start
while neither has spoken), over :data:`PROVEN_SECONDS`. A loss report comes about once a second:
unbounded, the untried probe followed a scroll's 10 Mbit/s on a 2.5 Mbit/s link to a 29 Mbit/s
target, and its keyframes (0.2 s of target: 730 kB) could never arrive. On a fast link the next clean
report lifts the ceiling. The start is no evidence once the link has spoken: counted beside the
reports of typing (0.3 Mbit/s) and an estimate of it, it let a scroll's first half second probe a
1 Mbit/s link to 3 Mbit/s, and 74 % of the next second's packets were lost (through the link emulator)."""
REPORT_SPAN = 2.0
"""Seconds back a receiver report's loss is weighed against what was sent: the most sent in any
:data:`RATE_WINDOW` of them. A report covers the packets since the one before (about a second apart)
and arrives a path delay and a queue after them, read with the next frame; by then the stream may send
far less. Weighed against the rate sent then, 19 % lost at 1 Mbit/s and 150 ms put the memory at its
150 kbit/s floor (typing had sent 0.9 Mbit/s and slowed to 0.19), and shares set aside for the
recording kept it near there for the whole session (through the link emulator). Frames the pacer drops are
weighed the same way: they waited behind what the stream sent before a cut slowed it, and weighed against
the rate sent after it, they cut a 1 Mbit/s link's memory from 0.71 to 0.46 Mbit/s 0.5 s after the cut."""
PROVEN_SECONDS = 60.0
"""Seconds a rate the link carried counts for the probe's ceiling."""
STALE_SHARE = 0.5
"""An estimate below this share of what receiver reports showed getting through (with loss short of
:data:`LOSS_CONGESTED`) within :data:`GOT_THROUGH_SECONDS` speaks of a quieter past, not of congestion now.
aiortc's estimator, on seeing queues grow, falls to 0.85x what arrived over its last second and then climbs
a few kbit/s a second: when a scroll's first large frames follow quiet typing, what arrived was typing's.
Taken for the link, 153 kbit/s (while reports showed 0.87-0.95 Mbit/s getting through without loss) and 94
kbit/s held a 1 Mbit/s link's picture at its floor through the scroll and the 6 s after it (through the link
emulator). A link that really narrowed loses packets: its reports cut the target (:data:`LOSS_CONGESTED`)."""
GOT_THROUGH_SECONDS = 10.0
"""Seconds what got through counts against a low estimate (:data:`STALE_SHARE`)."""
CARRIED_SECONDS = 3.0
"""Seconds what the link was seen carrying in all (:meth:`StreamBudget.upload_stored`) counts for the capacity.
The receiver's estimate (REMB) speaks of the video alone, and while the recording's paced upload of a scroll
shares a 1 Mbit/s link it fell to 0.25-0.38 Mbit/s (the upload's queue at the bottleneck is delay to it)
where video and upload got 0.75-0.8 Mbit/s through together. Taken for the link once the screen settled,
0.36-0.49 Mbit/s kept the uploads from waiting for the sharpening picture (their deadlines looked out of
reach) and left its keyframe 0.6 s behind them: 26-38 dB 2 s after the scroll in 2 of 4 cells, against
42-43 dB where the memory had kept 0.74-0.87 Mbit/s (``bench/link_sweep.py``)."""
LINK_EVIDENCE_SECONDS = 10.0
"""Seconds after the last sign of congestion (an estimate's, or frames the pacer dropped) during which
the link counts as what limits the picture (:meth:`StreamBudget.link_limited`)."""


@dataclass
class RecentMost:
    """The largest of the values noted within the last ``seconds`` (a sliding-window maximum)."""

    seconds: float
    _kept: deque[tuple[float, float]] = field(default_factory=deque, init=False)
    """(when, value), values descending: a value is dropped once a later one is as large (it can never be
    the largest again), so the deque stays short."""

    def note(self, value: float, now: float) -> None:
        """``value`` was seen at ``now``."""
        self._forget(now)
        while self._kept and self._kept[-1][1] <= value:
            self._kept.pop()
        self._kept.append((now, value))

    def most(self, now: float) -> float:
        """The largest value noted within the last :attr:`seconds` of ``now``; 0 when none was."""
        self._forget(now)
        return self._kept[0][1] if self._kept else 0.0

    def _forget(self, now: float) -> None:
        while self._kept and self._kept[0][0] <= now - self.seconds:
            self._kept.popleft()


@dataclass(frozen=True)
class FrameCap:
    """How large frames may be: ``frame_bytes`` per frame sustained, ``burst_bytes`` for any single frame."""

    frame_bytes: int
    """One frame-time of budget: what each frame adds to the allowance (x264's VBV refill per frame)."""
    burst_bytes: int
    """:data:`KEYFRAME_WINDOW` of budget: no frame is larger (x264's VBV buffer)."""


Box = tuple[int, int, int, int]
"""(top, bottom, left, right) of a rectangle of a frame in pixels, bottom and right exclusive."""


@dataclass(frozen=True, eq=False)
class FrameTag:
    """What rides in ``frame.opaque`` from the capture to the encoder: the stream's budget, inside an
    object of the frame's own.

    PyAV keys opaque values by ``id()`` and forgets the key when *any* frame holding it is
    freed, so a budget set directly on consecutive frames vanishes from a newer frame as
    soon as an older one is garbage-collected (measured: every frame after the first lost it).
    """

    budget: StreamBudget
    repeat: bool = False
    """The frame shows the picture sent last again (a refinement, a keep-alive), not a new one."""
    changed_share: float = 0.0
    """The share of the picture that changed since the frame before (its rows; 0 for a repeat, and when not
    known)."""
    still_seconds: float = 0.0
    """For a repeat: how long the screen has been still (0 for a new picture, and when not known)."""
    changed_boxes: tuple[Box, ...] = ()
    """For a new picture while the picture is refined: the rectangles that changed, (top, bottom, left, right) in
    the frame's pixels, bottom and right exclusive (empty: not measured; the encoder then codes the frame whole)."""


RecapDirection = Literal["fall", "rise"]
"""Which way the frame cap in force is to follow the budget."""


def recap_due(in_force: FrameCap, wanted: FrameCap, held_for: float) -> RecapDirection | None:
    """Whether the encoder, under the cap ``in_force`` for ``held_for`` seconds, is to take ``wanted``:
    "fall" or "rise" after :data:`RECAP_HOLD` seconds and a fall of at least :data:`RECAP_RATIO` (of the
    per-frame allowance or of the burst) or a rise of at least :data:`RECAP_UP_RATIO`; None otherwise.

    The change costs a keyframe, so a due one waits for the frame that needs it (the encoder's
    judgement): a keyframe made anyway takes it for free; a rise is taken while the picture is
    below full quality (the last frame was capped), where the larger cap sharpens it faster; a fall
    only once a frame of a new picture made under the cap in force is larger than any ``wanted`` allows
    (its burst), and a keyframe under ``wanted`` is smaller still. A screen that is sharp, or sharpening in frames the refinement already
    spaces for the lower target, keeps its picture: at 1 Mbit/s and 150 ms the estimate swung between
    0.24 and 1.9 Mbit/s after the first picture, and each swing's keyframe threw a 44 dB picture back
    to 22 dB, three times in 5 s."""
    if held_for < RECAP_HOLD:
        return None
    ratio = wanted.frame_bytes / in_force.frame_bytes
    if min(ratio, wanted.burst_bytes / in_force.burst_bytes) <= 1 / RECAP_RATIO:
        return "fall"  # smaller frames, or a smaller burst (the first frame's window)
    if ratio >= RECAP_UP_RATIO:
        return "rise"
    return None


@dataclass
class StreamBudget:
    """Frame pacing and scale for one outgoing screen stream."""

    max_fps: float = 30.0
    min_fps: float = 5.0
    scale_hold: float = 5.0
    """Seconds a scale is kept before it may change again."""

    scale: float = 1.0
    fps_cap: float = field(init=False)
    _sent: deque[tuple[float, float]] = field(default_factory=deque, init=False)
    _sent_lately: RecentMost = field(default_factory=lambda: RecentMost(REPORT_SPAN), init=False)
    """The send rate after each frame, for the most sent within :data:`REPORT_SPAN` (:meth:`_reported`)."""
    _uploaded_lately: RecentMost = field(default_factory=lambda: RecentMost(REPORT_SPAN), init=False)
    """What the paced uploads took after each frame, for the most within :data:`REPORT_SPAN` (:meth:`_reported`)."""
    _link: float | None = field(default=None, init=False)
    _estimates: deque[tuple[float, float]] = field(default_factory=deque, init=False)
    _updated_at: float | None = field(default=None, init=False)
    _cut_at: float = field(default=float("-inf"), init=False)
    """When the frame rate was last cut (:meth:`_cut`)."""
    _pushed_back_at: float = field(default=float("-inf"), init=False)
    """When the memory was last cut for congestion the sender saw (:meth:`_pushed_back`)."""
    congested: bool = field(default=False, init=False)
    """The latest estimate said the link is congested, or frames were dropped (until a newer estimate
    says otherwise, or :data:`PROBE_QUIET` seconds pass without either)."""
    _scale_changed_at: float = field(default=float("-inf"), init=False)
    _capacity: float = field(default=START_BITRATE, init=False)
    _congestion_at: float = field(default=float("-inf"), init=False)
    _over_target_at: float = field(default=float("-inf"), init=False)
    _nacked: deque[tuple[float, int]] = field(default_factory=deque, init=False)
    """(when, packets): NACKs of packets not NACKed before, over the last :data:`NACK_WINDOW`."""
    _last_frame_bits: float = field(default=0.0, init=False)
    """The last whole frame's bits (a partial one leaves the rest of the picture to the refinement)."""
    _partial_bits: float = field(default=0.0, init=False)
    """Bits of the partial frames sent since the last whole frame: the refinement leaves the link to them."""
    whole_frame_at: float | None = field(default=None, init=False)
    """When the encoder last sent a whole frame (not a partial one: :meth:`sent`); refinement is spaced from it."""
    _capacity_at: float | None = field(default=None, init=False)
    reserved: float = field(default=0.0, init=False)
    """Bit/s of the link set aside for the recording's uploads (:meth:`reserve`); the target is the rest."""
    upload_share: float = field(default=0.0, init=False)
    """Bit/s a paced recording upload takes of the link now (its pace; 0 between uploads): the target
    leaves it, the capacity memory stays. The host sets it while the link limits the picture
    (:meth:`link_limited`). A paced upload beside a stream at its whole target overfilled a 1 Mbit/s
    link by a quarter: lost packets, a keyframe, typing marks late, and in one run control paused
    (through the link emulator). Set on links that were merely unproven it cost 2.5-8 Mbit/s links
    sharpness and scrolling frames (19.6 against 42.2 dB, 20 against 28 fps, single runs)."""
    _uploads: deque[tuple[float, float]] = field(default_factory=deque, init=False)
    """(since, bit/s): the paced uploads' shares of the last :data:`ESTIMATOR_WINDOW` or so (:meth:`uploading`)."""
    _shared_until: float = field(default=float("-inf"), init=False)
    """When the last share was released: estimates for a while after still speak of the squeezed video."""
    _shared: float | None = field(default=None, init=False)
    """What the link carried when a share was first set aside (:meth:`reserve`); None while none is."""
    _proven: RecentMost = field(default_factory=lambda: RecentMost(PROVEN_SECONDS), init=False)
    """Rates the link carried with next to no loss, for the probe's ceiling (:data:`PROBE_CEILING`)."""
    _got_through: RecentMost = field(default_factory=lambda: RecentMost(GOT_THROUGH_SECONDS), init=False)
    """What got through (sent less the lost share) by reports short of congestion, to tell an estimate
    about the past (:data:`STALE_SHARE`)."""
    _stored: tuple[float, float] | None = field(default=None, init=False)
    """(when, bit/s): the newest recording upload the broker stored, and the rate it went at (:meth:`upload_stored`)."""
    _carried: RecentMost = field(default_factory=lambda: RecentMost(CARRIED_SECONDS), init=False)
    """What the link carried in all, video and stored uploads, by reports short of congestion (:meth:`receiver_loss`)."""
    _first_sent_at: float | None = field(default=None, init=False)
    """When the first frame went out (:data:`UNTRIED_PROBE_AFTER` counts from it)."""
    _above_since: float | None = field(default=None, init=False)
    _above_reference: float = field(default=0.0, init=False)
    last_keyframe_at: float | None = field(default=None, init=False)
    """When the encoder last sent a keyframe (its own, or one the receiver asked for): the picture starts
    over from it, and the capture refines it as after a change."""
    last_frame_capped: bool = field(default=False, init=False)
    """The encoder's last frame used most of its allowance: encoding the settled screen again sharpens it."""
    refining: bool = field(default=False, init=False)
    """The picture may be below full quality still: the last frame was capped, or the one before it. The capture
    refines (re-sends the settled screen) while it is."""
    frame_wanted_at: float | None = field(default=None, init=False)
    """When the encoder wants another frame even if the screen stays still (a keyframe it had to defer);
    the capture sends the settled screen then and clears this."""

    def __post_init__(self) -> None:
        if not 0 < self.min_fps <= self.max_fps:
            raise ValueError("min_fps must be above 0 and at most max_fps")
        self.fps_cap = self.max_fps

    def uploading(self, bits_per_second: float, now: float) -> None:
        """A paced recording upload takes ``bits_per_second`` of the link from ``now`` on (0: none goes):
        the target leaves it (:attr:`upload_share`) unless it goes inside a share set aside
        (:meth:`reserve`), and an estimate or a cut made meanwhile counts it as carried by the link
        (:meth:`_uploaded`)."""
        if not bits_per_second >= 0 or bits_per_second == float("inf"):
            raise ValueError("an upload's share is a finite, non-negative bit rate")
        self.upload_share = float(bits_per_second)
        if not self._uploads or self._uploads[-1][1] != self.upload_share:
            self._uploads.append((now, self.upload_share))
        # Keep the share in force a window ago: the mean over the window starts from it.
        while len(self._uploads) > 1 and self._uploads[1][0] <= now - ESTIMATOR_WINDOW:
            self._uploads.popleft()

    def _uploaded(self, now: float) -> float:
        """Bit/s the paced uploads took of the link, on average over the last :data:`ESTIMATOR_WINDOW`.

        The receiver's estimate and the rate sent speak of the video alone: while an upload is paced
        beside it, the link carried that much more. Counted as the video's alone, the memory fell to the
        video's part, the target to that less the upload's pace, the next estimate lower still: at 1
        Mbit/s the target went from 1 Mbit/s to its 150 kbit/s floor in 9 s of typing and scrolling,
        and stayed there for the 6 s after the screen settled (through the link emulator,
        ``bench/link_sweep.py``), where the link carried 0.7 Mbit/s in all."""
        start = now - ESTIMATOR_WINDOW
        total = 0.0
        changes = list(self._uploads)
        if not changes:
            return 0.0
        ends = [since for since, _ in changes[1:]] + [now]
        for (since, share), until in zip(changes, ends, strict=True):
            total += share * max(0.0, min(now, until) - max(start, since))
        return total / ESTIMATOR_WINDOW

    def link_bitrate(self, bits_per_second: float, now: float) -> None:
        """A report of the receiver's estimate (REMB) in bit/s, as the encoder heard it.

        A new estimate below what we send, that has stopped climbing, is
        congestion: the frame rate is cut to fit it, once per estimate.
        """
        if bits_per_second <= 0:
            raise ValueError("the link bitrate must be positive")
        self._link = float(bits_per_second)
        self._estimates.append((now, self._link))
        # Keep the newest estimate at least a window old: climbing is measured from it.
        while len(self._estimates) > 1 and self._estimates[1][0] <= now - RATE_WINDOW:
            self._estimates.popleft()
        rate = self.send_rate(now)
        # First: it also notes when the stream rose above the estimates. Once the link has pushed
        # back, a low estimate is believed at once (its lag is the lesser risk on a known narrow link).
        informed = self._informed(now) or not self.untried(now)
        stale = self._link < STALE_SHARE * self._got_through.most(now)
        self.congested = informed and not stale and rate > self._link and not self._climbing(now)
        # While a share is set aside, and for ESTIMATE_STALE after (the estimator's window still holds it),
        # the memory holds: the estimate speaks of the video alone, squeezed by the share (counting it in
        # would give the share back to the video; taking it after would keep the video squeezed).
        squeezed = self.reserved or now - self._shared_until < ESTIMATE_STALE
        carried = self._link + self._uploaded(now)
        # Nor does an estimate raise the memory for PROBE_QUIET after the sender saw packets lost or frames
        # dropped: the estimate speaks of delay, the receiver's report of what arrived. Raised by an estimate
        # and a paced upload's share (0.71 + 0.35 Mbit/s) between reports of 44 and 52 % lost, a 1 Mbit/s link
        # stayed overfilled until the session's liveness check gave up on it (through the link emulator).
        capacity = self._link_capacity(now)
        if not squeezed and (self.congested or carried > capacity):
            raise_allowed = now - self._pushed_back_at >= PROBE_QUIET
            self._capacity = max(MIN_BITRATE, carried if raise_allowed else min(carried, capacity))
        if self.congested:
            self._congestion_at = now
            self._cut(now, rate, self._link)

    def _informed(self, now: float) -> bool:
        """Whether the newest estimate, below what is sent, speaks of the rate sent now: the stream
        has been above the estimates for :data:`ESTIMATOR_WINDOW` and they fell since before it rose
        (the estimator's decrease), or it has been above them for :data:`ESTIMATE_STALE`."""
        assert self._link is not None
        if self.send_rate(now) <= self._link:
            self._above_since = None
            return False
        if self._above_since is None:
            # From the estimates of the last window or so: the fall may already be in the newest.
            self._above_since, self._above_reference = now, max(estimate for _, estimate in self._estimates)
        self._above_reference = max(self._above_reference, self._link)
        above_for = now - self._above_since
        fell = self._link * CLIMB < self._above_reference
        return above_for >= ESTIMATE_STALE or (above_for >= ESTIMATOR_WINDOW and fell)

    def untried(self, now: float) -> bool:
        """Whether the link showed no congestion for :data:`UNTRIED_AFTER` seconds (or ever)."""
        return now - self._congestion_at >= UNTRIED_AFTER

    @property
    def estimate(self) -> float | None:
        """The receiver's latest estimate (REMB) in bit/s; None before the first."""
        return self._link

    def reserve(self, bits_per_second: float, now: float) -> None:
        """Set ``bits_per_second`` of the link aside for the recording's uploads (0: none); the stream's
        target is what is left of what the link carried when the first share was set aside, never
        below :data:`MIN_BITRATE`."""
        if not bits_per_second >= 0 or bits_per_second == float("inf"):
            raise ValueError("a reserve is a finite, non-negative bit rate")
        if not bits_per_second:
            if self._shared is not None:
                self._shared_until = now
                if now - self._pushed_back_at >= PROBE_QUIET:
                    # The memory held while the share was set aside; the link carried this much meanwhile.
                    self._capacity = max(self._link_capacity(now), self._carried.most(now))
            self._shared = None
        elif self._shared is None:
            self._shared = self._carrying(now)
        self.reserved = float(bits_per_second)

    def _carrying(self, now: float) -> float:
        """What the link carries as a share is first set aside: the memory, or on an untried link what the
        estimate (or, when higher, the rate sent) and a paced upload say when lower.

        On an untried link the memory may still be probing above the link (it pushes back only after a
        second or two); the estimate is not. On a link that pushed back, the memory is what got through
        then (a probe above it is cut the same way), and an estimate may be far below it for reasons of
        its own: the estimator's slow start (it starts from what arrived in its first seconds) or a video
        squeezed by the last share (:data:`ESTIMATE_STALE`). Taken for the link, a 69 kbit/s estimate
        against a 632 kbit/s memory held the picture at its floor for the whole scroll and the 6 s after
        it (1 Mbit/s, through the link emulator). Later estimates are of the squeezed video alone."""
        capacity = self._link_capacity(now)
        squeezed = now - self._shared_until < ESTIMATE_STALE
        if self._link is None or squeezed or not self.untried(now):
            return capacity
        return min(capacity, max(self._link, self.send_rate(now)) + self._uploaded(now))

    def target_bitrate(self, now: float, *, uploads: bool = True) -> float:
        """Bit/s the stream should fit now: the capacity memory (see the module's docstring), less what
        is set aside for the recording (:meth:`reserve`) and (``uploads``) what a paced upload takes
        (:attr:`upload_share`). A paced upload's pace is a share of the target before its own share:
        a share of what is left after it swung between the target and its floor twice a second."""
        target = self._link_capacity(now) if self._shared is None else self._shared_target()
        return self._after_uploads(target) if uploads else target

    def link_capacity(self, now: float) -> float:
        """Bit/s the link carries, the recording's part included: what it carried when a part was first set
        aside (:meth:`reserve`), or else the capacity memory; at least what it was seen carrying in all
        within :data:`CARRIED_SECONDS`."""
        held = self._link_capacity(now) if self._shared is None else self._shared
        return max(held, self._carried.most(now))

    def _after_uploads(self, bits_per_second: float) -> float:
        """``bits_per_second`` less what a paced recording upload takes now, never below :data:`MIN_BITRATE`;
        nothing while a share is set aside (an upload paced to it is inside it)."""
        if not self.upload_share or self.reserved:
            return bits_per_second
        return max(MIN_BITRATE, bits_per_second - self.upload_share)

    def _shared_target(self) -> float:
        """The target while a share is set aside: what the link carried then, less the share."""
        assert self._shared is not None
        return max(MIN_BITRATE, self._shared - self.reserved)

    def _link_capacity(self, now: float) -> float:
        """The capacity memory at ``now``: what the link carries, the recording's share included."""
        floor = max(START_BITRATE, self._link or 0.0)
        if self._capacity_at is not None and self._capacity > floor:
            elapsed = max(0.0, now - self._capacity_at)
            self._capacity = floor + (self._capacity - floor) * 0.5 ** (elapsed / CAPACITY_HALF_LIFE)
        self._capacity_at = now if self._capacity_at is None else max(self._capacity_at, now)
        return self._capacity

    def frames_dropped(self, now: float) -> None:
        """The pacer dropped frames for lack of link: congestion. The target falls below what was
        sent while they waited (:data:`REPORT_SPAN`; or below itself), and the frame rate is cut,
        once per window like an estimate's cut."""
        self._pushed_back(now, lost=0.0)

    def receiver_loss(self, fraction: float, now: float, *, lost_packets: int | None = None) -> None:
        """A receiver report (RTCP RR/SR): ``fraction`` of the video's packets were lost since the last,
        ``lost_packets`` of them (None: not known).

        Above :data:`LOSS_CONGESTED`, and of at least :data:`LOSS_CONGESTED_PACKETS` packets, the link
        is congested, as on frames dropped: the target falls below what got through (what was sent
        less the lost share), and the frame rate is cut, once per window."""
        if not 0.0 <= fraction <= 1.0:
            raise ValueError("a lost fraction is between 0 and 1")
        if lost_packets is not None and lost_packets < 0:
            raise ValueError("a count of lost packets is not negative")
        if fraction > LOSS_CONGESTED and (lost_packets is None or lost_packets >= LOSS_CONGESTED_PACKETS):
            self._pushed_back(now, lost=fraction)
            return
        rate = self.send_rate(now)
        through = rate * (1.0 - fraction)
        self._got_through.note(through, now)
        if fraction <= LOSS_FREE:
            self._proven.note(rate, now)  # the probe's ceiling may rise to a multiple of it
        # What the uploads were given, as far as the broker's answers show the link carried it.
        stored = self._stored[1] if self._stored is not None and now - self._stored[0] < REPORT_SPAN else 0.0
        uploads = min(self._uploaded(now), stored)
        self._carried.note(through + uploads, now)
        if uploads and self._shared is None and now - self._pushed_back_at >= PROBE_QUIET:
            # Beside a paced upload the estimate sees the video alone (the share set aside has its own rule).
            self._capacity = max(self._link_capacity(now), through + uploads)

    def upload_stored(self, bits_per_second: float, stored_at: float) -> None:
        """The recording's newest upload was stored at the broker at ``stored_at``, having gone at ``bits_per_second``
        (its bytes over the time from its request to the broker's answer): beside the video that got through, the
        link carried that much for the uploads (:data:`CARRIED_SECONDS`). Told again of the same upload, nothing
        changes."""
        if not bits_per_second >= 0 or bits_per_second == float("inf"):
            raise ValueError("an upload's rate is a finite, non-negative bit rate")
        self._stored = (stored_at, float(bits_per_second))

    def packets_nacked(self, packets: int, now: float) -> None:
        """The receiver NACKed ``packets`` packets of the video it had not NACKed before: a loss known a round
        trip after it, where a receiver report speaks up to a second later. On an untried link (a probe), a
        share of the packets sent over :data:`NACK_WINDOW` above :data:`LOSS_CONGESTED`, of at least
        :data:`NACK_CONGESTED_PACKETS`, is congestion as a report of it is: the probe overshot, and the target
        falls below what got through."""
        if packets < 0:
            raise ValueError("a count of NACKed packets is not negative")
        if not self.untried(now):
            # Once the link has pushed back, receiver reports and dropped frames weigh loss: NACKs of packets sent
            # before a cut keep coming a round trip and a queue later, against the few sent since. Weighed
            # against those, they cut a 1 Mbit/s link's target to its floor 1.2 s after the first cut.
            self._nacked.clear()
            return
        self._nacked.append((now, packets))
        while self._nacked and self._nacked[0][0] <= now - NACK_WINDOW:
            self._nacked.popleft()
        nacked = sum(count for _, count in self._nacked)
        if nacked < NACK_CONGESTED_PACKETS:
            return
        sent = sum(max(1, math.ceil(bits / 8 / RTP_PAYLOAD_BYTES)) for at, bits in self._sent if at > now - NACK_WINDOW)
        share = min(1.0, nacked / max(1, sent))
        if share > LOSS_CONGESTED:
            # Not bounded by what the link showed it carries: typing on a coarse picture (partial frames) shows 0.2
            # Mbit/s, and bounded by it, a scroll on a 1 Mbit/s link spent its whole length at the 150 kbit/s floor.
            self._pushed_back(now, lost=share)

    def probe_ceiling(self, now: float) -> float:
        """Bit/s a probe may take the target to: :data:`PROBE_CEILING` times what the link has shown it
        carries within :data:`PROVEN_SECONDS` (:data:`START_BITRATE` while nothing has been shown)."""
        shown = max(self._link or 0.0, self._proven.most(now))
        return PROBE_CEILING * (shown or START_BITRATE)

    def _pushed_back(self, now: float, *, lost: float) -> None:
        """Congestion the sender saw for itself (frames dropped, or ``lost`` share of the packets): the
        memory falls below what got through, what the recording's paced uploads took included."""
        self.congested = True
        self._congestion_at = now
        # The last cut's rate still holds frames sent before it: cutting again would overshoot. Only the memory's
        # own cut counts here: the frame rate is cut every window the stream goes over its target, and taken
        # for one, it kept a probe of 2.4 Mbit/s on a 1 Mbit/s link through two reports of 45 and 71 % lost.
        if now - self._pushed_back_at < RATE_WINDOW:
            return
        self._pushed_back_at = now
        rate, uploaded = self._reported(now)
        capacity = self._link_capacity(now)
        carried = min(capacity, rate * (1.0 - lost) + uploaded) if rate > 0 else capacity
        self._capacity = max(MIN_BITRATE, HEADROOM * carried)
        self._carried = RecentMost(CARRIED_SECONDS)  # what it carried before says nothing of it now
        if self._shared is not None:
            # What the link carried when the share was set aside was more than it carries now.
            self._shared = min(self._shared, self._capacity)
        self._cut(now, rate, self._capacity)

    def _reported(self, now: float) -> tuple[float, float]:
        """Bit/s sent, and uploaded for the recording, while the packets a receiver report speaks of went out:
        the most sent in any :data:`RATE_WINDOW` of the last :data:`REPORT_SPAN`, and the most the paced uploads
        took then (:meth:`_uploaded`; an upload since done, or waiting for a settled picture, went then).

        What the uploads took, not a share set aside for them: a share set aside the moment a probe overran a
        1 Mbit/s link, before any upload went at its pace, counted as carried put the memory at 1.9 Mbit/s after
        a report of 52 % lost (through the link emulator)."""
        return (max(self.send_rate(now), self._sent_lately.most(now)),
                max(self._uploaded(now), self._uploaded_lately.most(now)))

    def _cut(self, now: float, rate: float, link: float) -> None:
        # Cut once per window: until then the measured rate still holds frames sent before
        # the last cut, and cutting again on them would overshoot to the floor.
        if now - self._cut_at < RATE_WINDOW:
            return
        self.fps_cap = max(self.min_fps, self.fps_cap * HEADROOM * (min(1.0, link / rate) if rate > 0 else 1.0))
        self._cut_at = now
        self._rescale(now)

    def frame_cap(self, now: float) -> FrameCap:
        """The frame sizes that fit the target now: one frame-time of it per frame at the refinement
        frame rate (or the lower frame-rate cap), at most :data:`KEYFRAME_WINDOW` of it in one frame
        (:data:`FIRST_KEYFRAME_WINDOW` before the stream's first frame).

        x264 holds each frame to that allowance; the frame rate (:meth:`sent`) keeps a stream of
        many frames within the target as a whole."""
        bytes_per_second = self.target_bitrate(now) / 8
        window = FIRST_KEYFRAME_WINDOW if self._first_sent_at is None else KEYFRAME_WINDOW
        return FrameCap(
            frame_bytes=max(1, int(bytes_per_second / min(self.fps_cap, REFINE_FPS))),
            burst_bytes=max(1, int(bytes_per_second * window)),
        )

    def settled_frame_cap(self, now: float) -> FrameCap:
        """The cap for the keyframe of a screen that settled after capped motion: :data:`SETTLED_KEYFRAME_WINDOW`
        of the target in one frame, refilled :data:`SETTLED_FRAMES_OF_REFILL` frames a burst (the refinement's
        interval, spaced by each frame's size, keeps the stream within the target)."""
        burst = max(1, int(self.target_bitrate(now) / 8 * SETTLED_KEYFRAME_WINDOW))
        return FrameCap(frame_bytes=max(self.frame_cap(now).frame_bytes, burst // SETTLED_FRAMES_OF_REFILL),
                        burst_bytes=burst)

    def _climbing(self, now: float) -> bool:
        oldest_at, oldest = self._estimates[0]
        if oldest_at > now - RATE_WINDOW:
            return True  # no estimate a window old yet: the estimator is still starting
        return self._link is not None and self._link > oldest * CLIMB

    def send_rate(self, now: float) -> float:
        """Bits per second sent over the last :data:`RATE_WINDOW` seconds."""
        self._forget(now)
        return sum(bits for _, bits in self._sent) / RATE_WINDOW

    def sent(
        self, size_bytes: int, *, keyframe: bool, now: float, cap: FrameCap | None = None, partial: bool = False,
    ) -> None:
        """An encoded frame of ``size_bytes`` went out, made under ``cap`` (None: uncapped); without
        congestion the frame-rate cap regains ground. A ``partial`` frame coded only what changed (the encoder's
        regions of interest) and left the rest of the picture as it was: it counts against the link, but says
        nothing of the picture's quality, and the refinement goes on as if it had not been sent."""
        if size_bytes < 0:
            raise ValueError("a frame cannot have a negative size")
        if partial and keyframe:
            raise ValueError("a keyframe codes the whole picture")
        capped = cap is not None and size_bytes >= CAPPED_SHARE * cap.frame_bytes
        # Capped, after a capped frame, sooner than refinement sends one: the screen moves and every frame
        # wants more than its allowance (the pacer, at a multiple of the target, holds such a stream near
        # the target, so it seldom goes over it).
        moving_capped = (
            not partial and capped and self.last_frame_capped and self.whole_frame_at is not None
            and now - self.whole_frame_at < MOVING_SHARE * self.refine_interval()
        )
        if not partial:
            # One small frame after a capped one is no proof of a sharp picture: right after a large frame x264's
            # VBV buffer is drained, and the next comes out small at a coarse quantiser. Taken for sharp, it ended
            # the refinement of a picture at 23 dB, which stayed so until the keep-alive 5 s later (1 Mbit/s,
            # 150 ms, through the link emulator, ``bench/link_sweep.py``).
            self.refining = capped or self.last_frame_capped
            self.last_frame_capped = capped
            self._last_frame_bits, self._partial_bits = size_bytes * 8.0, 0.0
            self.whole_frame_at = now
        else:
            self._partial_bits += size_bytes * 8.0
        if keyframe:
            self.last_keyframe_at = now
        if self._first_sent_at is None:
            self._first_sent_at = now
        self._sent.append((now, size_bytes * 8.0))
        elapsed = 0.0 if self._updated_at is None else max(0.0, now - self._updated_at)
        self._updated_at = now
        if now - self._congestion_at >= PROBE_QUIET:
            self.congested = False  # not renewed (estimates come every 0.5 s, drops when they happen): over
        rate, whole = self.send_rate(now), self.target_bitrate(now, uploads=False)
        target = self._after_uploads(whole)
        self._sent_lately.note(rate, now)
        self._uploaded_lately.note(self._uploaded(now), now)
        untried = self.untried(now)
        if rate > OVER_TARGET * target and self._sent[0][0] <= now - RATE_WINDOW / 2:
            # More than the target (many frames, each within its cap): fewer frames, as on congestion,
            # unless nothing says the link is narrow (the target catches up within a second instead).
            # Over a target squeezed by a share set aside, or by a paced upload's pace, is no call for more
            # link: taken for one, the memory probed from 0.9 to 2 Mbit/s on a 1 Mbit/s link once the share was
            # released, and from 0.83 to 1.94 in the 2 s a settled picture sharpened beside an upload.
            if not self.reserved and rate > OVER_TARGET * whole:
                self._over_target_at = now
            if not untried:
                self._cut(now, rate, target)
        elif not self.congested:
            growth = INCREASE_PER_SECOND * elapsed
            if 2 * rate < target:
                # Far below a target that has grown (a probe, or an estimate): no reason to creep back.
                growth = max(growth, self.fps_cap * (2.0**elapsed - 1))
            self.fps_cap = min(self.max_fps, self.fps_cap + growth)
            self._rescale(now)
        # Refinement alone never presses: it fits the target by construction (15 allowances a second).
        pressing = now - self._over_target_at <= PROBE_QUIET
        capacity = self._link_capacity(now)
        if self.reserved:
            return  # the memory holds while a share is set aside (see link_bitrate)
        probing_allowed = now - self._first_sent_at >= UNTRIED_PROBE_AFTER
        if untried and probing_allowed and (self._over_target_at == now or moving_capped):
            # Only while it wants more now: the target stops about where the stream stops.
            probed = max(rate, capacity * UNTRIED_PROBE_PER_SECOND ** min(elapsed, RATE_WINDOW / 2))
            self._capacity = max(capacity, min(probed, self.probe_ceiling(now)))
        elif pressing and not untried and not self.congested and now - self._congestion_at >= PROBE_QUIET:
            probed = capacity * PROBE_PER_SECOND ** min(elapsed, RATE_WINDOW / 2)
            self._capacity = max(capacity, min(probed, self.probe_ceiling(now)))

    @property
    def fps(self) -> float:
        """The frame rate to send at while the screen keeps changing."""
        return self.fps_cap

    def refine_interval(self) -> float:
        """Seconds from the last whole frame to the next refinement frame: its bits, and those of the partial
        frames sent since (typing on a picture being refined), at :data:`REFINE_SHARE` of the target (a
        keyframe's burst drains first; the cap in force may lag a fallen target, since a new cap costs a
        keyframe), and no sooner than :data:`REFINE_FPS` (or the frame-rate cap) allows."""
        target = self._after_uploads(self._capacity if self._shared is None else self._shared_target())
        bits = self._last_frame_bits + self._partial_bits
        return max(1.0 / min(self.fps_cap, REFINE_FPS), bits / (REFINE_SHARE * target))

    def sent_fps(self, now: float) -> float:
        """Frames per second sent over the last :data:`RATE_WINDOW` seconds (what the viewer gets)."""
        self._forget(now)
        return len(self._sent) / RATE_WINDOW

    def link_limited(self, now: float) -> bool:
        """Whether the link, not the screen, limits the picture now: congestion was seen within
        :data:`LINK_EVIDENCE_SECONDS`. Frames capped or a frame rate held down while the target is
        still probing upwards are not evidence: every stream starts low, on any link."""
        return self.congested or now - self._congestion_at < LINK_EVIDENCE_SECONDS

    def interval(self) -> float:
        """Seconds to leave between two frames while the screen keeps changing."""
        return 1.0 / self.fps

    def _forget(self, now: float) -> None:
        while self._sent and self._sent[0][0] <= now - RATE_WINDOW:
            self._sent.popleft()

    def settled(self, still_seconds: float, now: float) -> None:
        """The screen has been still for ``still_seconds`` (the capture is sending it again to sharpen it, or
        to keep the stream alive): after :data:`SETTLED_SECONDS` a smaller scale taken for motion ends.

        Frame rate and scale are what a *moving* screen costs. A still one is read, not watched: its
        refinement keeps to the target by construction (:meth:`refine_interval`), and a picture held at
        a smaller scale never sharpens past what the scale allows. Held at the scale of a scroll, a
        1080p page at 1 Mbit/s stayed at 26.8 dB for the 6 s after it settled, the link idle (through the
        link emulator, ``bench/link_sweep.py``). The full size costs a keyframe under the frame cap
        (a new picture size), refined as any keyframe is."""
        if self.scale != SCALES[0] and still_seconds >= SETTLED_SECONDS:
            self.scale = SCALES[0]
            self._scale_changed_at = now

    def _rescale(self, now: float) -> None:
        if now - self._scale_changed_at < self.scale_hold:
            return
        index = SCALES.index(self.scale)
        congested = self.congested
        if congested and self.fps_cap <= self.min_fps and index + 1 < len(SCALES):
            # Still too much at the lowest frame rate: only a smaller picture helps.
            self.scale = SCALES[index + 1]
        elif not congested and self.fps_cap >= self.max_fps and index > 0:
            self.scale = SCALES[index - 1]
        else:
            return
        self._scale_changed_at = now
