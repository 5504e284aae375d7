"""The signalling WebSocket: both peers of a session meet here.

The connection is authenticated before it is accepted (``Authorization:
Bearer`` with the technician's login token or the host token from the join; from a
browser, the console's cookie or the join page's host token offered as a subprotocol,
:mod:`broker.accounts.socket_bearer`),
and refused with an HTTP status and a JSON body that says why. Once in, every
frame passes :func:`protocol.signalling.parse_peer_message`; a bad frame gets
an ``error`` reply and the connection stays up. Whatever fails once a peer is
attached (its ``signal.connected`` audit included) detaches it again, tells the
other peer it left and closes it with :data:`CLOSE_BROKER_FAILED`. A peer's
``welcome`` carries its own TURN credentials (``broker.sessions.turn_credentials``),
and its ``ice_failed`` is audited (``session.ice_failed``, once per attempt, capped) before
it is relayed.

Each connection has a message rate (``DESKHAND_SIGNAL_MESSAGES_PER_SECOND`` and
``DESKHAND_SIGNAL_MESSAGE_BURST``): beyond it, frames are dropped and the sender
is told (``rate_limited``, at most every 5 s). ``end`` always passes, and so does ``consent``,
which the host's :class:`ConsentKeeper` paces instead (``broker.sessions.consent_flow``:
a revocation at once, the user's last choice always). What one peer sends can
fill at most part of the other's outbox (``broker.sessions.hub.RELAY_LIMIT``), so a flood
is refused to its sender and never disconnects the other peer.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from redis.exceptions import RedisError
from sqlalchemy.orm import Session

from broker.accounts.access import SessionPeerAccess
from broker.accounts.browser_session import request_token
from broker.accounts.socket_bearer import chosen_subprotocol
from broker.accounts.tokens import hash_token
from broker.audit import events as audit
from broker.deps import SessionId
from broker.errors import ApiError, http_error, is_disk_full
from broker.refusals import Refusal
from broker.sessions.consent_flow import ConsentFlow, consent_state
from broker.sessions.grant_changes import read_count
from broker.sessions.grants import audit_grant, issue_grant, session_policy
from broker.sessions.hub import Peer, PeerHandle, refused_relay
from broker.sessions.ice_failures import TrailedFailures, Verdict, record_ice_failed, trailed_failures
from broker.sessions.peers import identify_peer
from broker.sessions.support_sessions import SessionOver, end_session, get_session, record_consent
from broker.sessions.turn_credentials import ice_for_peer
from broker.state import BrokerState
from broker.storage.db_slots import Lane
from broker.storage.models import SupportSession
from protocol.api import EndedBy
from protocol.frames import ErrorCode
from protocol.grants import SignedGrant
from protocol.permissions import ordered
from protocol.rates import Flow, MessageRate, TokenBucket
from protocol.recording import SessionPolicy
from protocol.signalling import (
    RELAYED_TYPES,
    Consent,
    ConsentSource,
    End,
    GrantIssued,
    IceFailed,
    PeerInfo,
    PeerJoined,
    PeerLeft,
    Role,
    SessionEnded,
    SignalError,
    Welcome,
    error_message,
    parse_peer_message,
)

log = logging.getLogger(__name__)
router = APIRouter(tags=["signalling"], dependencies=[SessionPeerAccess])

CLOSE_REPLACED = 4000
"""Close code sent to a connection that a newer one for the same role replaced."""

CLOSE_BROKER_FAILED = 1011
"""Close code (WebSocket "internal error") sent to a connection the broker could not go on serving."""

BROKER_FAILED = "the broker failed to serve this connection (its log says why); connect again"
"""Its close reason: the client should reconnect, and the other peer was told this one left."""


@dataclass(frozen=True)
class AcceptedPeer:
    """A connection the broker accepted: who it is, and what the session already knows."""

    info: PeerInfo
    policy: SessionPolicy
    grant: SignedGrant
    """Issued before the peer is attached, so that greeting it never waits."""
    grant_as_of: int
    """The grant-change count read before the grant's inputs (``broker.sessions.grant_changes``)."""
    token_expires_at: datetime | None
    """When a technician's sign-in ends."""
    consent: Consent | None


def authenticate(db: Session, state: BrokerState, session_id: str, token: str | None) -> AcceptedPeer:
    """Who this token speaks for in ``session_id``, or a :class:`~broker.refusals.Refusal` saying why not."""
    as_of = read_count(db)
    peer = identify_peer(db, session_id, token, what="open signalling")
    session = peer.session
    consent = (
        Consent(permissions=session.consent, source=ConsentSource(session.consent_source))
        if session.consent is not None and session.consent_source
        else None
    )
    policy = session_policy(state.settings.session_policy, session)
    grant = _issue(state, db, session)
    return AcceptedPeer(info=peer.info, policy=policy, grant=grant, grant_as_of=as_of,
                     token_expires_at=peer.token_expires_at, consent=consent)


@router.websocket("/sessions/{session_id}/signal")
async def signal(websocket: WebSocket, session_id: SessionId) -> None:
    state: BrokerState = websocket.app.state.broker
    # A WebSocket lives for the whole session: each step that touches the database is a short unit
    # of work of its own (``state.unit``), never one held open by a dependency.
    try:
        token = request_token(websocket)
        admitted = await state.unit(functools.partial(authenticate, state=state, session_id=session_id, token=token))
    except (ApiError, Refusal) as refused:  # a slot refused, or the peer: no exception handler answers a WebSocket
        await websocket.send_denial_response(http_error(refused).response())
        return
    info = admitted.info
    await websocket.accept(subprotocol=chosen_subprotocol(websocket.scope))
    technician = info.role is Role.technician
    me = Peer(session_id=session_id, info=info, link=websocket,
              token_hash=hash_token(token) if token and technician else None,
              token_expires_at=admitted.token_expires_at if technician else None)
    consent = (
        ConsentKeeper(state, me, websocket.client.host if websocket.client else None, admitted.consent)
        if info.role is Role.host
        else None
    )
    actor = _actor(info, session_id)
    connected = False
    goodbye = (1000, "bye")
    # From attaching on, whatever fails detaches the peer again (and the grant book lets go of a session
    # nobody is connected to): a peer left attached would be relayed to and have its grant renewed forever.
    try:
        _greet(state, me, admitted, *await state.rooms.join(me))
        # What the accepted peer held stays out of this frame, which lives as long as the connection.
        del admitted, token
        await state.unit(lambda db: _audit(db, "signal.connected", actor, websocket, session_id), lane=Lane.surely)
        connected = True
        source = websocket.client.host if websocket.client else None
        await _relay(state, me, websocket, consent, IceFailureLog(state, session_id, actor, source))
    except WebSocketDisconnect:
        pass
    except Exception as exc:  # noqa: BLE001 - logged here once; the peer is detached and told below
        _log_failure(me, connected, exc)
        goodbye = (CLOSE_BROKER_FAILED, BROKER_FAILED)
    finally:
        try:
            if consent is not None:
                await consent.close()
        finally:
            other = await state.rooms.leave(me)
            if other is not None:
                other.post(PeerLeft(role=info.role))
            if not state.rooms.hub.peers(session_id):
                state.grant_book.forget(session_id)
            me.post_close(*goodbye)
        await me.closed()
        if connected:  # a connection whose start is not in the trail gets no end there either
            await state.unit(lambda db: _audit(db, "signal.disconnected", actor, websocket, session_id), lane=Lane.surely)


def _log_failure(me: Peer, connected: bool, exc: Exception) -> None:
    """Say once why the broker dropped a connection (the exception's own words; no token is in them)."""
    stage = "serving" if connected else "recording the connection of"
    if is_disk_full(exc):
        log.warning("%s the %s of session %s failed, the disk is full; it was disconnected",
                    stage, me.role.value, me.session_id)
    elif isinstance(exc, RedisError):
        log.warning("%s the %s of session %s failed, Redis did not answer (%s); it was disconnected and "
                    "will reconnect", stage, me.role.value, me.session_id, exc)
    else:
        log.error("%s the %s of session %s failed; it was disconnected", stage, me.role.value, me.session_id,
                  exc_info=exc)


def _greet(state: BrokerState, me: Peer, admitted: AcceptedPeer, replaced: list[PeerHandle],
           other: PeerHandle | None) -> None:
    """Greet ``me``, just put in its session's room (``Rooms.join``), and the other peer, without yielding
    in between: exactly one of two peers that connect together sees the other in its welcome, and the
    other gets ``peer_joined``."""
    info, session_id = me.info, me.session_id
    for stale in replaced:
        stale.post(SessionEnded(ended_by="broker", reason="replaced by a newer connection"))
        stale.post_close(CLOSE_REPLACED, "replaced by a newer connection")
    me.post(
        Welcome(
            session_id=session_id,
            role=info.role,
            peer=other.info if other else None,
            # This peer's own TURN credentials, expiring with its grant; the join answer never carries them.
            ice=ice_for_peer(state.settings.ice_config, state.settings.turn, session_id, info.role,
                             admitted.grant.grant.expires_at),
            policy=admitted.policy,
        )
    )
    me.post(GrantIssued(grant=admitted.grant))
    # The book follows the host's grant (the one that must not run out); a technician's only until the host comes.
    if info.role is Role.host or not state.grant_book.holds(session_id):
        state.grant_book.issued(session_id, admitted.grant.grant, admitted.grant_as_of, time.monotonic())
    if me.token_expires_at is not None:
        state.grant_book.signed_in(session_id, me.token_expires_at)
    if info.role is Role.technician and admitted.consent is not None:
        me.post(admitted.consent)
    if other is not None:
        other.post(PeerJoined(peer=info))


def _issue(state: BrokerState, db: Session, session: SupportSession) -> SignedGrant:
    """A grant with the technician's permissions as they are now (audited when they changed)."""
    signed = issue_grant(state.keys, session, timedelta(seconds=state.settings.grant_ttl_seconds))
    audit_grant(db, signed)
    return signed


async def _relay(state: BrokerState, me: Peer, websocket: WebSocket, consent: ConsentKeeper | None,
                 ice_failures: IceFailureLog) -> None:
    limit = state.settings.signal_max_message_bytes
    rate = MessageRate.per_second(state.settings.signal_messages_per_second, state.settings.signal_message_burst)
    # Read until the peer disconnects, even when sending to it failed: a peer may send
    # ``end`` and close at once, and its end must still count.
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        frame = message.get("text")
        if frame is None:
            frame = message.get("bytes") or b""
        try:
            parsed = parse_peer_message(frame, limit)
        except SignalError as bad:
            log.info("bad signalling frame from %s of %s: %s", me.role.value, me.session_id, bad.code.value)
            if _within_rate(me, rate):
                me.post(error_message(bad))
            continue
        if isinstance(parsed, End):
            await _end_from_peer(state, me, parsed, websocket)
            return
        if isinstance(parsed, Consent) and consent is not None:
            await consent.offer(parsed)
            continue
        if not _within_rate(me, rate):
            continue
        if isinstance(parsed, Consent):
            me.post(error_message(SignalError(ErrorCode.not_allowed, "only the host can send consent")))
            continue
        assert parsed.type in RELAYED_TYPES
        if isinstance(parsed, IceFailed):
            await ice_failures.note(parsed)
        other = await state.rooms.other(me)
        if other is None:
            me.post(
                error_message(
                    SignalError(
                        ErrorCode.peer_absent,
                        f"the {me.role.other.value} is not connected yet; wait for peer_joined",
                    )
                )
            )
        elif not other.relay(parsed):
            me.post(refused_relay(me.role.other, parsed.type))


def _within_rate(me: Peer, rate: MessageRate) -> bool:
    """Count one frame of ``me``; False when it is over the rate (answered ``rate_limited`` at most every 5 s)."""
    flow = rate.admit(time.monotonic())
    if flow is Flow.refused_tell:
        log.info("signalling from %s of %s is over its rate; dropping frames", me.role.value, me.session_id)
        me.post(error_message(SignalError(ErrorCode.rate_limited, rate.describe())))
    return flow is Flow.accepted


class IceFailureLog:
    """A connection's ``ice_failed`` reports in the trail: each attempt once, up to a cap
    (``broker.sessions.ice_failures``), counting those an earlier connection of the same peer reported."""

    def __init__(self, state: BrokerState, session_id: str, actor: str, source: str | None) -> None:
        self._state = state
        self._session_id = session_id
        self._actor = actor
        self._source = source
        self._trailed: TrailedFailures | None = None
        """What the trail holds of this peer's failures; read from it at the first report."""

    async def note(self, message: IceFailed) -> None:
        """Audit ``message`` as :meth:`TrailedFailures.judge` says."""
        known = self._trailed
        if known is not None and known.judge(message.attempt) is Verdict.skip:
            return

        def record(db: Session) -> TrailedFailures:
            trailed = known if known is not None else trailed_failures(db, self._session_id, self._actor)
            verdict = trailed.judge(message.attempt)
            record_ice_failed(db, message, verdict, session_id=self._session_id, actor=self._actor, source=self._source)
            return trailed.after(message.attempt, verdict)

        self._trailed = await self._state.unit(record, lane=Lane.surely)


class ConsentKeeper:
    """A host connection's consent: applied, relayed and audited as :class:`~broker.sessions.consent_flow.ConsentFlow`
    says, a held change applied when its turn comes, and at the latest when the host leaves."""

    def __init__(self, state: BrokerState, me: Peer, source_address: str | None, stored: Consent | None) -> None:
        settings = state.settings
        self._state = state
        self._me = me
        self._source_address = source_address
        applied = consent_state(stored.permissions, stored.source) if stored is not None else None
        self._flow = ConsentFlow(TokenBucket(settings.consent_changes_per_second, settings.consent_change_burst), applied)
        self._written = applied
        self._last_said: Consent | None = None
        self._writing = asyncio.Lock()
        self._waiting: asyncio.Task[None] | None = None

    async def offer(self, message: Consent) -> None:
        """The host sent ``message``."""
        self._last_said = message
        step = self._flow.offer(consent_state(message.permissions, message.source), time.monotonic())
        if step.apply is not None:
            await self._write()
        if step.held_for is not None and (self._waiting is None or self._waiting.done()):
            self._me.post(error_message(SignalError(
                ErrorCode.rate_limited,
                f"consent changes come faster than {self._flow.changes.rate:g} a second; the latest takes effect "
                f"in {step.held_for:.1f} s (one that takes a permission away always takes effect at once)",
            )))
            self._waiting = asyncio.create_task(self._apply_when_due(step.held_for), name="consent-held")

    async def close(self) -> None:
        """The host left: what it chose last is applied now."""
        if self._waiting is not None:
            self._waiting.cancel()
        if self._flow.release() is not None:
            await self._write()

    async def _apply_when_due(self, delay: float | None) -> None:
        while delay is not None:
            await asyncio.sleep(delay)
            step = self._flow.due(time.monotonic())
            if step.apply is not None:
                await self._write()
            delay = step.held_for

    async def _write(self) -> None:
        """Store, audit and relay what the flow applies now, unless it is written already.

        Whoever writes, writes the latest: two writes cannot land (or reach the
        technician) in the wrong order.
        """
        async with self._writing:
            target = self._flow.applied
            if target is None or target == self._written:
                return
            session_id = self._me.session_id

            def record(db: Session) -> bool:
                return record_consent(db, session_id, list(target.permissions), target.source,
                                      source_address=self._source_address)

            if not await self._state.unit(record, lane=Lane.surely):
                self._me.post(error_message(SignalError(ErrorCode.session_over, "the session is not live; consent not recorded")))
                return
            self._written = target
            # The grant can depend on how consent was given (a team's control_needs_user).
            self._state.grant_book.recheck(session_id)
            # Relayed as the host said it when it is what applies (its order of names), else as stored.
            said = self._last_said
            relayed = said if said is not None and consent_state(said.permissions, said.source) == target else Consent(
                permissions=ordered(target.permissions), source=target.source)
            technician = await self._state.rooms.other(self._me)
            if technician is not None:
                technician.post(relayed)


async def _end_from_peer(state: BrokerState, me: Peer, message: End, websocket: WebSocket) -> None:
    ended_by = EndedBy.host if me.role is Role.host else EndedBy.technician
    source = websocket.client.host if websocket.client else None

    def _end(db: Session) -> bool:
        session = get_session(db, me.session_id)
        if session is None:
            return False
        try:
            end_session(
                db, session, ended_by=ended_by, actor=_actor(me.info, me.session_id),
                reason=message.reason, source=source,
            )
        except SessionOver:
            return False
        return True

    await state.unit(_end, lane=Lane.surely)
    state.session_over(me.session_id, SessionEnded(ended_by=ended_by.value, reason=message.reason))


def _actor(info: PeerInfo, session_id: str) -> str:
    if info.role is Role.host:
        return audit.host_actor(session_id)
    assert info.user is not None
    return audit.user_actor(info.user)


def _audit(db: Session, kind: str, actor: str, websocket: WebSocket, session_id: str) -> None:
    audit.record(
        db, kind, actor=actor, source=websocket.client.host if websocket.client else None,
        session_id=session_id,
    )
