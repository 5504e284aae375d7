"""Rooms shared by the brokers of one Redis: a host on one broker and a technician on another meet.

Where each peer is connected is in Redis (``broker.cluster.room_directory``); what is said to a
peer connected elsewhere goes to its broker's own channel (``broker.cluster.bus``) as a
:class:`Delivery`, and that broker puts it in the peer's outbox, as its hub would have. What one
peer relays to the other keeps its order (one publisher per broker, one subscriber), and the same
bounds hold: a relay the receiving peer's outbox cannot take is refused there, and its sender is told
``peer_busy`` by a delivery back.

A delivery names the connection it is for, not just the role: what was meant for a connection
that has been replaced since is dropped, never handed to its successor.

Peers on one broker talk as they always did (through the hub, at once); Redis is asked where the
other peer is, once per relayed message (one script, well under a millisecond on a local network).

When a broker dies, its peers' partners on other brokers are told ``peer_left`` within
:data:`~broker.cluster.room_directory.LIVENESS_SECONDS` (:meth:`ClusterRooms.keep_presence`), and the
peers that were on it reconnect (through the balancer) to a live broker and join again.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redis.exceptions import RedisError

from broker.cluster.bus import BrokerBus
from broker.cluster.room_directory import BEAT_SECONDS, Found, Occupant, RoomDirectory
from broker.sessions.hub import Peer, PeerHandle, SignalHub, refused_relay
from protocol.signalling import PeerInfo, PeerLeft, Role, SessionEnded, encode

log = logging.getLogger(__name__)

DELIVER = "peer.deliver"
"""Bus kind: a message (or a close) for one connection on the receiving broker."""

ROOM_CLOSED = "room.closed"
"""Bus kind: a session ended; every broker closes its peers of it at once (the database watch,
``broker.sessions.ended_elsewhere``, does it within a second when this is missed)."""

TEXT_BYTES = 1024 * 1024 + 4096
"""Longest message text a delivery may carry: ``DESKHAND_SIGNAL_MAX_MESSAGE_BYTES``'s bound and room for ours."""


class Sender(BaseModel):
    """Who relayed a message: told back when the receiver's outbox refused it."""

    model_config = ConfigDict(extra="ignore")

    broker: str = Field(min_length=1, max_length=64)
    conn: str = Field(min_length=1, max_length=64)
    role: Role


class Delivery(BaseModel):
    """What one broker asks another to do to one of its connections (checked: it came over Redis)."""

    model_config = ConfigDict(extra="ignore")

    session: str = Field(min_length=1, max_length=64)
    role: Role
    conn: str = Field(min_length=1, max_length=64)
    text: str | None = Field(default=None, max_length=TEXT_BYTES)
    """An encoded signalling message to queue."""
    relayed_by: Sender | None = None
    """Set when ``text`` is the other peer's (held to ``RELAY_LIMIT``); who to tell when refused."""
    close_code: int | None = Field(default=None, ge=1000, le=4999)
    close_reason: str = Field(default="", max_length=123)


class Farewell(BaseModel):
    """A :data:`ROOM_CLOSED` message."""

    model_config = ConfigDict(extra="ignore")

    session: str = Field(min_length=1, max_length=64)
    ended_by: str = Field(max_length=32)
    reason: str = Field(max_length=2000)


@dataclass(frozen=True)
class RemotePeer:
    """A peer connected to another broker: what is posted to it becomes a :class:`Delivery` there."""

    bus: BrokerBus
    session_id: str
    occupant: Occupant
    asking: Peer | None = None
    """The peer whose relays these are (told ``peer_busy`` when the receiver refuses one)."""

    @property
    def info(self) -> PeerInfo:
        return self.occupant.info

    def post(self, message: BaseModel) -> bool:
        self._deliver(text=encode(message))
        return True

    def relay(self, message: BaseModel) -> bool:
        """Always queued here; a refusal comes back from the receiving broker as ``peer_busy``."""
        relayed_by = None
        if self.asking is not None:
            relayed_by = {"broker": self.bus.broker_id, "conn": self.asking.conn_id, "role": self.asking.role.value}
        self._deliver(text=encode(message), relayed_by=relayed_by)
        return True

    def post_close(self, code: int, reason: str) -> None:
        self._deliver(close_code=code, close_reason=reason)

    def _deliver(self, **fields: Any) -> None:
        self.bus.send(self.occupant.broker, DELIVER, session=self.session_id, role=self.occupant.info.role.value,
                      conn=self.occupant.conn, **fields)


class ClusterRooms:
    """:class:`~broker.sessions.hub.Rooms` over Redis, with this broker's peers in its own hub."""

    def __init__(self, bus: BrokerBus, directory: RoomDirectory, hub: SignalHub | None = None) -> None:
        self.hub = hub if hub is not None else SignalHub()
        self._bus = bus
        self._directory = directory
        bus.on(DELIVER, self._delivered)
        bus.on(ROOM_CLOSED, self._closed_elsewhere)

    async def join(self, peer: Peer) -> tuple[list[PeerHandle], PeerHandle | None]:
        joined = await self._directory.join(peer.session_id, peer.role,
                                            self._directory.record(peer.session_id, peer.conn_id, peer.info))
        replaced: list[PeerHandle] = []
        here, _ = self.hub.attach(peer)
        if here is not None:
            replaced.append(here)
        if joined.replaced is not None and joined.replaced.broker != self._bus.broker_id:
            replaced.append(RemotePeer(self._bus, peer.session_id, joined.replaced))
        return replaced, self._handle(peer.session_id, joined.other, asking=peer)

    async def leave(self, peer: Peer) -> PeerHandle | None:
        """As :class:`~broker.sessions.hub.Rooms` says; while Redis does not answer, the peer leaves this
        broker only (its place in Redis is taken by its next connection, or goes with the room)."""
        self.hub.detach(peer)
        try:
            was_current, other = await self._directory.leave(peer.session_id, peer.role, peer.conn_id)
        except RedisError as exc:
            log.warning("could not take the %s of session %s out of its room in Redis (%s)",
                        peer.role.value, peer.session_id, exc)
            return None
        return self._handle(peer.session_id, other) if was_current else None

    async def other(self, peer: Peer) -> PeerHandle | None:
        """The other peer; when it was on a dead broker, ``peer`` is told it left first."""
        found = await self._directory.find(peer.session_id, peer.role.other)
        self._tell_if_dead(peer, found)
        return self._handle(peer.session_id, found.occupant, asking=peer)

    async def members(self, session_id: str) -> list[PeerHandle]:
        """As :class:`~broker.sessions.hub.Rooms` says; while Redis does not answer, the peers here (what
        the members are told is news of something done already, which must not fail for it)."""
        try:
            occupants = await self._directory.members(session_id)
        except RedisError as exc:
            log.warning("could not read the room of session %s in Redis (%s); telling the peers here only",
                        session_id, exc)
            return list(self.hub.peers(session_id))
        handles = (self._handle(session_id, occupant) for occupant in occupants)
        return [handle for handle in handles if handle is not None]

    def close(self, session_id: str, farewell: BaseModel) -> None:
        self.hub.close_room(session_id, farewell)
        if isinstance(farewell, SessionEnded):
            self._bus.broadcast(ROOM_CLOSED, session=session_id, ended_by=farewell.ended_by, reason=farewell.reason)

    async def keep_presence(self) -> None:
        """Forever, every :data:`~broker.cluster.room_directory.BEAT_SECONDS`: say this broker is alive,
        and look at the room of every peer here (one round trip for all):

        * a peer whose place is empty has it back: Redis restarted or was emptied, and its partner
          on another broker could no longer reach it (one that left meanwhile is taken out again);
        * a peer whose partner's broker died is told ``peer_left``.
        """
        failing = False
        while True:
            try:
                await self._directory.beat()
                await self._check_rooms()
                if failing:
                    log.info("Redis answers again; this broker's rooms are kept there again")
                failing = False
            except RedisError as exc:
                if not failing:
                    log.warning("cannot reach Redis to keep this broker's rooms (%s); trying every %.0f s",
                                exc, BEAT_SECONDS)
                    failing = True
            await asyncio.sleep(BEAT_SECONDS)

    async def _check_rooms(self) -> None:
        here = [peer for session_id in self.hub.session_ids() for peer in self.hub.peers(session_id)]
        if not here:
            return
        checked = await self._directory.check_many([(p.session_id, p.role, p.conn_id, p.info) for p in here])
        for peer, answer in zip(here, checked, strict=True):
            current = self._local(peer.session_id, peer.role, peer.conn_id) is peer
            if answer.restored and not current:  # it left while its place was being put back
                await self._directory.leave(peer.session_id, peer.role, peer.conn_id)
            elif answer.restored:
                log.info("the %s of session %s had lost its place in Redis; it has it back",
                         peer.role.value, peer.session_id)
            self._tell_if_dead(peer, answer.other)

    def _handle(self, session_id: str, occupant: Occupant | None, asking: Peer | None = None) -> PeerHandle | None:
        if occupant is None:
            return None
        if occupant.broker != self._bus.broker_id:
            return RemotePeer(self._bus, session_id, occupant, asking)
        return self._local(session_id, occupant.info.role, occupant.conn)

    def _local(self, session_id: str, role: Role, conn: str) -> Peer | None:
        """The connection ``conn`` here, if it is still its role's current one."""
        peer = self.hub.peer(session_id, role)
        return peer if peer is not None and peer.conn_id == conn else None

    def _tell_if_dead(self, peer: Peer, found: Found) -> None:
        if found.dead and self._local(peer.session_id, peer.role, peer.conn_id) is peer:
            log.info("the %s of session %s was on a broker that stopped; telling the %s",
                     peer.role.other.value, peer.session_id, peer.role.value)
            peer.post(PeerLeft(role=peer.role.other))

    def _delivered(self, message: dict[str, Any]) -> None:
        try:
            delivery = Delivery.model_validate(message)
        except ValidationError as bad:
            log.warning("ignored a delivery from broker %s that is not one: %s", message.get("from"),
                        bad.errors(include_input=False, include_url=False)[:1])
            return
        peer = self._local(delivery.session, delivery.role, delivery.conn)
        if peer is None:
            return  # gone, or replaced since: not for its successor
        if delivery.text is not None:
            if delivery.relayed_by is None:
                peer.post_text(delivery.text)
            elif not peer.relay_text(delivery.text):
                self._refused(delivery, delivery.relayed_by)
        if delivery.close_code is not None:
            peer.post_close(delivery.close_code, delivery.close_reason)

    def _refused(self, delivery: Delivery, sender: Sender) -> None:
        told = refused_relay(delivery.role, _kind_of(delivery.text))
        self._bus.send(sender.broker, DELIVER, session=delivery.session, role=sender.role.value, conn=sender.conn,
                       text=encode(told))

    def _closed_elsewhere(self, message: dict[str, Any]) -> None:
        try:
            farewell = Farewell.model_validate(message)
        except ValidationError:
            log.warning("ignored a closed room from broker %s that is not one", message.get("from"))
            return
        self.hub.close_room(farewell.session, SessionEnded(ended_by=farewell.ended_by, reason=farewell.reason))


def _kind_of(text: str | None) -> str:
    """The ``type`` of an encoded message, for words to its sender (``message`` when it has none)."""
    try:
        kind = json.loads(text or "").get("type")
    except (ValueError, AttributeError):
        return "message"
    return kind if isinstance(kind, str) and kind.isidentifier() and len(kind) <= 32 else "message"
