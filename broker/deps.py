"""FastAPI dependencies: the database, the broker's state, the current user."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from protocol.admin import NAME_PATTERN
from protocol.api import API_PREFIX
from protocol.webhooks import SeenSignatures

from .accounts import unfinished_setup, user_for_token
from .attempt_slots import AttemptSlots
from .browser_session import request_token
from .db import Database
from .db_slots import DatabaseSlots
from .errors import unauthorized
from .evidence import VerifiedRecordings
from .grant_watch import GrantBook
from .hub import SignalHub
from .keys import BrokerKeys
from .models import AccessToken, User
from .peers import PeerCache
from .playbacks import Playbacks
from .ratelimit import BucketsByKey, FailureLimiter
from .recordings import RecordingStore
from .settings import Settings
from .spool import ChunkSignals, TransferSpool
from .trail import SEALING, SealResult, seal_backlog

log = logging.getLogger(__name__)


@dataclass
class BrokerState:
    """Everything a running broker holds besides its database rows."""

    settings: Settings
    database: Database
    keys: BrokerKeys
    code_failures: AttemptSlots
    """Support codes being checked and failed, per source address and overall (see :class:`~broker.ratelimit.AttemptGate`)."""
    hub: SignalHub
    spool: TransferSpool
    transfer_signals: ChunkSignals
    peers: PeerCache
    recordings: RecordingStore
    login_failures: FailureLimiter
    """Failed sign-ins per source address (no global limit: that would lock everyone out)."""
    inbound_failures: FailureLimiter
    """Refused inbound webhook requests per source address (unknown system, bad signature)."""
    inbound_seen: SeenSignatures
    """Inbound webhook signatures accepted within the timestamp window: a copy sent again is refused."""
    help_requests: FailureLimiter
    """New help requests per source address and overall (every request counts, none is forgiven)."""
    queue_signals: ChunkSignals
    """Wakes the hosts' long polls when the help-request queue changes (key :data:`broker.help_requests.QUEUE_CHANGED`)."""
    peer_event_rates: BucketsByKey
    """Events each peer of each session reports, against ``DESKHAND_PEER_EVENTS_PER_SECOND`` and its burst."""

    db_slots: DatabaseSlots
    """Slots for database work, the queue for them, and ``503 broker_busy`` beyond it."""

    verified_recordings: VerifiedRecordings = field(default_factory=VerifiedRecordings)
    """Recording segments of sessions verified lately, for players asking range after range."""
    playbacks: Playbacks = field(default_factory=Playbacks)
    """Playbacks started (and audited) by a POST, whose ids the players' byte-range GETs present."""
    grant_book: GrantBook = field(default_factory=GrantBook)
    """The grant each connected session holds, for the grant watcher (``broker.grant_watch``)."""
    trail_refusals: set[tuple[str, str]] = field(default_factory=set)
    """(chain, reason) pairs the sealer already refused and put on record, so each is recorded once."""

    def session_over(self, session_id: str, farewell: BaseModel) -> None:
        """A session ended: tell and disconnect its peers, forget their cached identities,
        and seal and sign its audit chain at once (in a worker thread)."""
        self.hub.close_room(session_id, farewell)
        self.peers.forget()
        loop = asyncio.get_running_loop()
        task = loop.run_in_executor(None, self.seal_trail)

        def report(done: asyncio.Future[SealResult]) -> None:
            failure = None if done.cancelled() else done.exception()
            if failure is not None:
                log.error("sealing session %s failed: %s", session_id, failure)

        task.add_done_callback(report)

    def access_withdrawn(self, db: Session) -> None:
        """Commit ``db``, which took access away (revoked tokens, disabled or changed an account),
        then forget every cached peer, so that the very next chunk request looks its token up again.

        In this order: a lookup that read the database before the commit cannot have its
        entry kept (see :class:`~broker.peers.PeerCache`).
        """
        db.commit()
        self.peers.forget()

    def seal_trail(self) -> SealResult:
        """Seal pending audit events and sign the heads of the chains they moved (in bounded batches)."""
        with SEALING:
            return self._seal()

    @contextlib.contextmanager
    def sealed_trail(self) -> Iterator[Session]:
        """A database session over a trail at rest: everything pending sealed and signed, and the
        sealer held off until the block ends. Every sealed event's signed head is then in view,
        so the broker verifies strictly (no grace); keep the block to reading what is verified."""
        with SEALING:
            self._seal()
            with self.database.session() as db:
                yield db

    def _seal(self) -> SealResult:
        return seal_backlog(self.database.session, self.keys.signing_key, grace=self.settings.audit_grace,
                            refused_before=self.trail_refusals)


# Dependencies that do no I/O are ``async def``: FastAPI runs a plain ``def`` dependency in a
# worker thread, and every such step is one more wait for a thread in each request.


async def broker_state(connection: HTTPConnection) -> BrokerState:
    return connection.app.state.broker  # type: ignore[no-any-return]


State = Annotated[BrokerState, Depends(broker_state)]


async def database_slot(state: State) -> AsyncIterator[None]:
    """A slot for the request's database work (``broker.db_slots``): waited for without a
    thread or a connection, ``503 broker_busy`` when none comes."""
    async with state.db_slots.slot():
        yield


def db_session(state: State, _slot: Annotated[None, Depends(database_slot, scope="function")]) -> Iterator[Session]:
    with state.database.session() as session:
        yield session


DB = Annotated[Session, Depends(db_session, scope="function")]
"""The request's unit of work, within a database slot. ``scope="function"``: committed when
the route returns, *before* the response is sent, so a client never acts on a 2xx whose
writes are not visible yet (or were never committed at all)."""

_bearer = HTTPBearer(auto_error=False, description="A token from POST /api/v1/auth/login")


def current_token(
    db: DB, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    connection: HTTPConnection,
) -> tuple[User, AccessToken]:
    token = request_token(connection)  # ``credentials`` documents the scheme; this also reads the cookie
    if token is None:
        raise unauthorized()
    found = user_for_token(db, token)
    if found is None:
        raise unauthorized("the token is unknown, expired or revoked: sign in again")
    refuse_until_set_up(connection, found[0])
    return found


ACCOUNT_SETUP_PATHS = frozenset({"/auth/me", "/auth/logout", "/auth/password"})
"""What an account must still be able to do before it is set up: see who it is, sign out, and
change its password (the first step); ``/auth/totp/*`` too once that is done (the second)."""
TOTP_ENROLMENT_PREFIX = "/auth/totp/"


def refuse_until_set_up(connection: HTTPConnection, user: User) -> None:
    """403 on everything but :data:`ACCOUNT_SETUP_PATHS` while ``user`` must change a password
    someone else set (``password_change_required``), then on everything but those and enrolling
    while a role requires TOTP they have not confirmed (``totp_enrollment_required``)."""
    refusal = unfinished_setup(user)
    if refusal is None:
        return
    # The route's template, not the raw URL: a mounted prefix or odd spelling cannot slip past.
    route = connection.scope.get("route")
    path = str(getattr(route, "path", connection.url.path)).removeprefix(API_PREFIX)
    if path in ACCOUNT_SETUP_PATHS:
        return
    if path.startswith(TOTP_ENROLMENT_PREFIX) and not user.must_change_password:
        return  # the refusal is TOTP's: enrolling is what it asks for
    raise refusal


async def current_user(token: Annotated[tuple[User, AccessToken], Depends(current_token)]) -> User:
    return token[0]


CurrentUser = Annotated[User, Depends(current_user)]


async def client_address(request: Request) -> str | None:
    """The client's address: the direct peer, or whom a trusted proxy names (see ``broker/forwarded.py``)."""
    return request.client.host if request.client else None


Source = Annotated[str | None, Depends(client_address)]

TicketId = Annotated[int, Path(gt=0, lt=2**62, description="Ticket number")]
SessionId = Annotated[
    str,
    Path(
        pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        description="Session id (a UUID)",
    ),
]

Name = Annotated[
    str,
    Path(pattern=NAME_PATTERN, description="An account, role or team name"),
]

async def peer_token(connection: HTTPConnection) -> str | None:
    """:func:`~broker.browser_session.request_token`, without a worker thread."""
    return request_token(connection)


PeerToken = Annotated[str | None, Depends(peer_token)]
"""The token of a session peer's request (bearer header or the browser's cookie); the route
checks whom it speaks for (``broker.peers.identify_peer``)."""
