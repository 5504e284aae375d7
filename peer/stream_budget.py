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

Pure logic: the capture track asks :meth:`StreamBudget.interval` and reads
:attr:`StreamBudget.scale`; the encoder reports :meth:`StreamBudget.sent` and
:meth:`StreamBudget.link_bitrate`. Times are seconds on one monotonic clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

SCALES: tuple[float, ...] = (1.0, 0.75, 0.5)
"""Picture scales tried in order while the link stays congested at the lowest frame rate."""
RATE_WINDOW = 1.0
"""Seconds of sent frames the send rate is measured over."""
INCREASE_PER_SECOND = 5.0
"""Frames per second the frame-rate cap regains each second without congestion."""
HEADROOM = 0.9
"""On congestion, aim this far below the estimate, so queues on the path drain."""
CLIMB = 1.05
"""An estimate above this multiple of the one a window ago is still climbing (no congestion yet)."""


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
    _link: float | None = field(default=None, init=False)
    _estimates: deque[tuple[float, float]] = field(default_factory=deque, init=False)
    _updated_at: float | None = field(default=None, init=False)
    _cut_at: float = field(default=float("-inf"), init=False)
    congested: bool = field(default=False, init=False)
    """The latest estimate said the link is congested (until a newer one says otherwise)."""
    _scale_changed_at: float = field(default=float("-inf"), init=False)

    def __post_init__(self) -> None:
        if not 0 < self.min_fps <= self.max_fps:
            raise ValueError("min_fps must be above 0 and at most max_fps")
        self.fps_cap = self.max_fps

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
        self.congested = rate > self._link and not self._climbing(now)
        # Cut once per window: until then the measured rate still holds frames sent before
        # the last cut, and cutting again on them would overshoot to the floor.
        if self.congested and now - self._cut_at >= RATE_WINDOW:
            self.fps_cap = max(self.min_fps, self.fps_cap * HEADROOM * self._link / rate)
            self._cut_at = now
            self._rescale(now)

    def target_bitrate(self, now: float) -> float:
        """Bit/s the stream should fit now: 1 Mbit/s, or the receiver's estimate when higher, or when
        it says the link is congested (a quiet stream's low estimate only says little arrived)."""
        if self._link is not None and (self.congested or self._link > 1_000_000.0):
            return self._link
        return 1_000_000.0

    def frames_dropped(self, now: float) -> None:
        """The pacer had to drop frames for lack of link: congestion, the frame rate is cut (once per window)."""
        self.congested = True
        if now - self._cut_at >= RATE_WINDOW:
            self.fps_cap = max(self.min_fps, self.fps_cap * HEADROOM / 2)
            self._cut_at = now
            self._rescale(now)

    def _climbing(self, now: float) -> bool:
        oldest_at, oldest = self._estimates[0]
        if oldest_at > now - RATE_WINDOW:
            return True  # no estimate a window old yet: the estimator is still starting
        return self._link is not None and self._link > oldest * CLIMB

    def send_rate(self, now: float) -> float:
        """Bits per second sent over the last :data:`RATE_WINDOW` seconds."""
        self._forget(now)
        return sum(bits for _, bits in self._sent) / RATE_WINDOW

    def sent(self, size_bytes: int, *, keyframe: bool, now: float) -> None:
        """An encoded frame of ``size_bytes`` went out; without congestion the frame-rate cap regains ground."""
        if size_bytes < 0:
            raise ValueError("a frame cannot have a negative size")
        self._sent.append((now, size_bytes * 8.0))
        elapsed = 0.0 if self._updated_at is None else max(0.0, now - self._updated_at)
        self._updated_at = now
        if not self.congested:
            self.fps_cap = min(self.max_fps, self.fps_cap + INCREASE_PER_SECOND * elapsed)
            self._rescale(now)

    @property
    def fps(self) -> float:
        """The frame rate to send at while the screen keeps changing."""
        return self.fps_cap

    def interval(self) -> float:
        """Seconds to leave between two frames while the screen keeps changing."""
        return 1.0 / self.fps_cap

    def _forget(self, now: float) -> None:
        while self._sent and self._sent[0][0] <= now - RATE_WINDOW:
            self._sent.popleft()

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
