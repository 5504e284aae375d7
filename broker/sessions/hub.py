"""The signalling hub: which peers are connected to which session, and delivery.

A room holds at most one technician and one host. A second connection for the
same role replaces the first (a reconnecting client wins over its stale
socket).

Delivery goes through a bounded outbox per peer, emptied by a sender task of
that peer's own while anything waits in it. Posting is synchronous, so a handler can attach a peer, look at who
else is there and queue the greetings in one step that no other connection can
interleave with; and a peer that reads slowly fills only its own outbox, never
stalls the sender. The hub knows nothing of HTTP or WebSockets: a link is
anything with ``send_text`` and ``close``.

A peer whose outbox fills up is disconnected: it is not reading. What the other
peer sends (offers, answers, candidates) goes in by :meth:`Peer.relay`, which
refuses it once :data:`RELAY_LIMIT` messages wait, so no flood from one peer can
fill the other's outbox and get *it* disconnected; the sender is told instead.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel

from protocol.frames import ErrorCode
from protocol.signalling import PeerInfo, Role, SignalError, encode, error_message

log = logging.getLogger(__name__)

SEND_TIMEOUT = 5.0
"""A peer that cannot take one message within this many seconds is disconnected."""

OUTBOX_LIMIT = 256
"""Messages queued for one peer before it is considered gone."""

RELAY_LIMIT = OUTBOX_LIMIT // 2
"""Messages queued for one peer beyond which the other peer's are refused; the rest of
the outbox is kept for the broker's own (grants, session ended, transfers)."""


def refused_relay(receiver: Role, what: str) -> BaseModel:
    """What a peer is told when the ``receiver``'s outbox refused its relayed ``what`` (:data:`RELAY_LIMIT`)."""
    return error_message(SignalError(
        ErrorCode.peer_busy,
        f"the {receiver.value} has not read what you sent before; this {what} was dropped: send it again later",
    ))


class PeerLink(Protocol):
    """The one thing the hub needs from a connection."""

    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


@dataclass(frozen=True)
class _Close:
    code: int
    reason: str


@dataclass(eq=False)
class Peer:
    """One connected end of a session, with its outbox.

    An idle peer holds no task and no queue: a sender task runs only while
    something waits in the outbox (ten thousand idle sockets cost memory, not tasks).
    """

    session_id: str
    info: PeerInfo
    link: PeerLink
    token_hash: str | None = None
    """Hash of the token it connected with: a technician who signs out is cut off."""
    token_expires_at: datetime | None = None
    """When that token expires: the technician is cut off then."""
    conn_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    """This connection's own name: what is addressed to it from another broker names it."""
    _outbox: deque[str | _Close] | None = field(default=None, repr=False)
    _sender: asyncio.Task[None] | None = field(default=None, repr=False)
    _closed: bool = field(default=False, repr=False)

    @property
    def role(self) -> Role:
        return self.info.role

    def post(self, message: BaseModel) -> bool:
        """Queue ``message``; False (and the peer is closed) when its outbox is full."""
        return self._put(encode(message))

    def post_text(self, text: str) -> bool:
        """:meth:`post` for a message encoded already (by another broker)."""
        return self._put(text)

    def relay(self, message: BaseModel) -> bool:
        """Queue a message from the other peer; False (nothing queued, this peer kept) when
        :data:`RELAY_LIMIT` messages already wait."""
        return self.relay_text(encode(message))

    def relay_text(self, text: str) -> bool:
        """:meth:`relay` for a message encoded already (by another broker)."""
        if self._outbox is not None and len(self._outbox) >= RELAY_LIMIT:
            return False
        return self._put(text)

    def post_close(self, code: int, reason: str) -> None:
        """Close the link once everything queued before has been sent."""
        self._put(_Close(code, reason))

    async def closed(self) -> None:
        """Wait until the link is closed (a close was posted, or sending failed)."""
        while self._sender is not None:
            await asyncio.shield(self._sender)

    def _put(self, item: str | _Close) -> bool:
        if self._closed:
            return True  # the link is gone; its handler is about to detach it
        if self._outbox is None:
            self._outbox = deque()
        kept = len(self._outbox) < OUTBOX_LIMIT
        if kept:
            self._outbox.append(item)
        else:
            log.info("outbox of %s in session %s is full; disconnecting it", self.role.value, self.session_id)
            # Make room for the close so the sender ends the link.
            self._outbox.clear()
            self._outbox.append(_Close(1011, "too slow to read signalling"))
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send(), name="signal-send")
        return kept

    async def _send(self) -> None:
        """Send queued messages in order until the outbox is empty, a close is queued or the link fails."""
        try:
            while self._outbox:
                item = self._outbox.popleft()
                if isinstance(item, _Close):
                    await self._close(item.code, item.reason)
                    return
                try:
                    await asyncio.wait_for(self.link.send_text(item), SEND_TIMEOUT)
                except Exception as exc:  # noqa: BLE001 - any failure means the link is gone
                    log.info("cannot deliver to %s of session %s: %s", self.role.value, self.session_id, exc)
                    await self._close(1011, "could not deliver")
                    return
        finally:
            self._sender = None
            if not self._outbox:
                self._outbox = None

    async def _close(self, code: int, reason: str) -> None:
        self._closed = True
        self._outbox = None
        await _quiet_close(self.link, code, reason)


class PeerHandle(Protocol):
    """A peer as seen from a handler: a :class:`Peer` here, or one connected to another broker."""

    @property
    def info(self) -> PeerInfo: ...

    def post(self, message: BaseModel) -> bool: ...

    def relay(self, message: BaseModel) -> bool: ...

    def post_close(self, code: int, reason: str) -> None: ...


class Rooms(Protocol):
    """Who is in each session's room, wherever they are connected: what the handlers ask.

    :class:`LocalRooms` when this broker is alone; ``broker.cluster.rooms.ClusterRooms`` when
    brokers share a Redis.
    """

    hub: SignalHub
    """The peers connected to this broker (the grant watcher and the sweeps work on them)."""

    async def join(self, peer: Peer) -> tuple[list[PeerHandle], PeerHandle | None]:
        """Put ``peer`` in its room: (the connections it replaced, the other role's peer).

        Nothing may yield between this returning and the greetings being queued (see
        ``broker.routes.signal``): whichever of two peers joins second sees the first."""
        ...

    async def leave(self, peer: Peer) -> PeerHandle | None:
        """Take ``peer`` out of its room; the other role's peer, to tell, when ``peer`` was still current."""
        ...

    async def other(self, peer: Peer) -> PeerHandle | None:
        """The other role's peer of ``peer``'s session, if connected."""
        ...

    async def members(self, session_id: str) -> list[PeerHandle]:
        """Every peer of the session, wherever connected."""
        ...

    def close(self, session_id: str, farewell: BaseModel) -> None:
        """The session is over: tell its peers ``farewell`` and close them, wherever connected."""
        ...


@dataclass
class SignalHub:
    """All rooms of this broker process."""

    _rooms: dict[str, dict[Role, Peer]] = field(default_factory=dict)

    def attach(self, peer: Peer) -> tuple[Peer | None, Peer | None]:
        """Put ``peer`` in its room; return (the peer it replaced, the other role's peer)."""
        room = self._rooms.setdefault(peer.session_id, {})
        previous = room.get(peer.role)
        room[peer.role] = peer
        return previous, room.get(peer.role.other)

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

    def session_ids(self) -> list[str]:
        """The sessions this broker holds a room for."""
        return list(self._rooms)

    @property
    def room_count(self) -> int:
        return len(self._rooms)

    def close_room(self, session_id: str, farewell: BaseModel, code: int = 1000) -> None:
        """Tell every peer of the session ``farewell``, then close them."""
        for peer in self.peers(session_id):
            self.detach(peer)
            peer.post(farewell)
            peer.post_close(code, "session over")


async def _quiet_close(link: PeerLink, code: int, reason: str) -> None:
    try:
        await link.close(code, reason)
    except Exception:  # noqa: BLE001 - already closed is fine
        pass


@dataclass
class LocalRooms:
    """:class:`Rooms` of a broker alone: its hub is everyone. Nothing here yields."""

    hub: SignalHub = field(default_factory=SignalHub)

    async def join(self, peer: Peer) -> tuple[list[PeerHandle], PeerHandle | None]:
        replaced, other = self.hub.attach(peer)
        return ([replaced] if replaced is not None else []), other

    async def leave(self, peer: Peer) -> PeerHandle | None:
        return self.hub.peer(peer.session_id, peer.role.other) if self.hub.detach(peer) else None

    async def other(self, peer: Peer) -> PeerHandle | None:
        return self.hub.peer(peer.session_id, peer.role.other)

    async def members(self, session_id: str) -> list[PeerHandle]:
        return list(self.hub.peers(session_id))

    def close(self, session_id: str, farewell: BaseModel) -> None:
        self.hub.close_room(session_id, farewell)
