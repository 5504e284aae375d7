"""A peer's outbox: what the other peer relays fills at most part of it, so a flood never disconnects the receiver."""

from __future__ import annotations

import asyncio

from broker.sessions.hub import OUTBOX_LIMIT, RELAY_LIMIT, Peer
from protocol.signalling import IceCandidate, PeerInfo, Role, SessionEnded


class StalledLink:
    """A connection that takes nothing until released, then records what it was sent."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.sent: list[str] = []
        self.closed: tuple[int, str | None] | None = None

    async def send_text(self, data: str) -> None:
        await self.release.wait()
        self.sent.append(data)

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.closed = (code, reason)


async def test_relays_beyond_the_limit_are_refused_and_the_broker_still_reaches_the_peer() -> None:
    link = StalledLink()
    peer = Peer(session_id="s", info=PeerInfo(role=Role.technician), link=link)
    closed = asyncio.create_task(peer.closed())
    relayed = [peer.relay(IceCandidate(candidate=f"candidate:{n} 1 udp 2130706431 127.0.0.1 5000 typ host")) for n in range(20_000)]
    # The sender holds one message while the link stalls; the rest wait in the outbox.
    assert relayed.count(True) in (RELAY_LIMIT, RELAY_LIMIT + 1) and not any(relayed[RELAY_LIMIT + 1:])
    assert peer.post(SessionEnded(ended_by="broker", reason="the broker's own message still fits"))
    link.release.set()
    peer.post_close(1000, "bye")
    await asyncio.wait_for(closed, 5)
    assert link.closed == (1000, "bye"), "closed normally, never as too slow"
    assert len(link.sent) == relayed.count(True) + 1 and "still fits" in link.sent[-1]


async def test_a_peer_that_lets_the_broker_fill_its_outbox_is_disconnected() -> None:
    link = StalledLink()
    peer = Peer(session_id="s", info=PeerInfo(role=Role.host), link=link)
    closed = asyncio.create_task(peer.closed())
    results = [peer.post(SessionEnded(ended_by="broker", reason=str(n))) for n in range(OUTBOX_LIMIT + 5)]
    assert False in results
    link.release.set()
    await asyncio.wait_for(closed, 5)
    assert link.closed == (1011, "too slow to read signalling")
