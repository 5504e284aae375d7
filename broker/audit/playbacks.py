"""Playbacks: which recording bytes an auditor's player may fetch, and for how long.

A GET must change nothing: any page can make a signed-in browser send one (an
``<img>`` or ``<video>`` on another port of the same host is the same *site*, so
even a ``SameSite=Strict`` cookie goes along), and it would be audited as the
auditor's own doing. So a playback starts with a POST, which another site cannot
send with the CSRF token; that request verifies the trail, puts the playback on
the record (``recording.played``) and registers it here under a random id. The
player's byte-range GETs must present the id; they are served from exactly the
segments the playback started with, and are not audited one by one.

Playbacks live in the broker's memory: a restarted broker has none, and a player
whose range request is refused starts another (which is audited again).
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass

from broker.audit.evidence import SegmentRef

PLAYBACK_IDLE_SECONDS = 600.0
"""A playback lapses this long after its last request (a paused player, a closed tab)."""
PLAYBACKS_KEPT = 1000
"""Playbacks a broker holds at most; beyond, the longest unused lapse first."""


@dataclass
class Playback:
    """One started playback: whose, of which session, and the segments it serves."""

    id: str
    user_id: int
    session_id: str
    segments: tuple[SegmentRef, ...]
    size: int
    """Bytes of the recording joined from ``segments``."""
    last_used: float
    """Monotonic time of its start or last request."""


class Playbacks:
    """The playbacks under way, found by id for the user and session they belong to."""

    def __init__(self, idle_seconds: float = PLAYBACK_IDLE_SECONDS, kept: int = PLAYBACKS_KEPT) -> None:
        self.idle_seconds = idle_seconds
        self._kept = kept
        self._playbacks: OrderedDict[str, Playback] = OrderedDict()
        self._lock = threading.Lock()

    def start(self, user_id: int, session_id: str, segments: tuple[SegmentRef, ...], size: int, now: float) -> Playback:
        """Register a playback (once it is on the record) and return it with its new id."""
        playback = Playback(secrets.token_urlsafe(24), user_id, session_id, segments, size, now)
        with self._lock:
            self._playbacks[playback.id] = playback
            while len(self._playbacks) > self._kept:
                self._playbacks.popitem(last=False)
        return playback

    def find(self, playback_id: str, user_id: int, session_id: str, now: float) -> Playback | None:
        """The playback ``playback_id`` of this user and session if it has not lapsed (its use
        keeps it alive), else None: another user's or another session's id is no id at all."""
        with self._lock:
            playback = self._playbacks.get(playback_id)
            if playback is None:
                return None
            if now - playback.last_used > self.idle_seconds:
                del self._playbacks[playback_id]
                return None
            if playback.user_id != user_id or playback.session_id != session_id:
                return None
            playback.last_used = now
            self._playbacks.move_to_end(playback_id)
            return playback
