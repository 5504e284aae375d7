"""FastAPI dependencies: the database, the broker's state, the current user."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from broker.accounts.browser_session import request_token
from broker.accounts.logins import unfinished_setup, user_for_token
from broker.errors import unauthorized
from broker.state import BrokerState
from broker.storage.models import AccessToken, User
from protocol.admin import NAME_PATTERN
from protocol.api import API_PREFIX

log = logging.getLogger(__name__)



# Dependencies that do no I/O are ``async def``: FastAPI runs a plain ``def`` dependency in a
# worker thread, and every such step is one more wait for a thread in each request.


async def broker_state(connection: HTTPConnection) -> BrokerState:
    state: BrokerState = connection.app.state.broker  # set by create_app; Starlette types app.state as Any
    return state


State = Annotated[BrokerState, Depends(broker_state)]


async def database_slot(state: State) -> AsyncIterator[None]:
    """A slot for the request's database work (``broker.storage.db_slots``): waited for without a
    thread or a connection, ``503 broker_busy`` when none comes."""
    async with state.db_slots.slot():
        yield


def db_session(state: State, _slot: Annotated[None, Depends(database_slot, scope="function")]) -> Iterator[Session]:
    with state.database.session() as session:
        yield session


DB = Annotated[Session, Depends(db_session, scope="function")]
"""The request's unit of work, within a database slot. ``scope="function"``: committed when
the route returns, *before* the response is sent, so a client never acts on a 2xx whose
writes are not visible yet (or were never committed at all).

This is how a plain ``def`` route reaches the database. An ``async`` route, which must not
block the event loop, hands a function of the session to ``state.unit`` (``BrokerState.unit``):
the same unit of work in a slot, in a worker thread. Those are the routes that act on the event
loop after the commit (tell a session's peers, wake long polls), hold a request open (long
polls, streamed bodies) or speak WebSocket."""

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
    """The client's address: the direct peer, or whom a trusted proxy names (see ``broker/server/forwarded.py``)."""
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
    """:func:`~broker.accounts.browser_session.request_token`, without a worker thread."""
    return request_token(connection)


PeerToken = Annotated[str | None, Depends(peer_token)]
"""The token of a session peer's request (bearer header or the browser's cookie); the route
checks whom it speaks for (``broker.sessions.peers.identify_peer``)."""
