"""One watcher for the grants of every connected session.

A session's grant says what its technician may do (``broker.sessions.grants``); while a
peer is connected the broker keeps it true and fresh:

- when an admin changes a role, a team, a membership or the account, or the
  technician signs out, a new grant goes to both peers within about
  :data:`WATCH_SECONDS`, and a disabled or signed-out technician's signalling
  is closed;
- well before a grant expires (at a third of ``DESKHAND_GRANT_TTL_SECONDS``)
  the same grant is issued again, from memory;
- with TURN configured, every grant sent is followed by each peer's fresh TURN
  credentials (``ice_config``), expiring with that grant; they stop with the session.

Nothing asks the database about each session in turn. Every write that can
change a grant bumps one counter row (``broker.sessions.grant_changes``); one task reads
it about once a second, and only when it moved looks at the connected sessions,
all of them in one thread-pool step with batched queries. :class:`GrantBook`
decides who needs what (pure; times passed in); :class:`GrantWatcher` does the
reading, signing and posting.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload
from starlette.concurrency import run_in_threadpool

from broker.clock import utcnow
from broker.errors import log_round_failure
from broker.keys import BrokerKeys
from broker.sessions.grant_changes import read_count
from broker.sessions.grants import audit_grants, renew_grant, same_terms, session_grant, sign_grant
from broker.sessions.hub import Peer, SignalHub
from broker.sessions.turn_credentials import TurnSettings, ice_for_peer
from broker.storage.models import AccessToken, SupportSession, Team, User
from protocol.grants import Grant, SignedGrant
from protocol.ice import IceConfig
from protocol.signalling import GrantIssued, IceRenewed, Role, SessionEnded

log = logging.getLogger(__name__)

WATCH_SECONDS = 1.0
"""How often the change counter is read (a change reaches the peers within about this long)."""

BATCH = 500
"""Sessions or tokens per ``IN (...)`` query (SQLite allows a few hundred parameters at least)."""

CLOSE_SIGNED_OUT = 4001
"""Close code sent to a technician whose account was disabled or whose sign-in ended."""

DISABLED = "your account was disabled"
SIGNED_OUT = "you signed out, or your sign-in expired: sign in again"


@dataclass
class _Held:
    """The grant a connected session holds, and what it was made from."""

    grant: Grant
    issued_at: float
    """Monotonic time it was issued."""
    as_of: int
    """The change count read before the grant's inputs were; -1: look again (something in this process changed)."""


@dataclass(frozen=True)
class Standing:
    """What the database says of a session's technician now."""

    grant: Grant
    """The grant that would be issued now (unsigned)."""
    cut_off: str | None
    """Why their signalling must close (disabled, signed out, sign-in expired), or None."""


@dataclass
class GrantBook:
    """The grants the connected sessions hold, and which of them need looking at.

    No I/O: the caller passes the change count and the time, and tells the
    book what it issued. A round with nothing to do walks over no sessions:
    those behind the last count seen are kept apart, and renewals and the ends
    of sign-ins wait in heaps ordered by time.
    """

    _held: dict[str, _Held] = field(default_factory=dict)
    _count: int = 0
    """The highest change count :meth:`stale` was given."""
    _behind: set[str] = field(default_factory=set)
    """Every held session whose grant was made before :attr:`_count` (or must be looked at again)."""
    _renewals: list[tuple[float, str]] = field(default_factory=list)
    """Heap of (issued at, session); an entry whose grant was issued again since is skipped."""
    _sign_ins: list[tuple[datetime, str]] = field(default_factory=list)
    """Heap of (when the technician's sign-in ends, session)."""

    def __len__(self) -> int:
        return len(self._held)

    def issued(self, session_id: str, grant: Grant, as_of: int, now: float) -> None:
        """``grant``, made from the database as it was at change count ``as_of``, was sent to the session's host
        (or to its first peer)."""
        self._held[session_id] = _Held(grant, now, as_of)
        heapq.heappush(self._renewals, (now, session_id))
        self._sort(session_id)

    def signed_in(self, session_id: str, expires_at: datetime) -> None:
        """The session's technician connected with a sign-in that ends at ``expires_at``."""
        heapq.heappush(self._sign_ins, (expires_at, session_id))

    def holds(self, session_id: str) -> bool:
        """Whether the session's grant is kept (a peer of it is connected)."""
        return session_id in self._held

    def grant(self, session_id: str) -> Grant | None:
        held = self._held.get(session_id)
        return held.grant if held is not None else None

    def forget(self, session_id: str) -> None:
        """No peer of the session is connected any more."""
        self._held.pop(session_id, None)
        self._behind.discard(session_id)

    def recheck(self, session_id: str) -> None:
        """Something the grant depends on changed in this process (the host's consent): look again next round."""
        held = self._held.get(session_id)
        if held is not None:
            held.as_of = -1
            self._behind.add(session_id)

    def stale(self, count: int) -> dict[str, int]:
        """Sessions whose grant was made before change ``count``, with the count each was made at."""
        if count > self._count:
            self._count = count
            self._behind = {sid for sid, held in self._held.items() if held.as_of < count}
        return {sid: self._held[sid].as_of for sid in self._behind}

    def settle(self, session_id: str, looked_at: int, count: int, new: Grant | None, now: float) -> bool:
        """The database was read at change ``count`` for a session that :meth:`stale` gave at ``looked_at``;
        ``new``: the grant issued because its terms changed (None: they did not).

        The session counts as up to date only if nothing happened to it while it was
        looked at. Returns whether it is still held (a peer is connected to hear of ``new``).
        """
        held = self._held.get(session_id)
        if held is None:
            return False
        if held.as_of == looked_at:
            held.as_of = count
        if new is not None:
            self.renewed(session_id, new, now)
        self._sort(session_id)
        return True

    def due(self, now: float, renew_after: float) -> list[str]:
        """Sessions whose grant was issued ``renew_after`` seconds ago or more (each once, until renewed)."""
        found = []
        while self._renewals and now - self._renewals[0][0] >= renew_after:
            issued_at, sid = heapq.heappop(self._renewals)
            held = self._held.get(sid)
            if held is not None and held.issued_at == issued_at:
                found.append(sid)
        return found

    def renewed(self, session_id: str, grant: Grant, now: float) -> None:
        """``grant`` (the same terms, new times) was sent to the session's peers."""
        held = self._held.get(session_id)
        if held is not None:
            held.grant, held.issued_at = grant, now
            heapq.heappush(self._renewals, (now, session_id))

    def sign_ins_over(self, now: datetime) -> list[str]:
        """Sessions whose technician's sign-in, as told by :meth:`signed_in`, ended by ``now`` (each told once)."""
        found = []
        while self._sign_ins and self._sign_ins[0][0] <= now:
            _, sid = heapq.heappop(self._sign_ins)
            if sid in self._held:
                found.append(sid)
        return found

    def _sort(self, session_id: str) -> None:
        if self._held[session_id].as_of < self._count:
            self._behind.add(session_id)
        else:
            self._behind.discard(session_id)


def _batches(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), BATCH):
        yield items[start:start + BATCH]


def standings(db: Session, sessions: Iterable[str], tokens: Mapping[str, str], ttl: timedelta) -> dict[str, Standing]:
    """What the database says now of the technicians of ``sessions`` (those that still exist), in a few queries.

    ``tokens``: the hash of the token each session's connected technician signed in with.
    """
    found: dict[str, SupportSession] = {}
    for batch in _batches(list(sessions)):
        query = (
            select(SupportSession).where(SupportSession.id.in_(batch))
            .options(selectinload(SupportSession.technician).selectinload(User.teams).noload(Team.members))
        )
        found.update((s.id, s) for s in db.scalars(query))
    live_tokens: set[str] = set()
    now = utcnow()
    for batch in _batches(list(tokens.values())):
        rows = db.execute(select(AccessToken.token_hash, AccessToken.revoked_at, AccessToken.expires_at)
                          .where(AccessToken.token_hash.in_(batch)))
        live_tokens.update(h for h, revoked, expires in rows if revoked is None and expires > now)
    result = {}
    for sid, session in found.items():
        cut_off = None
        if session.technician.disabled_at is not None:
            cut_off = DISABLED
        elif sid in tokens and tokens[sid] not in live_tokens:
            cut_off = SIGNED_OUT
        result[sid] = Standing(session_grant(session, ttl), cut_off)
    return result


@dataclass(frozen=True)
class Look:
    """One look at the database for the stale sessions."""

    count: int
    """The change count, read before anything else."""
    standings: dict[str, Standing]
    issued: dict[str, SignedGrant]
    """New grants (signed, and audited when their permissions changed) for sessions whose terms changed."""


def look(db: Session, keys: BrokerKeys, held: Mapping[str, Grant], tokens: Mapping[str, str], ttl: timedelta) -> Look:
    """Read the change count, then the standing of each session in ``held``; sign and audit a new grant
    for each whose terms differ from the grant it holds."""
    count = read_count(db)
    now = standings(db, held, tokens, ttl)
    issued = {sid: sign_grant(keys.signing_key, standing.grant)
              for sid, standing in now.items() if not same_terms(held[sid], standing.grant)}
    for batch in _batches(list(issued)):
        audit_grants(db, [issued[sid] for sid in batch])
    return Look(count, now, issued)


class GrantWatcher:
    """The asyncio side: reads the counter, looks when it moved, renews, posts and cuts off."""

    def __init__(self, book: GrantBook, hub: SignalHub, database_session: Callable[[], AbstractContextManager[Session]],
                 keys: BrokerKeys, ttl_seconds: int, ice: IceConfig | None = None,
                 turn: TurnSettings | None = None) -> None:
        self._book = book
        self._hub = hub
        self._session = database_session
        self._keys = keys
        self._ttl = timedelta(seconds=ttl_seconds)
        self._renew_after = ttl_seconds / 3
        self._cut: weakref.WeakSet[Peer] = weakref.WeakSet()
        self._ice = ice if ice is not None else IceConfig()
        self._turn = turn

    async def run(self) -> None:
        """Forever: a round every :data:`WATCH_SECONDS` (a failed round is logged; the next one retries)."""
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            try:
                await self.round()
            except Exception as exc:  # noqa: BLE001 - the next round looks again
                log_round_failure(log, "watching grants", exc)

    async def round(self) -> None:
        """Look at what changed since the last round; renew what is due; cut off ended sign-ins."""
        book = self._book
        if not len(book):
            return
        count = await run_in_threadpool(self._read_count)
        stale = book.stale(count)
        if stale:
            await self._look(stale)
        now = time.monotonic()
        for sid in book.due(now, self._renew_after):
            grant = book.grant(sid)
            assert grant is not None
            signed = renew_grant(self._keys, grant, self._ttl)
            book.renewed(sid, signed.grant, now)
            self._post(sid, signed)
        wall = utcnow()
        for sid in book.sign_ins_over(wall):
            technician = self._technician(sid)
            # The technician may have reconnected since, with a later sign-in.
            if technician is not None and technician.token_expires_at is not None and technician.token_expires_at <= wall:
                self._cut_off(sid, SIGNED_OUT)

    def _read_count(self) -> int:
        with self._session() as db:
            return read_count(db)

    async def _look(self, stale: dict[str, int]) -> None:
        held = {sid: g for sid in stale if (g := self._book.grant(sid)) is not None}
        tokens = {sid: t.token_hash for sid in held if (t := self._technician(sid)) is not None and t.token_hash}

        def step() -> Look:
            with self._session() as db:
                return look(db, self._keys, held, tokens, self._ttl)

        started = time.monotonic()
        seen = await run_in_threadpool(step)
        now = time.monotonic()
        log.debug("grant watch: looked at %d sessions in %.3f s; %d new grants", len(held), now - started, len(seen.issued))
        for sid, looked_at in stale.items():
            signed = seen.issued.get(sid)
            if self._book.settle(sid, looked_at, seen.count, signed.grant if signed else None, now) and signed:
                self._post(sid, signed)
            standing = seen.standings.get(sid)
            if standing is not None and standing.cut_off is not None:
                self._cut_off(sid, standing.cut_off)

    def _technician(self, session_id: str) -> Peer | None:
        return self._hub.peer(session_id, Role.technician)

    def _post(self, session_id: str, signed: SignedGrant) -> None:
        """Send ``signed`` to the session's connected peers, and with TURN each its fresh credentials,
        expiring with that grant (a session with no peer left, one that ended, gets nothing)."""
        for peer in self._hub.peers(session_id):
            peer.post(GrantIssued(grant=signed))
            if self._turn is not None:
                ice = ice_for_peer(self._ice, self._turn, session_id, peer.role, signed.grant.expires_at)
                peer.post(IceRenewed(ice=ice))

    def _cut_off(self, session_id: str, reason: str) -> None:
        technician = self._technician(session_id)
        if technician is None or technician in self._cut:
            return
        self._cut.add(technician)
        technician.post(SessionEnded(ended_by="broker", reason=reason))
        technician.post_close(CLOSE_SIGNED_OUT, "signed out")
