"""The signalling hub: which peers are connected to which session, and delivery.

A room holds at most one technician and one host. A second connection for the
same role replaces the first (a reconnecting client wins over its stale
socket). The hub knows nothing of HTTP or WebSockets: a peer is anything with
``send_text`` and ``close``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import BaseModel

from protocol.signalling import PeerInfo, Role, encode

log = logging.getLogger(__name__)

SEND_TIMEOUT = 5.0
"""A peer that cannot take a message within this many seconds is disconnected."""


class PeerLink(Protocol):
    """The one thing the hub needs from a connection."""

    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


@dataclass(eq=False)
class Peer:
    """One connected end of a session."""

    session_id: str
    info: PeerInfo
    link: PeerLink

    @property
    def role(self) -> Role:
        return self.info.role


@dataclass
class SignalHub:
    """All rooms of this broker process."""

    _rooms: dict[str, dict[Role, Peer]] = field(default_factory=dict)

    def attach(self, peer: Peer) -> Peer | None:
        """Put ``peer`` in its room; return the peer it replaced, if any."""
        room = self._rooms.setdefault(peer.session_id, {})
        previous = room.get(peer.role)
        room[peer.role] = peer
        return previous

    def detach(self, peer: Peer) -> bool:
        """Remove ``peer`` if it is still the current one for its role."""
        room = self._rooms.get(peer.session_id)
        if not room or room.get(peer.role) is not peer:
            return False
        del room[peer.role]
        if not room:
            del self._rooms[peer.session_id]
        return True

    def peer(self, session_id: str, role: Role) -> Peer | None:
        return self._rooms.get(session_id, {}).get(role)

    def peers(self, session_id: str) -> list[Peer]:
        return list(self._rooms.get(session_id, {}).values())

    @property
    def room_count(self) -> int:
        return len(self._rooms)

    async def deliver(self, peer: Peer, message: BaseModel) -> bool:
        """Send ``message`` to ``peer``; a peer that cannot take it is dropped."""
        try:
            await asyncio.wait_for(peer.link.send_text(encode(message)), SEND_TIMEOUT)
            return True
        except Exception as exc:  # noqa: BLE001 - any failure means the link is gone
            log.info("dropping %s of session %s: %s", peer.role.value, peer.session_id, exc)
            self.detach(peer)
            await _quiet_close(peer.link, 1011, "could not deliver")
            return False

    async def close_room(self, session_id: str, farewell: BaseModel, code: int = 1000) -> None:
        """Tell every peer of the session ``farewell`` and disconnect them."""
        for peer in self.peers(session_id):
            self.detach(peer)
            await self.deliver(peer, farewell)
            await _quiet_close(peer.link, code, "session over")


async def _quiet_close(link: PeerLink, code: int, reason: str) -> None:
    try:
        await link.close(code, reason)
    except Exception:  # noqa: BLE001 - already closed is fine
        pass
