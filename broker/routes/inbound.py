"""The inbound webhook (external helpdesks, signed) and its sources (integration managers)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from broker.accounts.access import IntegrationManager, SignatureAccess
from broker.audit import events as audit
from broker.deps import DB, Source, State
from broker.errors import ApiError, unauthorized
from broker.integrations import inbound
from broker.integrations.webhooks import (
    create_inbound_source,
    delete_inbound_source,
    find_inbound_source,
    inbound_source_out,
    list_inbound_sources,
    set_inbound_source_enabled,
)
from broker.state import BrokerState
from broker.throttling.rate_gate import INBOUND_REQUESTS
from protocol.api import ExternalSystem
from protocol.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    InboundResult,
    InboundSourceCreate,
    InboundSourceCreated,
    InboundSourceOut,
    InboundSourceUpdate,
    InboundTicket,
    Refusal,
)

router = APIRouter(tags=["integrations"])

SystemName = Annotated[ExternalSystem, Path(description="An external system's name, e.g. jira")]

MAX_BODY_BYTES = 256 * 1024
"""An inbound request is one ticket change; anything larger is refused before it is read further."""


@router.get("/inbound-sources", response_model=list[InboundSourceOut], summary="Systems allowed to send tickets")
def sources(db: DB, _user: IntegrationManager) -> list[InboundSourceOut]:
    return [inbound_source_out(s) for s in list_inbound_sources(db)]


@router.post("/inbound-sources", response_model=InboundSourceCreated, status_code=201,
             summary="Allow a system to send tickets; a generated secret is shown this once")
def create_source(
    body: InboundSourceCreate, db: DB, state: State, user: IntegrationManager, source: Source
) -> InboundSourceCreated:
    row, secret = create_inbound_source(db, body, state.keys.recording_master_key,
                                        actor=audit.user_actor(user), source=source)
    return InboundSourceCreated(source=inbound_source_out(row), secret=secret)


@router.patch("/inbound-sources/{system}", response_model=InboundSourceOut, summary="Enable or disable a source")
def change_source(
    system: SystemName, body: InboundSourceUpdate, db: DB, user: IntegrationManager, source: Source
) -> InboundSourceOut:
    row = set_inbound_source_enabled(db, find_inbound_source(db, system), body.enabled,
                                     actor=audit.user_actor(user), source=source)
    return inbound_source_out(row)


@router.delete("/inbound-sources/{system}", status_code=204,
               summary="Stop accepting a system's requests (its tickets keep their external reference)")
def delete_source(system: SystemName, db: DB, user: IntegrationManager, source: Source) -> None:
    delete_inbound_source(db, find_inbound_source(db, system), actor=audit.user_actor(user), source=source)


@router.post(
    "/inbound/{system}", response_model=InboundResult, dependencies=[SignatureAccess],
    summary="Create or update the ticket an external helpdesk refers to (HMAC-signed, see docs/api.md)",
    responses={200: {"description": "An existing ticket was updated"}, 201: {"description": "A ticket was created"},
               401: {}, 409: {}, 413: {}, 422: {}, 429: {"description": "Too many refused requests; see Retry-After"}},
)
async def receive(
    system: Annotated[str, Path(max_length=64, description="The sending system's name")],
    request: Request, response: Response, state: State, source: Source,
) -> InboundResult:
    # Any name is accepted here and looked up: a malformed one is refused like an unknown
    # one (401), not with a 422 that would tell a prober which names could exist.
    key = source or "unknown"
    now = time.monotonic()
    await run_in_threadpool(INBOUND_REQUESTS.check, state.inbound_failures, key, now)  # maybe Redis: blocks
    body = await _read_body(request)
    timestamp, signature = request.headers.get(TIMESTAMP_HEADER), request.headers.get(SIGNATURE_HEADER)
    result = await state.unit(lambda db: _receive(db, state, system, timestamp, signature, body, source, key, now))
    if isinstance(result, Refusal):
        raise unauthorized(inbound.REFUSED_MESSAGE)
    response.status_code = 201 if result.created else 200
    return result


async def _read_body(request: Request) -> bytes:
    """The raw body (the signature covers these exact bytes), refused past :data:`MAX_BODY_BYTES`
    as soon as the declared length or the bytes read so far say so, never held whole first."""
    too_large = ApiError(413, "too_large", f"the body is over {MAX_BODY_BYTES} bytes; send one ticket change per request")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise too_large
    return bytes(body)


def _receive(
    db: Session, state: BrokerState, system: str, timestamp: str | None, signature: str | None, body: bytes,
    source: str | None, key: str, now: float,
) -> InboundResult | Refusal:
    """Authenticate, then parse and apply, in one transaction; a refusal is audited in its own."""
    refusal = inbound.authenticate(
        db, state.keys.recording_master_key, system, timestamp, signature, body,
        now=time.time(), tolerance=state.settings.inbound_max_skew_seconds, seen=state.inbound_seen,
    )
    if refusal is not None:
        state.inbound_failures.record_failure(key, now)
        audit.record(db, "inbound.refused", actor=audit.ANONYMOUS, source=source, system=system[:32],
                     reason=refusal.value)
        INBOUND_REQUESTS.audit_block(db, source, state.inbound_failures.retry_after(key, now))
        return refusal
    try:
        try:
            change = InboundTicket.model_validate_json(body)
        except ValidationError as exc:
            # The framework's 422, with its message naming each field that was wrong.
            raise RequestValidationError(exc.errors(include_url=False)) from None
        return inbound.apply(db, system, change, source=source)
    except BaseException:
        # Not carried out (rolled back): the sender may fix it or simply send it again.
        state.inbound_seen.forget(inbound.seen_key(system, signature))
        raise
