"""When a media connection attempt has failed, and how to say so (pure: the clock is passed in).

aioice retries a connectivity check for 63.5 s and declares failure only once the
other side has sent end-of-candidates, which some never do; neither is an answer
for a person waiting. A peer therefore watches each attempt itself: once the
remote description is applied, :class:`ConnectDeadline` gives it
:data:`CONNECT_LIMIT_SECONDS` to reach ``connectionState == "connected"``. Then the
peer closes the connection, tells its person what to check
(:func:`failure_text`) and sends ``ice_failed`` so the other side can tell theirs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from protocol.ice import CANDIDATE_TYPES
from protocol.signalling import IceFailed, TurnFailure

CONNECT_LIMIT_SECONDS = 15.0
"""How long an attempt may take from the remote description to a working candidate pair."""
CONNECT_POLL_SECONDS = 0.5
"""How often a peer looks at its connection's state while the deadline runs (aiortc has no
event for "still not connected")."""


class Attempt(enum.Enum):
    """Where a connection attempt stands."""

    waiting = "waiting"
    connected = "connected"
    failed = "failed"
    """Gave up: the deadline passed without a connection, or ICE itself failed."""


@dataclass
class ConnectDeadline:
    """One attempt's deadline, started when the remote description was applied (``started_at``,
    a ``time.monotonic()``). Once connected it never fails: a path lost later is another matter."""

    started_at: float
    limit: float = CONNECT_LIMIT_SECONDS
    _connected: bool = False

    def check(self, now: float, connection_state: str) -> Attempt:
        """The attempt's standing given the peer connection's ``connectionState`` at ``now``."""
        if self._connected or connection_state == "connected":
            self._connected = True
            return Attempt.connected
        if connection_state in ("failed", "closed") or now - self.started_at >= self.limit:
            return Attempt.failed
        return Attempt.waiting

    def waited(self, now: float) -> float:
        return max(0.0, now - self.started_at)


def failure_text(other: str, failed: IceFailed, *, theirs: bool = False) -> str:
    """What the person is told when an attempt failed (``failed``, the ``ice_failed`` message), in words they can act on.

    ``other`` names the other side ("the technician", "the end user"); ``theirs`` says the
    other side gave up (its ``ice_failed`` arrived) rather than this one. How long this side
    tried is said as it was: ICE can fail long before the deadline. Failed TURN allocations
    are named: they are what an administrator fixes.
    """
    lead = (
        f"Could not connect to {other}: {other}'s computer could not set up the media connection."
        if theirs else f"Could not connect to {other}: no network path worked (gave up after {failed.seconds:.1f} s)."
    )
    text = (
        f"{lead} Check that your firewall allows outgoing UDP and HTTPS (TCP 443) connections, "
        "or ask your administrator to check the TURN settings."
    )
    if failed.turn_failures:
        text += " The relay said: " + "; ".join(f"{f.url}: {f.reason}" for f in failed.turn_failures) + "."
    return text


def ice_failed_message(attempt: int, seconds: float, local_types: list[str], remote_types: list[str],
                       turn_failures: list[TurnFailure]) -> IceFailed:
    """The ``ice_failed`` message for an attempt: each candidate type once, in a fixed order."""
    return IceFailed(
        attempt=attempt, seconds=round(min(seconds, 3600.0), 1),
        local_types=[t for t in CANDIDATE_TYPES if t in local_types],
        remote_types=[t for t in CANDIDATE_TYPES if t in remote_types],
        turn_failures=turn_failures[:8],
    )
