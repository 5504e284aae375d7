"""How hard the recorder encodes: full quality, or a lower VP8 bitrate while the link is the limit.

Each one-second segment begins with a keyframe of the whole screen; at the
recorder's full bitrate (:data:`FULL_BITRATE`) a 1080p keyframe of text is
about 100 KB, so a screen that moves every second (scrolling) costs the uplink
about 1 Mbit/s (``bench/recording_uplink.py``), most of a 1-2.5 Mbit/s uplink,
next to the live view. (Typing costs far less since its segments continue from an
earlier keyframe and upload only their own frames, :mod:`protocol.segment_continuation`:
about 0.4 Mbit/s at full quality, 0.25 limited.) Each bitrate comes with a quality level
(:func:`quality_level`): libvpx holds the frames after a keyframe at about its quality
instead of spending the whole bitrate sharpening them, which a still or typed-on screen
never needs for the audit (typing cost 0.49 and 0.39 Mbit/s before). While the live stream finds the link congested
(:attr:`peer.stream_budget.StreamBudget.congested`), segments are encoded at
:data:`LIMITED_BITRATE`: libvpx's rate control then picks a coarser quantizer
for the keyframe too, and a changing screen costs about 40 % less. Text stays
legible: the figures measure a decoded frame's luma PSNR against the screen, 31-33 dB
at :data:`LIMITED_BITRATE` (39-43 dB at full; below ~30 dB small text blurs, so the
limited rate is not cut further: 400 kbit/s gives 29 dB, 250 kbit/s 27 dB and barely
smaller keyframes).

Longer segments were measured too: they save the keyframes of typing but
nothing while scrolling (every frame of a moving page costs a keyframe's
bytes), and would stretch the lag bound's unit; frame rate and segment length
stay as the policy says.

Once congestion is seen, the recording stays limited until the live stream has
been calm for :attr:`RecordingQuality.calm_seconds`: a congested link clears and
fills again within seconds, and a segment's bitrate is fixed when it starts.

Congestion is seen late on a link nobody has tried yet: the live stream starts
low and probes upwards, and its receiver's estimate (REMB) says nothing for the
first seconds of video. Meanwhile full-quality segments of a changing screen
(1.5-1.7 Mbit/s) piled up faster than a 1 Mbit/s link carries them, and the lag
passed the policy's bound before the first limited segment was made (measured
through the link emulator, ``bench/link_sweep.py`` at 1 Mbit/s and 150 ms). So
the recording also starts low: while there is a live stream, the link counts as
the limit until the receiver's estimate shows it carries :data:`FULL_NEEDS`
(:func:`carries_full_recording`): the full recording and a live stream beside it.
An estimate never reports much above what arrives, so on a fast link that takes
the first seconds of a changing screen; a still screen records as repeats
whatever the quality. Before the live stream exists the link counts as the limit
too while a technician is there (the host asks the user, or is about to offer):
the segment recorded then goes up beside the first picture, and at full quality
it was 104 kB against 59 kB on the benchmark's text screen.

Pure logic, times passed in: seconds on one monotonic clock. The recorder's
thread alone asks it (:class:`host_client.recorder.SegmentRecorder`), so it needs
no lock; what it is told (congested or not) is one boolean read from the live
stream's budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FULL_BITRATE = 1_500_000
"""Bit/s the recorder encodes at while the link is not the limit (and with no live stream, nor a technician
waiting for one)."""
LIMITED_BITRATE = 600_000
"""Bit/s the recorder encodes at while the link is the limit: text still measures >= 30 dB luma PSNR."""
FULL_QUALITY_LEVEL = 30
"""libvpx's quality level (its quantizer, 0-63) at :data:`FULL_BITRATE`: the constrained-quality level (``crf``)
and the finest quantizer (``qmin``). Inter frames then hold about the quality of the keyframe the bitrate
allows and spend no more: 4-8 kB a frame of typing at 42 dB on ``bench/recording_uplink.py``'s desktop
(2 fps). With the bitrate alone (constant bitrate) libvpx spent each frame's share of it sharpening the
picture further, 15-38 kB a frame of typing. The finest quantizer keeps the keyframe from being finer than
the frames after it (a boost libvpx gives keyframes): the frames of a still screen would get coarser
(42.5 dB keyframe, 99 kB, against 41.8 dB at 30; at 35, 39.8 dB)."""
LIMITED_QUALITY_LEVEL = 50
"""The same at :data:`LIMITED_BITRATE`: 3 kB a frame of typing at the keyframe's 33 dB, against 14-30 kB at
constant bitrate; at 45 some frames still took 10-17 kB."""
FULL_NEEDS = 2 * FULL_BITRATE
"""Bit/s the live stream's receiver must estimate before the recording is encoded at full quality."""


def quality_level(bitrate: int) -> int:
    """The constrained-quality level (libvpx ``crf``) to encode at ``bitrate`` with."""
    return FULL_QUALITY_LEVEL if bitrate >= FULL_BITRATE else LIMITED_QUALITY_LEVEL


def carries_full_recording(estimate: float | None) -> bool:
    """Whether a live stream's receiver estimate (bit/s; None: none yet) shows the link carries a
    full-quality recording beside the live stream."""
    return estimate is not None and estimate >= FULL_NEEDS


@dataclass
class RecordingQuality:
    """The VP8 bitrate for the next recording segment, following the live stream's view of the link."""

    calm_seconds: float = 10.0
    """The recording stays limited this long after the live stream was last seen congested."""
    _congested_at: float = field(default=float("-inf"), init=False)

    def __post_init__(self) -> None:
        if self.calm_seconds < 0:
            raise ValueError("calm_seconds must not be negative")

    def limited(self, now: float, *, congested: bool) -> bool:
        """Whether the segment starting at ``now`` is encoded at the limited rate; the live stream is
        ``congested`` or not at ``now``."""
        if congested:
            self._congested_at = now
        return now - self._congested_at < self.calm_seconds

    def bitrate(self, now: float, *, congested: bool) -> int:
        """Bit/s to encode the segment starting at ``now`` with (see :meth:`limited`)."""
        return LIMITED_BITRATE if self.limited(now, congested=congested) else FULL_BITRATE
