"""An H.264 encoder for desktop screens, in aiortc's encoder interface.

aiortc's own H.264 encoder is built for camera video: x264's default preset
(about 22 ms a 1080p frame here, 41 ms at p95), a bitrate clamped to 0.5-3
Mbit/s, and a new encoder -- hence a keyframe -- whenever the bitrate estimate
moves by more than 10 %. :class:`ScreenH264Encoder` differs where a desktop
needs it:

* x264 ``superfast`` with ``zerolatency`` (no lookahead, no B-frames, sliced
  threads): 5-6 ms a 1080p frame on two threads, no frame of delay; its motion
  search widened (:data:`MOTION_SEARCH`) so that a scroll is coded as motion;
* *capped* constant quality: CRF :data:`CRF` keeps text sharp whatever moves and
  makes a static screen cost almost nothing, and x264's VBV caps every frame,
  keyframes included, to the :class:`~peer.stream_budget.FrameCap` of the
  stream's budget (a frame-time of the target per frame, at most
  :data:`~peer.stream_budget.KEYFRAME_WINDOW` of it in one frame; the quantiser
  may then go up to :data:`QP_MAX`). The stream fits the link by frame rate and
  scale first (:class:`~peer.stream_budget.StreamBudget`); the cap is the last
  resort and the guard against bursts, and a capped frame is followed by
  refinement frames (the capture's job) that bring the picture back;
* x264 under ``zerolatency`` runs its rate control at a constant frame rate: the
  VBV refills ``maxrate / framerate`` per *frame*, whatever the timestamps say
  (variable-rate input would cost a frame of delay). So ``maxrate`` is set to the
  per-frame allowance times the declared :data:`DECLARED_FPS`, and the capture
  sends no more frames a second than the budget's frame rate;
* PyAV cannot change the VBV of an open encoder, so a new cap means a new encoder
  and a keyframe (itself capped): the cap follows the budget only on a fall of
  :data:`~peer.stream_budget.RECAP_RATIO` or a rise of
  :data:`~peer.stream_budget.RECAP_UP_RATIO`, held
  :data:`~peer.stream_budget.RECAP_HOLD` seconds apart, and only on a frame that
  needs it (:func:`~peer.stream_budget.recap_due`): a keyframe made anyway, a rise
  while the picture is below full quality, a fall once a frame is too large for
  the new cap and a keyframe under it is smaller. Refinement frames already keep
  to a fallen target (the capture spaces them by it), so a sharp or sharpening
  still screen keeps its picture while the estimate swings;
* a screen that settles after motion that left it coarse (a scroll: :data:`SETTLED_AFTER_CHANGES`
  new pictures squeezed by their cap, each repainting :data:`LARGE_CHANGE_SHARE` of it or more)
  takes a keyframe of its own once it has been still for :data:`SETTLED_STILL_SECONDS`, under a cap of
  :data:`~peer.stream_budget.SETTLED_KEYFRAME_WINDOW` of the target: refinement frames climb
  from a coarse picture slowly and at a high cost per dB;
* a small change on a picture still being refined (typing after a capped keyframe) is coded *partially*:
  the capture says which rectangles changed (:attr:`~peer.stream_budget.FrameTag.changed_boxes`), and
  they go to x264 as regions of interest (:mod:`peer.regions_of_interest`), sharper than the frame's
  quantiser, the rest at the coarsest, so x264 leaves it as it is. Coded whole, every typed frame also
  sharpened the whole picture: 5-9 kB each at 17-21 frames a second, more than a 1 Mbit/s link carries.
  A partial frame counts against the link but not as a word on the picture's quality, and the refinement
  frames go on, spaced from the last whole frame (:meth:`~peer.stream_budget.StreamBudget.sent`);
* a keyframe when the receiver asks (PLI/FIR), the picture size or the cap changes,
  never more often than :data:`MIN_KEYFRAME_GAP` (one lost packet can make a
  receiver ask several times); a request inside the gap is kept and served once
  the gap has passed (the budget's ``frame_wanted_at`` makes the capture send a
  frame then, even from a still screen);
* each frame carries its stream's :class:`~peer.stream_budget.StreamBudget` in
  ``frame.opaque`` (a :class:`~peer.stream_budget.FrameTag`; frames without one
  use the encoder's own); the encoder tells
  it the link bitrate, the receiver's reported losses and every frame's size, which is how the capture side learns
  to lower frame rate or scale and when to refine.

* the *main* profile when the receiver takes it (``profile-level-id``
  :data:`MAIN_PROFILE`; x264 under ``zerolatency`` makes no B-frames), constrained
  baseline otherwise. Main's CABAC codes text in about a quarter fewer bytes: on the
  benchmark's 1080p text screen, capped at 1 Mbit/s as a first picture is (0.2 s then), the
  keyframe and its refinement reached 30 dB after 68 kB against 93 kB, and 40 dB after 169 kB
  against 236 kB, for 10 % more encoding time; under the first frame's 0.7 s window, 30 dB in
  the keyframe itself (51 kB, against 72 kB in 3 frames) and 40 dB after 136 kB against 179 kB
  (``bench/first_picture.py``). High's 8x8
  transform did no better on text (measured with x264 alone), and Chromium 156 does not
  take constrained high.

RTP packetization (FU-A/STAP-A) is aiortc's, inherited unchanged.
"""

from __future__ import annotations

import fractions
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterator

import av
from aiortc import RTCRtpCodecCapability, RTCRtpSender
from aiortc.codecs.h264 import H264Encoder
from aiortc.mediastreams import VIDEO_TIME_BASE
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.sdp import H264Profile, parse_h264_profile_level_id

from .regions_of_interest import Region, set_regions
from .stream_budget import RECAP_HOLD, RECAP_RATIO, FrameCap, FrameTag, RecapDirection, StreamBudget, recap_due

log = logging.getLogger(__name__)

MAIN_PROFILE = "4d001f"
"""``profile-level-id`` of H.264 main, level 3.1, as WebRTC peers write it (Chromium takes it)."""
CONSTRAINED_BASELINE = "42e01f"
"""``profile-level-id`` of H.264 constrained baseline, level 3.1: what every WebRTC H.264 decoder takes."""
CRF = 20
"""x264 constant-rate factor: 9-pixel text stays crisp at 1080p (PSNR ~47 dB on scrolling code)."""
MOTION_SEARCH = "me=umh:merange=128"
"""x264's motion search. ``superfast``'s diamond over 16 pixels misses a scroll (the text moves 50-100 px between
two frames at 10-17 frames a second) and codes the page anew; an uneven multi-hexagon search over 128 px finds it.
The benchmark's desktop at 10 frames a second (``bench/motion_search.py``, CRF 20): a scrolled frame 58 -> 8.2 kB,
a moving window 17 -> 3.4 kB, typing 1.4 -> 0.8 kB, at 1 dB more luma PSNR and within 1 ms of the encoding time
(less residual is left to code). Through the link emulator at 2.5 Mbit/s and 150 ms, scrolling went from 16 to 30
frames a second and its marks' p95 from 1.2 s to 0.2-0.26 s (``bench/link_sweep.py``). What it cannot follow costs
more: full-screen noise scrolling under random change, uncapped, 38 -> 69 ms a frame (a video on the desktop lies
between)."""
QP_MIN = 12
"""Finest quantiser: beyond it a refinement frame spends bits on differences nobody sees."""
QP_MAX = 51
"""Coarsest quantiser (H.264's own limit), reached only when the frame cap requires it: a 1080p text
keyframe at 51 is about 21 kB and blurred (23 dB), the refinement frames sharpen it."""
DECLARED_FPS = 30
"""The frame rate x264 is told; its VBV refills ``maxrate / DECLARED_FPS`` per frame."""
MIN_KEYFRAME_GAP = 0.3
"""Seconds between two forced keyframes at most once."""
GOP = 100_000
"""No periodic keyframes: receivers ask when they need one."""
SETTLED_AFTER_CHANGES = 5
"""New pictures squeezed by their cap (:data:`SQUEEZED_SHARE`) since the picture was last sharp, after which the screen's settling takes
a keyframe of its own (:data:`~peer.stream_budget.SETTLED_KEYFRAME_WINDOW`): motion that left the picture coarse
(a scroll, a window dragged), not typing."""
SETTLED_STILL_SECONDS = 0.5
"""...once the screen has been still this long: the pause between two steps of a scroll (the benchmark's come
every 0.2-0.3 s) already brings a refinement frame (0.3 s after the last change), and a settled keyframe
there took a second of a 1 Mbit/s link in the middle of the motion."""
LARGE_CHANGE_SHARE = 0.25
"""...each repainting at least this share of the picture (:attr:`~peer.stream_budget.FrameTag.changed_share`):
typing while the first picture is still being refined makes squeezed frames too (each also refines the
picture), and a settled keyframe between two keystrokes (123 kB at 1 Mbit/s) held the next ones for a second."""
SETTLED_UPLOAD_SHARE = 0.25
"""...and taken only while the recording's paced uploads take at most this share of the target (a waiting
upload's floor pace, 64 kbit/s, is a tenth of a 1 Mbit/s link's): made while an upload went at 0.4 Mbit/s
beside it, the keyframe was held to the 150 kbit/s left (21 kB, 25 dB)."""
REFINED_SETTLED_SHARE = 0.5
"""...nor once refinement frames have spent this share of the settled keyframe's burst on the picture: it is then
about as far on as the keyframe would take it (the keyframe uses three quarters of its burst at most)."""
SQUEEZED_SHARE = 0.75
"""A new picture at least this share of its per-frame allowance was squeezed by the cap: at 1 Mbit/s and 150 ms a
scroll's frames were 0.85-1.4 allowances, typing's 0.03-0.2 (through the link emulator)."""
PARTIAL_AREA_SHARE = 0.15
"""A new picture on a picture still being refined is coded *partially* (:mod:`peer.regions_of_interest`: what
changed at :data:`CHANGED_OFFSET`, the rest at :data:`UNCHANGED_OFFSET`) when what changed covers at most this share
of it: typing, a caret, a clock (a typed line of a 1080p screen is 1.5 %); not a scroll or a new window."""
CHANGED_OFFSET = fractions.Fraction(-1, 3)
"""Quantiser offset of a partial frame's changed rectangles (a third of H.264's range finer than the frame's): a word
typed on a 1080p picture coarse after a keyframe capped at 1 Mbit/s came at 47 dB in 1.6 kB (at 0: 36 dB)."""
UNCHANGED_OFFSET = fractions.Fraction(1)
"""...and of the rest of the picture: the coarsest, so x264 leaves it as it is (the refinement frames sharpen it).
Plain, x264 spends a typed frame on sharpening the whole picture: 9.8-11.7 kB with the word at 26-28 dB, 5-9 kB
at 17-21 frames a second, more than a 1 Mbit/s link carries (through the link emulator)."""
NACKED_KEPT = 1024
"""Sequence numbers of NACKed packets remembered, so that a packet NACKed again (the receiver asks on a timer
until it comes) counts once (:meth:`ScreenH264Encoder.packets_nacked`)."""
LOSS_REPORTS_KEPT = 4
"""Receiver reports of loss held for the next frame (they come about once a second; a still screen
sends a frame within seconds): the oldest go first."""


def encoder_threads() -> int:
    """Slices encoded in parallel: all cores up to four (more slices cost bits, not time)."""
    return max(1, min(4, os.cpu_count() or 1))


def x264_profile(codec: RTCRtpCodecParameters | RTCRtpCodecCapability) -> str:
    """The x264 profile that encodes for ``codec`` as negotiated: "Main" for the main profile, "Baseline"
    (constrained baseline) otherwise."""
    try:
        profile, _level = parse_h264_profile_level_id(str(codec.parameters.get("profile-level-id", CONSTRAINED_BASELINE)))
    except ValueError:
        return "Baseline"
    return "Main" if profile is H264Profile.PROFILE_MAIN else "Baseline"


class ScreenH264Encoder(H264Encoder):
    """libx264 tuned for screen content, with live bitrate changes; ``profile`` is x264's (:func:`x264_profile`).
    ``clock`` says when each frame is encoded (seconds, monotonic): the budget's and the keyframes' timing."""

    def __init__(self, profile: str = "Baseline", clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._clock = clock
        if profile not in ("Baseline", "Main"):
            raise ValueError("the screen encoder encodes H.264 Baseline or Main")
        self.profile = profile
        """x264's profile: "Baseline" (constrained baseline) or "Main"."""
        self._context: av.VideoCodecContext | None = None
        self._estimate: int | None = None
        self._estimate_is_new = False
        self._losses: deque[tuple[float, int | None]] = deque(maxlen=LOSS_REPORTS_KEPT)
        self._nacked_seen: dict[int, None] = {}
        """Sequence numbers NACKed so far (the newest :data:`NACKED_KEPT`, oldest first)."""
        self._nacked_new = 0
        """Packets NACKed for the first time since the last frame, passed on with the next one."""
        self._packets_lost: int | None = None
        """The newest receiver report's count of packets lost since the stream began."""
        self._last_keyframe = float("-inf")
        self._keyframe_pending = False
        self._refined_bytes = 0
        """Bytes of refinement (frames repeating the last picture) since the last keyframe or change."""
        self._own_budget = StreamBudget()
        self._cap: FrameCap | None = None
        self._settled_cap = False
        """The cap in force was taken for a settled screen's keyframe (:meth:`StreamBudget.settled_frame_cap`)."""
        self._coarse_changes = 0
        """Large new pictures squeezed by their cap (:data:`SQUEEZED_SHARE`) since the picture was last sharp (a
        refinement frame no longer capped) or the last settled keyframe."""
        self._cap_at = float("-inf")
        self.keyframes = 0
        """Keyframes produced so far (for tests and statistics)."""

    @property
    def target_bitrate(self) -> int:
        """The receiver's latest estimate in bit/s (0 before the first); aiortc sets it on each REMB."""
        return self._estimate or 0

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:
        self._estimate = max(1, int(bitrate))
        self._estimate_is_new = True  # passed on with the next frame: the budget counts reports

    def receiver_loss(self, fraction: float, packets_lost: int | None = None) -> None:
        """A receiver report said ``fraction`` (0 to 1) of the packets were lost since its last one,
        and ``packets_lost`` since the stream began (RFC 3550's cumulative count; None: not said);
        passed on with the next frame, with the packets lost since the report before, like the
        estimate (the budget lives on the encoder's thread)."""
        if not 0.0 <= fraction <= 1.0:
            raise ValueError("a lost fraction is between 0 and 1")
        lost_since = None
        if packets_lost is not None:
            # The count falls when duplicates arrive (RFC 3550 6.4.1): never below none lost.
            lost_since = max(0, packets_lost - (self._packets_lost or 0))
            self._packets_lost = packets_lost
        self._losses.append((fraction, lost_since))

    def packets_nacked(self, sequence_numbers: list[int]) -> None:
        """The receiver NACKed these RTP sequence numbers; those not NACKed before are passed on with the next
        frame (:meth:`~peer.stream_budget.StreamBudget.packets_nacked`), like a receiver report."""
        for number in sequence_numbers:
            if not 0 <= number <= 0xFFFF:
                raise ValueError("an RTP sequence number is 16 bits")
            if number in self._nacked_seen:
                continue
            self._nacked_seen[number] = None
            self._nacked_new += 1
            if len(self._nacked_seen) > NACKED_KEPT:
                del self._nacked_seen[next(iter(self._nacked_seen))]

    @property
    def frame_cap(self) -> FrameCap | None:
        """The cap the open encoder works under (None before the first frame)."""
        return self._cap

    def _open(self, frame: av.VideoFrame, cap: FrameCap) -> av.VideoCodecContext:
        context = av.CodecContext.create("libx264", "w")
        context.width, context.height = frame.width, frame.height
        context.pix_fmt = "yuv420p"
        context.framerate = fractions.Fraction(DECLARED_FPS, 1)
        context.time_base = VIDEO_TIME_BASE  # the frames' own: x264 paces its rate control by their timestamps
        context.gop_size = GOP
        context.profile = self.profile  # no B-frames either way: zerolatency
        context.thread_count = encoder_threads()
        context.options = {
            "preset": "superfast",
            "tune": "zerolatency",
            "crf": str(CRF),
            "forced-idr": "1",
            # SPS/PPS with every keyframe: late joiners decode at once. The colour tags say what
            # libswscale produced (BT.601, limited range); untagged, browsers assume BT.709
            # and shift every colour.
            "x264-params": "repeat-headers=1:colormatrix=smpte170m:colorprim=smpte170m:transfer=smpte170m:range=tv:"
            + MOTION_SEARCH,
            # VBV in bit/s and bits (FFmpeg hands x264 kbit): see the module docstring for the refill per frame.
            "maxrate": str(cap.frame_bytes * 8 * DECLARED_FPS),
            "bufsize": str(max(cap.burst_bytes, cap.frame_bytes) * 8),
        }
        context.qmin, context.qmax = QP_MIN, QP_MAX
        return context

    def _reopen_reason(
        self, frame: av.VideoFrame, due: RecapDirection | None, *, keyframe_due: bool, picture_capped: bool,
        refined_past: bool = False,
    ) -> str | None:
        """Why the next frame needs a new encoder (and so a keyframe), or None: the first frame, a new
        picture size, or a due new cap where it costs nothing (a keyframe is due anyway) or pays (a rise
        while the picture is below full quality, unless its refinement already spent more than the new
        cap's keyframe may take: ``refined_past``). A due fall waits for a frame too large for it."""
        if self._context is None:
            return "the first frame"
        if (frame.width, frame.height) != (self._context.width, self._context.height):
            return "a new picture size"
        if due is not None and keyframe_due:
            return f"asked for, the cap {due}s"
        if due == "rise" and picture_capped and not refined_past:
            return "the cap rises"
        return None

    def _settled_keyframe_cap(
        self, budget: StreamBudget, now: float, *, still_seconds: float, reopen: str | None,
    ) -> FrameCap | None:
        """The cap for a keyframe of the settled screen when this frame is to be one, else None.

        After motion that left the picture coarse (:data:`SETTLED_AFTER_CHANGES`), a refinement once the
        screen has been still for :data:`SETTLED_STILL_SECONDS` (``still_seconds``) is one keyframe with the
        link to itself (:data:`~peer.stream_budget.SETTLED_KEYFRAME_WINDOW`) instead of refinement frames
        climbing from the coarse picture, unless they have already spent
        :data:`REFINED_SETTLED_SHARE` of what that keyframe may take. Not while the recording's uploads
        take part of the link (the host holds them while the picture sharpens, as far as the recording's
        deadlines allow: a later refinement frame takes the keyframe then). A keyframe made anyway (a new
        picture size as the scale comes back, a cap that rises, one asked for) takes the settled cap."""
        # A keyframe the receiver asks for while the settled screen's keyframe is in force (one of its packets
        # lost for good) is that keyframe again, not one under the link's cap that refinement climbs from.
        again = self._settled_cap and reopen is not None
        coarse = self._coarse_changes >= SETTLED_AFTER_CHANGES or again
        if still_seconds < SETTLED_STILL_SECONDS or not coarse or reopen == "the first frame":
            return None
        if budget.reserved or budget.upload_share > SETTLED_UPLOAD_SHARE * budget.target_bitrate(now, uploads=False):
            return None
        settled = budget.settled_frame_cap(now)
        if self._refined_bytes > settled.burst_bytes * REFINED_SETTLED_SHARE and not again:
            return None  # the refinement has come far enough: let it finish
        if reopen is None and self._cap is not None and settled.burst_bytes <= self._cap.burst_bytes * RECAP_RATIO:
            return None  # the cap in force already allows about as much
        return settled

    @staticmethod
    def _code_partially(frame: av.VideoFrame, tag: object, budget: StreamBudget) -> bool:
        """Whether ``frame``, a new picture, is coded partially (:data:`PARTIAL_AREA_SHARE`): only while the
        picture is refined (else the rest is sharp, and x264 skips it anyway), and where regions of interest
        are available (else it is coded whole)."""
        boxes = tag.changed_boxes if isinstance(tag, FrameTag) else ()
        if not boxes or not budget.refining:
            return False
        area = sum((bottom - top) * (right - left) for top, bottom, left, right in boxes)
        if area > PARTIAL_AREA_SHARE * frame.width * frame.height:
            return False
        regions = [Region(top, bottom, left, right, CHANGED_OFFSET) for top, bottom, left, right in boxes]
        return set_regions(frame, [*regions, Region(0, frame.height, 0, frame.width, UNCHANGED_OFFSET)])

    @staticmethod
    def _encode_on(context: av.VideoCodecContext, frame: av.VideoFrame, *, keyframe: bool) -> bytes:
        frame.pict_type = av.video.frame.PictureType.I if keyframe else av.video.frame.PictureType.NONE
        return b"".join(bytes(packet) for packet in context.encode(frame))

    def _encode_frame(self, frame: av.VideoFrame, force_keyframe: bool) -> Iterator[bytes]:
        now = self._clock()
        tag = frame.opaque
        budget = tag.budget if isinstance(tag, FrameTag) else self._own_budget
        repeat = isinstance(tag, FrameTag) and tag.repeat
        changed_share = tag.changed_share if isinstance(tag, FrameTag) else 0.0
        still_seconds = tag.still_seconds if isinstance(tag, FrameTag) else 0.0
        if self._estimate is not None and self._estimate_is_new:
            budget.link_bitrate(self._estimate, now)
            self._estimate_is_new = False
        while self._losses:
            fraction, lost_packets = self._losses.popleft()
            budget.receiver_loss(fraction, now, lost_packets=lost_packets)
        if self._nacked_new:
            budget.packets_nacked(self._nacked_new, now)
            self._nacked_new = 0
        wanted = budget.frame_cap(now)
        self._keyframe_pending = self._keyframe_pending or force_keyframe
        keyframe_due = self._keyframe_pending and now - self._last_keyframe >= MIN_KEYFRAME_GAP
        # A keyframe made anyway costs no more under a new cap: the hold (against keyframes made for caps alone)
        # does not apply. Held, a keyframe asked for 1.6 s into a 1 Mbit/s session came under the first frame's
        # 0.7 s window: 46 kB beside the recording's first uploads, and a quarter of the next second's packets lost.
        # So does a cap taken for a settled screen's keyframe alone: the next frame too large for the link goes back.
        held_for = RECAP_HOLD if keyframe_due or self._settled_cap else now - self._cap_at
        due = None if self._cap is None else recap_due(self._cap, wanted, held_for)
        # A still picture refined past what a keyframe under the new cap may take is sharper than that keyframe
        # would be: at 1 Mbit/s after a scroll, rises threw a picture refined to 31-37 dB back to 25-28 dB
        # (10 kB keyframes), twice in one run (through the link emulator, ``bench/link_sweep.py``).
        refined_past = repeat and self._refined_bytes > wanted.burst_bytes
        reopen = self._reopen_reason(frame, due, keyframe_due=keyframe_due, picture_capped=budget.last_frame_capped,
                                     refined_past=refined_past)
        cap = wanted
        settled = self._settled_keyframe_cap(budget, now, still_seconds=still_seconds, reopen=reopen)
        if settled is not None:
            reopen, cap = "the screen settled", settled
        if reopen is not None:
            self._context = self._open(frame, cap)
            self._cap, self._cap_at, self._settled_cap = cap, now, settled is not None
        if settled is not None:
            self._coarse_changes = 0
        # A new encoder starts with a keyframe whatever the gap: it has nothing to refer to.
        keyframe = reopen is not None or keyframe_due
        if self._keyframe_pending and not keyframe:
            # Asked again too soon (one loss, several requests): served once the gap has passed.
            budget.frame_wanted_at = self._last_keyframe + MIN_KEYFRAME_GAP
        assert self._context is not None
        partial = not keyframe and not repeat and self._code_partially(frame, tag, budget)
        data = self._encode_on(self._context, frame, keyframe=keyframe)
        if due == "fall" and not keyframe and not repeat and len(data) > wanted.burst_bytes:
            # Too large for the link as it is now: a keyframe under the wanted cap replaces the frame when
            # it is smaller (at 1080p no text keyframe gets below about 13 kB, whatever the cap). Never a
            # refinement's: its interval already keeps to the fallen target, and a keyframe would throw the
            # sharpening picture back (measured at 1.5 Mbit/s, a second after a scroll: 34.8 to 25.2 dB).
            context = self._open(frame, wanted)
            if partial:
                set_regions(frame, [])  # a keyframe codes the whole picture
            smaller = self._encode_on(context, frame, keyframe=True)
            self._cap_at = now  # taken or not, tried: held like a change
            if len(smaller) < len(data):
                self._context, self._cap, data, keyframe, reopen = context, wanted, smaller, True, "the cap fell"
                self._settled_cap, partial = False, False
        if repeat and not keyframe:
            self._refined_bytes += len(data)
        elif not partial:
            self._refined_bytes = 0  # a partial frame leaves the refined picture as it was
        if keyframe:
            self._last_keyframe = now
            self._keyframe_pending = False
            self.keyframes += 1
            log.debug("keyframe (%s): %d B under %s", reopen or "asked for", len(data), self._cap)
        # Capped or not, against the link's allowance: a settled screen's cap is for its keyframe alone.
        allowance = wanted if self._settled_cap else self._cap
        budget.sent(len(data), keyframe=keyframe, now=now, cap=allowance, partial=partial)
        if repeat and not budget.refining:
            self._coarse_changes = 0  # the picture is sharp again (two refinement frames uncapped)
        elif not repeat and not partial and changed_share >= LARGE_CHANGE_SHARE and allowance is not None:
            self._coarse_changes += len(data) >= SQUEEZED_SHARE * allowance.frame_bytes
        if data:
            yield from self._split_bitstream(data)


def screen_codec_preferences() -> list[RTCRtpCodecCapability]:
    """Video codecs in the order a screen stream wants them: H.264 (packetization mode 1)
    main first when this process offers it
    (:func:`peer.aiortc_hooks.offer_h264_main`), then constrained baseline, then the
    rest as aiortc lists them (VP8 for receivers without H.264), each with its retransmission
    (RTX) entry. A receiver answers with the first it takes."""
    codecs = RTCRtpSender.getCapabilities("video").codecs
    order = (MAIN_PROFILE, CONSTRAINED_BASELINE)

    def rank(codec: RTCRtpCodecCapability) -> int:
        if codec.mimeType.lower() == "video/rtx":
            return len(order) + 1
        if codec.mimeType.lower() == "video/h264" and codec.parameters.get("profile-level-id") in order:
            return order.index(str(codec.parameters["profile-level-id"]))
        return len(order)

    return sorted(codecs, key=rank)
