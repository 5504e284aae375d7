"""Who is speaking for a session: its technician (login token) or its host (host token).

One rule for the signalling WebSocket and the session's HTTP resources (file
transfers), so both refuse the same tokens with the same words.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from broker.accounts.logins import unfinished_setup, user_for_token
from broker.accounts.tokens import HOST_TOKEN_PREFIX, hash_token
from broker.audit import events as audit
from broker.clock import utcnow
from broker.refusals import Forbidden, Gone, NotFound, Unauthenticated
from broker.serializers import host_info, user_brief
from broker.sessions.support_sessions import get_session, host_session
from broker.storage.models import SupportSession
from protocol.api import SessionState
from protocol.signalling import PeerInfo, Role

PEER_CACHE_SECONDS = 2.0
"""How long a verified peer is taken on trust by the per-chunk requests of a transfer."""


@dataclass(frozen=True)
class SessionPeer:
    """A verified peer of a live session."""

    info: PeerInfo
    session: SupportSession
    token_expires_at: datetime | None = None
    """When the technician's sign-in ends (None for the host, whose token lasts as long as the session)."""

    @property
    def role(self) -> Role:
        return self.info.role

    @property
    def actor(self) -> str:
        if self.info.role is Role.host:
            return audit.host_actor(self.session.id)
        assert self.info.user is not None
        return audit.user_actor(self.info.user)


def identify_peer(
    db: Session, session_id: str, token: str | None, *, what: str, ended_grace: timedelta | None = None
) -> SessionPeer:
    """The peer ``token`` speaks for in the live session ``session_id``, or a :class:`~broker.refusals.Refusal`.

    ``what`` names the resource in the refusal ("open signalling", "transfer files").
    ``ended_grace``: also accept a session that ended less than this long ago (a host
    still uploading the recording it spooled, peers flushing their last events).
    """
    token_expires_at = None
    if token is None:
        raise Unauthenticated("unauthorized", f"send 'Authorization: Bearer <token>' to {what}")
    if token.startswith(HOST_TOKEN_PREFIX):
        session = host_session(db, hash_token(token))
        if session is None:
            raise Unauthenticated("unauthorized", "unknown host token: join with a support code first")
        if session.id != session_id:
            audit.record_refusal(
                db, "signal.wrong_session", actor=audit.host_actor(session.id),
                session_id=session_id, token_session=session.id, wanted=what,
            )
            raise Forbidden("forbidden", "this host token belongs to another session")
        info = PeerInfo(role=Role.host, host=host_info(session))
    else:
        found = user_for_token(db, token)
        if found is None:
            raise Unauthenticated("unauthorized", "the token is unknown, expired or revoked: sign in again")
        user, token_expires_at = found[0], found[1].expires_at
        refusal = unfinished_setup(user)
        if refusal is not None:
            raise refusal
        session = get_session(db, session_id)
        if session is None or session.technician_id != user.id:
            raise NotFound("not_found", f"session {session_id} does not exist or is not yours")
        info = PeerInfo(role=Role.technician, user=user_brief(user))
    live = is_live(session)
    recent = (
        ended_grace is not None and session.ended_at is not None and session.ended_at > utcnow() - ended_grace
    )
    if not live and not recent:
        raise Gone("session_over", f"the session is {session.state}")
    return SessionPeer(info=info, session=session, token_expires_at=token_expires_at)


def is_live(session: SupportSession) -> bool:
    """Whether ``session`` is waiting for its host or connected (not over)."""
    return session.state in (SessionState.waiting.value, SessionState.connected.value)


class PeerCache:
    """Recently verified peers, so that a transfer's many chunk requests skip the token lookups.

    Entries live :data:`PEER_CACHE_SECONDS` at most. Whatever can take a peer's right away
    (signing out, a changed password, an account disabled or changed, a session ended) calls
    :meth:`forget` once its change is committed: every entry goes, and so does any entry a
    lookup still under way puts later, since that lookup may have read the database from
    before the change. A lookup reads :attr:`generation` before it starts and :meth:`put`
    keeps its entry only if no :meth:`forget` came in between. Only peers of live sessions
    are kept: one let in during the grace after its session ended (uploading what it
    spooled) is looked up each time, so no route that refuses ended sessions gets it.
    """

    def __init__(self, ttl: float = PEER_CACHE_SECONDS) -> None:
        self._ttl = ttl
        self._generation = 0
        self._entries: dict[tuple[str, str], tuple[float, SessionPeer]] = {}
        self._lock = threading.Lock()  # lookups put from worker threads; a forget must not interleave

    @property
    def generation(self) -> int:
        """Read before looking a token up; hand it to :meth:`put`."""
        return self._generation

    def get(self, session_id: str, token: str, now: float) -> SessionPeer | None:
        entry = self._entries.get((session_id, token))
        if entry is None or entry[0] < now:
            return None
        return entry[1]

    def put(self, session_id: str, token: str, peer: SessionPeer, now: float, generation: int) -> None:
        """Keep ``peer``, looked up after :attr:`generation` read ``generation``, unless forgotten since."""
        if not is_live(peer.session):
            return
        with self._lock:
            if generation != self._generation:
                return
            if len(self._entries) > 10_000:
                self._entries = {k: v for k, v in self._entries.items() if v[0] >= now}
            self._entries[(session_id, token)] = (now + self._ttl, peer)

    def forget(self) -> None:
        """Drop every entry, and every entry a lookup begun before this call would put."""
        with self._lock:
            self._generation += 1
            self._entries = {}
