"""How often an ICE agent checks a pair afresh when the peer's check reaches it while its own is
still under way (RFC 8445 section 7.3.1.4), pure.

The peer's check getting through says the path now works at least its way: the agent's own
check may have been lost before that (a TURN relay drops what reaches it before its client
has a permission for the sender), and the retransmission of a STUN request waits 0.5 s, then
1 s. A fresh check sent at once is answered in one round trip. The peer retransmits its own
checks too, and may check afresh in turn on ours: one fresh check per pair within
:data:`FRESH_CHECK_INTERVAL` is enough, more would only echo back and forth.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

FRESH_CHECK_INTERVAL = 0.08
"""Seconds: the least time between two fresh checks of one pair.

Longer than a burst of the peer's checks on one pair (their retransmissions are 0.5 s apart,
its own fresh check follows ours within a round trip and is answered, not echoed, once ours
succeeded), shorter than aioice's first retransmission (0.5 s), which a second fresh check
is still worth beating."""

PairKey = TypeVar("PairKey", bound=Hashable)


class FreshCheckGate(Generic[PairKey]):
    """Which incoming checks may start a fresh check of their pair: one per pair per
    :data:`FRESH_CHECK_INTERVAL`."""

    def __init__(self, interval: float = FRESH_CHECK_INTERVAL) -> None:
        if interval <= 0:
            raise ValueError("the interval must be positive")
        self.interval = interval
        self._last: dict[PairKey, float] = {}
        """When each pair's last fresh check was admitted."""

    def admit(self, pair: PairKey, now: float) -> bool:
        """Whether ``pair`` may be checked afresh at ``now``; if so, that counts as its last one."""
        last = self._last.get(pair)
        if last is not None and now - last < self.interval:
            return False
        self._last[pair] = now
        return True

    def note(self, pair: PairKey, now: float) -> None:
        """A check of ``pair`` started at ``now`` that is as fresh as an admitted one (the agent's own
        triggered check): the next fresh check waits the interval from it."""
        self._last[pair] = now
