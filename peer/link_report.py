"""When the host tells the technician that the link limits the picture.

A technician who sees a coarse, slow picture should know whether the remote
machine is slow or the user's connection is: the host knows, from its stream
budget (:class:`~peer.stream_budget.StreamBudget`: frame rate or scale cut, or
frames capped, to fit the link). :class:`LinkReporter` turns that judgement,
taken every second or so, into the few :class:`~protocol.channel.LinkState`
messages worth sending: one when the link becomes the limit, again every
:data:`REPEAT_SECONDS` while it stays so and the figures moved, and one when it
no longer is. A new connection (a reconnection) hears a limit again
(:meth:`LinkReporter.forget_sent`); the console forgets the old one with its connection.

Pure logic, times passed in, in the style of :mod:`peer.stream_budget`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protocol.channel import LinkState

REPEAT_SECONDS = 2.0
"""Seconds between two reports while the link stays the limit (only when the figures moved)."""
MOVED = 0.1
"""A bitrate or frame rate this far (as a share) from the last one reported has moved."""
SETTLE_SECONDS = 3.0
"""Seconds the link must have stopped limiting before the console is told so (a wobbling
estimate must not make the words blink)."""


@dataclass
class LinkReporter:
    """What to send about the link, judged from one observation at a time."""

    _sent: LinkState | None = field(default=None, init=False)
    _sent_at: float = field(default=float("-inf"), init=False)
    _free_since: float | None = field(default=None, init=False)

    def observe(self, *, limited: bool, bitrate: float, fps: float, now: float) -> LinkState | None:
        """The message to send now, or None; ``bitrate`` in bit/s, ``fps`` the frame rate sent while moving."""
        if bitrate < 0 or fps < 0:
            raise ValueError("bitrate and frame rate cannot be negative")
        state = LinkState(limited=limited, kbps=min(10_000_000, round(bitrate / 1000)), fps=min(240.0, fps))
        if limited:
            self._free_since = None
            if self._sent is None or not self._sent.limited:
                return self._send(state, now)
            if now - self._sent_at >= REPEAT_SECONDS and self._moved(state):
                return self._send(state, now)
            return None
        if self._sent is None or not self._sent.limited:
            return None
        if self._free_since is None:
            self._free_since = now
        if now - self._free_since >= SETTLE_SECONDS:
            return self._send(state, now)
        return None

    def forget_sent(self) -> None:
        """The connection was replaced: its console starts from "not limited", so a limit is said again."""
        self._sent, self._sent_at, self._free_since = None, float("-inf"), None

    def _moved(self, state: LinkState) -> bool:
        assert self._sent is not None
        return _apart(state.kbps, self._sent.kbps) or _apart(state.fps, self._sent.fps)

    def _send(self, state: LinkState, now: float) -> LinkState:
        self._sent, self._sent_at = state, now
        return state


def _apart(new: float, old: float) -> bool:
    return abs(new - old) > MOVED * max(old, 1.0)
