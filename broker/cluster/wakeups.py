"""Long polls woken on every broker: a change made through one broker wakes the waiters on all.

A transfer's chunk uploaded through broker A wakes the receiver's download waiting on broker B;
a help request picked on A wakes the hosts polling the queue on B. Each
:class:`~broker.sessions.spool.ChunkSignals` of a broker tells its changes on the bus under a kind
of its own, and wakes the same key when another broker tells one. A wake-up missed (Redis
dropped it) costs a waiter its poll's timeout, never a change: waiters look at the database
when they wake.
"""

from __future__ import annotations

import logging
from typing import Any

from broker.cluster.bus import BrokerBus
from broker.sessions.spool import ChunkSignals

log = logging.getLogger(__name__)

KEY_LENGTH = 128
"""Longest key a wake-up may name (transfer ids and queue names are far shorter)."""


def share_wakeups(bus: BrokerBus, signals: ChunkSignals, kind: str) -> None:
    """Tell the other brokers every change of ``signals`` as ``kind``, and wake here what they tell."""

    def woken(message: dict[str, Any]) -> None:
        key = message.get("key")
        if isinstance(key, str) and 0 < len(key) <= KEY_LENGTH:
            signals.changed_here(key)
        else:
            log.warning("ignored a %r wake-up from broker %s without a key", kind, message.get("from"))

    signals.elsewhere = lambda key: bus.broadcast(kind, key=key)
    bus.on(kind, woken)
