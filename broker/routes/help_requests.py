"""Help requests without a code: the host asks and waits, a technician picks one up."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from broker.accounts.access import PublicAccess, SessionPeerAccess, SessionStarter, TicketReader
from broker.audit import events as audit
from broker.deps import DB, PeerToken, Source, State
from broker.refusals import Busy, Unauthenticated, not_found
from broker.serializers import session_join, session_out
from broker.server.json_bodies import BoundedJsonRoute
from broker.server.long_polls import wait_for_change
from broker.sessions.help_requests import (
    QUEUE_CHANGED,
    cancel_request,
    create_request,
    get_request,
    pick_up,
    queue_position,
    request_out,
    seen,
    token_matches,
    waiting_count,
    waiting_requests,
)
from broker.sessions.support_sessions import get_session
from broker.state import BrokerState
from broker.storage.db_slots import Lane
from broker.storage.models import HelpRequest, User
from broker.throttling.rate_gate import HELP_REQUESTS
from broker.throttling.ratelimit import FailureCounts
from protocol.requests import (
    POLL_WAIT_MAX,
    HelpRequestCreate,
    HelpRequestCreated,
    HelpRequestOut,
    HelpRequestPicked,
    HelpRequestState,
    HelpRequestStatus,
    request_poll_path,
)

router = APIRouter(prefix="/requests", tags=["help requests"], route_class=BoundedJsonRoute)

RECHECK_SECONDS = 5.0
"""A held poll looks again at least this often, whatever woke it (or did not); each look keeps
the request alive, so a host held in a poll never expires (see :func:`_recheck_every`)."""
QUEUE_FULL_RETRY_SECONDS = 60

RequestId = Annotated[
    str,
    Path(
        pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        description="Help request id (a UUID)",
    ),
]


def _count_request(counts: FailureCounts, key: str, now: float) -> int | None:
    """Count a help request of ``key`` (refused beyond the limit); the block it starts, if any."""
    HELP_REQUESTS.count(counts, key, now)
    return counts.retry_after(key, now)


@router.post(
    "", response_model=HelpRequestCreated, status_code=201, dependencies=[PublicAccess],
    summary="Ask for help without a code (host side): opens a ticket and joins the queue",
    responses={429: {"description": "Too many requests from this address; see Retry-After"},
               503: {"description": "The queue is full; see Retry-After"}},
)
async def create(body: HelpRequestCreate, state: State, source: Source) -> HelpRequestCreated:
    key = source or "unknown"
    now = time.monotonic()
    # Every request counts and none is forgiven: the limit is on asking, not on failing.
    # In a worker thread: the counts may be every broker's, in Redis.
    starts_block = await run_in_threadpool(_count_request, state.help_requests, key, now)

    def _create(db: Session) -> HelpRequestCreated:
        HELP_REQUESTS.audit_block(db, source, starts_block)
        if waiting_count(db) >= state.settings.request_queue_max:
            audit.record(db, "request.queue_full", actor=audit.ANONYMOUS, source=source)
            db.commit()
            raise Busy(
                "queue_full", "the help queue is full right now; try again in a minute or call your help desk",
                retry_after=QUEUE_FULL_RETRY_SECONDS,
            )
        request, token = create_request(db, body, source=source)
        created = HelpRequestCreated(
            request_id=request.id, ticket_id=request.ticket_id, request_token=token,
            poll_path=request_poll_path(request.id), position=queue_position(db, request) or 1,
        )
        return created

    created = await state.unit(_create)
    state.queue_signals.changed(QUEUE_CHANGED)
    return created


@router.get(
    "", response_model=list[HelpRequestOut],
    summary="The queue of help requests waiting for a technician, next first",
)
def queue(db: DB, user: TicketReader, limit: Annotated[int, Query(ge=1, le=500)] = 200) -> list[HelpRequestOut]:
    return [request_out(r, position) for position, r in enumerate(waiting_requests(db, limit), start=1)]


def _own_request(db: DB, request_id: str, token: str | None) -> HelpRequest:
    """The request ``token`` is the secret of, or a refusal that says why."""
    if token is None:
        raise Unauthenticated("unauthorized", "send 'Authorization: Bearer <request token>' (from POST /requests)")
    request = get_request(db, request_id)
    if request is None:
        raise not_found(f"help request {request_id}")
    if not token_matches(request, token):
        raise Unauthenticated("unauthorized", "this is not the token of this help request")
    return request


def _status(db: Session, state: BrokerState, request_id: str, token: str | None) -> HelpRequestStatus:
    request = _own_request(db, request_id, token)
    seen(request)
    join = None
    if request.state == HelpRequestState.picked.value and request.session_id is not None:
        session = get_session(db, request.session_id)
        assert session is not None
        join = session_join(session, state.settings.ice_config, state.keys.public_key_b64)
    return HelpRequestStatus(
        state=HelpRequestState(request.state), position=queue_position(db, request), join=join,
    )


@router.get(
    "/{request_id}", response_model=HelpRequestStatus, dependencies=[SessionPeerAccess],
    summary="The host's long poll: its state and place in the queue, and the session once picked up",
)
async def poll(
    request_id: RequestId,
    state: State,
    token: PeerToken,
    http: Request,
    wait: Annotated[int, Query(ge=0, le=POLL_WAIT_MAX, description="Hold the answer up to this many seconds")] = POLL_WAIT_MAX,
    position: Annotated[int | None, Query(ge=1, le=10_000_000, description="The place the host knows")] = None,
) -> HelpRequestStatus:
    """Answers at once when the request is not waiting or its place differs from ``position``;
    else when either changes, or after ``wait`` seconds. Every poll keeps the request alive."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        # Listen before looking: a change landing while we look still wakes us.
        with state.queue_signals.listen(QUEUE_CHANGED) as changed:
            status = await state.unit(lambda db: _status(db, state, request_id, token))
            remaining = deadline - loop.time()
            if status.state is not HelpRequestState.waiting or status.position != position or remaining <= 0:
                return status
            await wait_for_change(http, changed, min(remaining, _recheck_every(state)))
            if await http.is_disconnected():
                return status


def _recheck_every(state: BrokerState) -> float:
    # Well inside the idle limit, however short an operator (or a test) made it.
    return min(RECHECK_SECONDS, state.settings.request_idle_seconds / 3)


@router.delete(
    "/{request_id}", response_model=HelpRequestStatus, dependencies=[SessionPeerAccess],
    summary="The host withdraws its request (only while it waits)",
)
async def cancel(request_id: RequestId, state: State, token: PeerToken, source: Source) -> HelpRequestStatus:
    def _cancel(db: Session) -> HelpRequestStatus:
        request = _own_request(db, request_id, token)
        if request.state == HelpRequestState.cancelled.value:
            return HelpRequestStatus(state=HelpRequestState.cancelled)  # asked twice: done already
        cancel_request(db, request, source=source)
        return HelpRequestStatus(state=HelpRequestState.cancelled)

    status = await state.unit(_cancel)
    state.queue_signals.changed(QUEUE_CHANGED)
    return status


@router.post(
    "/{request_id}/pickup", response_model=HelpRequestPicked, status_code=201,
    summary="Pick a waiting request up: a session with its host starts at once, no code",
    responses={409: {"description": "Someone else picked it up first"}, 410: {"description": "Withdrawn or expired"}},
)
async def pickup(request_id: RequestId, user: SessionStarter, state: State, source: Source) -> HelpRequestPicked:
    # ``async`` with a unit of work of its own: committed before the waiting hosts are woken, on the event loop.
    def _pick(db: Session) -> HelpRequestPicked:
        request = get_request(db, request_id)
        if request is None:
            raise not_found(f"help request {request_id}")
        technician = db.get(User, user.id)  # ``user`` belongs to the dependency's unit of work
        assert technician is not None
        session = pick_up(db, request, technician, source=source)
        return HelpRequestPicked(session=session_out(session), request=request_out(request, None))

    picked = await state.unit(_pick, lane=Lane.held)
    state.queue_signals.changed(QUEUE_CHANGED)
    return picked
