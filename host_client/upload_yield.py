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

Small uploads (a still screen's repeats, a few hundred bytes) never wait.

Pure logic, times passed in: seconds on one monotonic clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

POLL_SECONDS = 0.25
"""How long a waiting upload sleeps before it asks again."""


@dataclass
class UploadYield:
    """Whether the next recording upload waits for the live stream, and for how long."""

    lag_share: float = 0.5
    """Uploads stop waiting once the recording is this share of the bound behind."""
    calm_seconds: float = 2.0
    """Uploads keep waiting this long after the live stream was last seen congested."""
    small_bytes: int = 4096
    """Uploads of at most this many bytes never wait."""
    _congested_at: float = field(default=float("-inf"), init=False)
    waited_seconds: float = field(default=0.0, init=False)
    """Seconds uploads were told to wait, in all (the figures and tests read it)."""

    def __post_init__(self) -> None:
        if not 0 < self.lag_share <= 1:
            raise ValueError("lag_share must be in (0, 1]")

    def wait(self, now: float, *, congested: bool, lag_seconds: float, max_lag_seconds: float, size: int) -> float:
        """Seconds to wait before an upload of ``size`` bytes (0: go now): the live stream is
        ``congested`` or not at ``now``, the oldest waiting segment ``lag_seconds`` behind, and
        the policy pauses control beyond ``max_lag_seconds``."""
        if congested:
            self._congested_at = now
        if size <= self.small_bytes:
            return 0.0
        room = max_lag_seconds * self.lag_share - lag_seconds
        if room <= 0 or now - self._congested_at >= self.calm_seconds:
            return 0.0
        wait = min(POLL_SECONDS, room)
        self.waited_seconds += wait
        return wait
