"""How fast a file transfer goes, from its progress reports (pure arithmetic, for every UI that shows one).

:mod:`peer.transfers` reports progress as (bytes done, total), the first report of
each run before any byte moves, so a run has a starting point even when its only
chunk arrives in one piece. While bytes move, the rate shown is the one over the
last few seconds (:data:`RATE_WINDOW`), so that it follows the link. Once every
byte is through it is the whole run's: the bytes this run moved over the time
from its first report to the moment its last byte moved. Reports after that (a
sender hearing that the receiver verified the file) change nothing: the last
figure shown is the transfer's true rate, not the rate of a wait.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

RATE_WINDOW = 3.0
"""Seconds of progress the running rate is measured over."""


@dataclass
class TransferRate:
    """The rate of one run of one transfer, fed with its progress reports."""

    window: float = RATE_WINDOW
    _samples: deque[tuple[float, int]] = field(default_factory=deque)
    _started_at: float | None = None
    _finished_at: float | None = None
    _last_done: int = 0
    _moved: int = 0

    def update(self, done: int, total: int, now: float) -> float:
        """Take the report that ``done`` of ``total`` bytes are through at ``now`` (monotonic seconds);
        return the rate to show now, in bytes per second (0.0 while it is not known yet)."""
        if self._started_at is None:
            self._started_at = now
        elif done > self._last_done:
            self._moved += done - self._last_done
        elif done < self._last_done:
            self._samples.clear()  # chunks handed back for another try: the running rate starts again
        self._last_done = done
        if done >= total:
            if self._finished_at is None:
                self._finished_at = now
            return self.average
        self._finished_at = None
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[0][0] > self.window:
            self._samples.popleft()
        first_at, first_done = self._samples[0]
        return (done - first_done) / (now - first_at) if now > first_at else 0.0

    @property
    def seconds(self) -> float | None:
        """From the run's first report until its last byte moved; None while bytes are still to come."""
        if self._started_at is None or self._finished_at is None:
            return None
        return self._finished_at - self._started_at

    @property
    def average(self) -> float:
        """Bytes per second over the whole run, once every byte is through (0.0 before, or if none moved)."""
        seconds = self.seconds
        return self._moved / seconds if seconds else 0.0

    def summary(self) -> str:
        """``3.15 MB in 1.2 s, 2.63 MB/s`` once every byte is through; empty while that is not known."""
        if not self.average:
            return ""
        assert self.seconds is not None
        return f"{size_text(self._moved)} in {seconds_text(self.seconds)}, {size_text(self.average)}/s"


def size_text(count: float) -> str:
    """``count`` bytes in decimal units, three significant figures: "12.3 MB", "256 MB", "900 B"."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            value = count / scale
            return f"{value:.0f} {unit}" if value >= 100 else f"{value:.1f} {unit}" if value >= 10 else f"{value:.2f} {unit}"
    return f"{count:.0f} B"


def seconds_text(seconds: float) -> str:
    """A duration as a transfer took it: "0.42 s", "3.1 s", "2 min 05 s"."""
    if seconds < 1:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"
