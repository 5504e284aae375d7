"""File transfers and file requests of a session: both peers, HTTP, chunk by chunk.

Every request carries the peer's own token (the technician's login token or the
host token). Chunk bodies stream straight to the spool while their SHA-256 is
computed; a receiver asking for a chunk that has not arrived yet waits for it
(long poll), so sender and receiver run as one pipeline through the broker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from broker.accounts.access import SessionPeerAccess
from broker.deps import PeerToken, SessionId, State
from broker.refusals import Conflict, Gone, Invalid, NotFound
from broker.server.json_bodies import BoundedJsonRoute
from broker.server.long_polls import wait_for_change
from broker.server.request_limits import body_limit
from broker.sessions import transfers as rules
from broker.sessions.peers import SessionPeer, identify_peer
from broker.state import BrokerState
from broker.storage.models import FileRequest, Transfer
from protocol.signalling import FileRequestUpdate, TransferUpdate
from protocol.transfers import (
    CHUNK_SIZE,
    SHA256_PATTERN,
    FileRequestAnswer,
    FileRequestCreate,
    FileRequestOut,
    TransferCancel,
    TransferComplete,
    TransferCreate,
    TransferDecision,
    TransferFinish,
    TransferOut,
    TransferState,
    chunk_count,
    chunk_span,
    transfer_version,
)

router = APIRouter(
    prefix="/sessions/{session_id}", tags=["files"], dependencies=[SessionPeerAccess], route_class=BoundedJsonRoute,
)
log = logging.getLogger(__name__)

T = TypeVar("T")
TransferId = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$", description="Transfer id")]
ChunkIndex = Annotated[int, Path(ge=0, lt=2**31, description="Chunk number, from 0")]
Wait = Annotated[float, Query(ge=0, le=30, description="Seconds to wait for a change (long poll)")]

MAX_WAIT_CHUNK = 30.0
HASH_WAIT_SECONDS = 10.0
"""How long a report waits for other requests to finish hashing the file's last chunks."""


# The routes are ``async``, each with its unit of work through ``state.unit`` (see ``broker.deps.DB``):
# most tell the peers and wake long polls once it is committed, and the chunk routes stream bodies.


async def _run(state: BrokerState, session_id: str, token: str | None, work: Callable[[Session, SessionPeer], T]) -> T:
    """One unit of work for the identified peer, off the event loop."""
    return await state.unit(lambda db: work(db, identify_peer(db, session_id, token, what="transfer files")))


async def _run_chunk(state: BrokerState, session_id: str, token: str | None, work: Callable[[Session, SessionPeer], T]) -> T:
    """:func:`_run` on the per-chunk paths, which run dozens of times a second: the peer comes from
    :class:`~broker.sessions.peers.PeerCache` when it was just verified."""
    return await state.unit(lambda db: work(db, _cached_peer(db, state, session_id, token)))


def _cached_peer(db: Session, state: BrokerState, session_id: str, token: str | None) -> SessionPeer:
    now, generation = time.monotonic(), state.peers.generation
    peer = state.peers.get(session_id, token, now) if token else None
    if peer is None:
        peer = identify_peer(db, session_id, token, what="transfer files")
        if token:
            state.peers.put(session_id, token, peer, now, generation)
    return peer


async def _announce_request(state: BrokerState, out: FileRequestOut) -> None:
    for peer in await state.rooms.members(out.session_id):
        peer.post(FileRequestUpdate(request=out))


async def _announce(state: BrokerState, out: TransferOut) -> None:
    for peer in await state.rooms.members(out.session_id):
        peer.post(TransferUpdate(transfer=out))
    state.transfer_signals.changed(out.id)
    if out.state.over:
        await run_in_threadpool(state.spool.remove, out.id)


@router.post("/transfers", response_model=TransferOut, status_code=201, summary="Offer a file to the other peer")
async def offer(session_id: SessionId, body: TransferCreate, state: State, token: PeerToken) -> TransferOut:
    settings = state.settings

    def work(db: Session, peer: SessionPeer) -> tuple[TransferOut, FileRequestOut | None]:
        transfer = rules.create_transfer(
            db, peer, body, max_bytes=settings.transfer_max_bytes, free_bytes=state.spool.free_bytes(),
            per_session=settings.transfers_per_session,
        )
        db.flush()
        db.refresh(transfer, ["chunks"])
        # Set only when the rules found the request in this session and approved it (already loaded).
        answered = db.get(FileRequest, transfer.request_id) if transfer.request_id else None
        return rules.transfer_out(transfer), rules.file_request_out(answered) if answered else None

    out, answered = await _run(state, session_id, token, work)
    await _announce(state, out)
    if answered is not None:
        await _announce_request(state, answered)
    return out


@router.get("/transfers", response_model=list[TransferOut], summary="The session's transfers")
async def index(session_id: SessionId, state: State, token: PeerToken) -> list[TransferOut]:
    return await _run(state, session_id, token,
                      lambda db, _peer: [rules.transfer_out(t) for t in rules.list_transfers(db, session_id)])


@router.get("/transfers/{transfer_id}", response_model=TransferOut, summary="A transfer; with wait and known, a long poll")
async def show(
    request: Request, session_id: SessionId, transfer_id: TransferId, state: State, token: PeerToken,
    wait: Wait = 0, known: Annotated[str | None, Query(max_length=200)] = None,
) -> TransferOut:
    with state.transfer_signals.listen(transfer_id) as changed:
        out = await _run(state, session_id, token,
                         lambda db, _peer: rules.transfer_out(rules.get_transfer(db, session_id, transfer_id)))
        if known is not None and known == transfer_version(out) and wait > 0 and not out.state.over:
            await wait_for_change(request, changed, wait)
            out = await _run(state, session_id, token,
                             lambda db, _peer: rules.transfer_out(rules.get_transfer(db, session_id, transfer_id)))
    return out


async def _change(
    state: BrokerState, session_id: str, transfer_id: str, token: str | None,
    change: Callable[[Session, SessionPeer, Transfer], object],
) -> TransferOut:
    def work(db: Session, peer: SessionPeer) -> TransferOut:
        transfer = rules.get_transfer(db, session_id, transfer_id)
        change(db, peer, transfer)
        db.flush()
        db.refresh(transfer, ["chunks"])
        return rules.transfer_out(transfer)

    out = await _run(state, session_id, token, work)
    await _announce(state, out)
    return out


@router.post("/transfers/{transfer_id}/decision", response_model=TransferOut, summary="The receiver accepts or refuses")
async def decision(session_id: SessionId, transfer_id: TransferId, body: TransferDecision, state: State,
                   token: PeerToken) -> TransferOut:
    return await _change(state, session_id, transfer_id, token,
                         lambda db, peer, t: rules.decide(db, peer, t, body))


@router.put("/transfers/{transfer_id}/chunks/{index}", status_code=204, summary="Upload one chunk (sender)",
            openapi_extra=body_limit(CHUNK_SIZE))
async def put_chunk(
    session_id: SessionId, transfer_id: TransferId, index: ChunkIndex, request: Request, state: State,
    x_chunk_sha256: Annotated[str, Header(pattern=SHA256_PATTERN, description="SHA-256 of the chunk")],
    token: PeerToken,
) -> Response:
    def check(db: Session, peer: SessionPeer) -> tuple[int, int]:
        transfer = rules.transfer_row(db, session_id, transfer_id)
        rules.check_chunk_upload(peer, transfer)
        try:
            return chunk_span(index, transfer.size, transfer.chunk_size)
        except ValueError as exc:
            raise Invalid("invalid_chunk", str(exc)) from None

    _offset, length = await _run_chunk(state, session_id, token, check)
    await state.spool.receive(transfer_id, index, request.stream(), size=length, sha256=x_chunk_sha256)

    def record(db: Session) -> str | None:
        """Record the stored chunk; the transfer's state instead when it is over (nothing recorded)."""
        # The peer was identified before the upload; only the transfer's state matters now.
        transfer = rules.transfer_row(db, session_id, transfer_id)
        if TransferState(transfer.state).over:
            return transfer.state
        rules.record_chunk(db, transfer, index, x_chunk_sha256, length)
        return None

    # Stored first, state read second; a cancel writes the state first and empties the spool
    # second. Whichever way they interleave, one of the two sees the other: a chunk stored
    # after the cancel emptied the spool is found here and removed with the rest.
    over = await state.unit(record)
    if over is not None:
        await run_in_threadpool(state.spool.remove, transfer_id)
        raise Conflict("transfer_over", f"the transfer is already {over}")
    state.transfer_signals.changed(transfer_id)
    return Response(status_code=204)


@router.get(
    "/transfers/{transfer_id}/chunks/{index}", summary="Download one chunk (receiver); waits for it to arrive",
    responses={200: {"content": {"application/octet-stream": {}}}, 404: {"description": "not uploaded yet; ask again"}},
)
async def get_chunk(
    request: Request, session_id: SessionId, transfer_id: TransferId, index: ChunkIndex, state: State,
    token: PeerToken, wait: Wait = 10,
) -> Response:
    def lookup(db: Session, peer: SessionPeer) -> str | None:
        transfer = rules.transfer_row(db, session_id, transfer_id)
        rules.check_chunk_download(peer, transfer)
        if index >= chunk_count(transfer.size, transfer.chunk_size):
            raise Invalid("invalid_chunk", f"chunk {index} is outside this file")
        return rules.chunk_sha256(db, transfer_id, index)

    with state.transfer_signals.listen(transfer_id) as arrived:
        sha256 = await _run_chunk(state, session_id, token, lookup)
        if sha256 is None and wait > 0:
            await wait_for_change(request, arrived, min(wait, MAX_WAIT_CHUNK))
            if await request.is_disconnected():
                # The receiver died while it waited (a killed host): handing it the chunk would
                # free the broker's copy and make the sender upload it again for the next receiver.
                return Response(status_code=499)
            sha256 = await _run_chunk(state, session_id, token, lookup)
    if sha256 is None:
        raise NotFound("chunk_not_ready", f"chunk {index} has not been uploaded yet; ask again")
    data = await run_in_threadpool(state.spool.copy_out, transfer_id, index)
    if data is None:
        log.warning("chunk %d of transfer %s was asked for again after it was gone", index, transfer_id)
        # Delivered once already (the receiver lost it) or lost in a broker restart:
        # forget it so the sender, which waits until the receiver is done, uploads it again.
        await _run(state, session_id, token, lambda db, peer: rules.forget_chunk(db, transfer_id, index))
        state.transfer_signals.changed(transfer_id)
        raise Gone("chunk_gone", f"chunk {index} is no longer here; the sender will upload it again")
    return Response(
        content=data, media_type="application/octet-stream", headers={"X-Chunk-SHA256": sha256},
        background=BackgroundTask(state.spool.delivered, transfer_id, index),
    )


@router.delete("/transfers/{transfer_id}/chunks/{index}", response_model=TransferOut,
               summary="The receiver rejects a chunk that failed its hash; the sender sends it again")
async def reject_chunk(session_id: SessionId, transfer_id: TransferId, index: ChunkIndex, state: State,
                       token: PeerToken) -> TransferOut:
    out = await _change(state, session_id, transfer_id, token,
                        lambda db, peer, t: rules.drop_chunk(db, peer, t, index))
    await run_in_threadpool(state.spool.drop, transfer_id, index)
    return out


@router.post("/transfers/{transfer_id}/finish", response_model=TransferOut, summary="The sender has sent every chunk")
async def finish(session_id: SessionId, transfer_id: TransferId, body: TransferFinish, state: State,
                 token: PeerToken) -> TransferOut:
    return await _change(state, session_id, transfer_id, token,
                         lambda db, peer, t: rules.finish(db, peer, t, body.sha256))


@router.post("/transfers/{transfer_id}/complete", response_model=TransferOut,
             summary="The receiver has the whole file; the broker checks the three hashes agree")
async def complete(session_id: SessionId, transfer_id: TransferId, body: TransferComplete, state: State,
                   token: PeerToken) -> TransferOut:
    def count(db: Session, peer: SessionPeer) -> int:
        transfer = rules.get_transfer(db, session_id, transfer_id)
        rules.check_completion(peer, transfer)
        total = chunk_count(transfer.size, transfer.chunk_size)
        if len(transfer.chunks) != total:
            raise Conflict("chunks_missing", f"the broker holds {len(transfer.chunks)} of {total} chunks")
        return total

    total = await _run(state, session_id, token, count)
    broker_sha256 = await _relayed_sha256(state, session_id, transfer_id, token, total)
    return await _change(state, session_id, transfer_id, token,
                         lambda db, peer, t: rules.complete(db, peer, t, body.sha256, broker_sha256))


async def _relayed_sha256(state: BrokerState, session_id: str, transfer_id: str, token: str | None, total: int) -> str:
    """The broker's own SHA-256 of the ``total`` chunks it relayed, for the receiver's report.

    Ready at once unless the broker restarted during the transfer: it then asks the
    sender for the chunks it no longer holds (they are forgotten, the sender uploads
    them again) and answers 409 ``hashing_again``: the receiver reports again once the
    broker holds every chunk. The last chunks may still be in another request's hash:
    that is waited for.
    """
    deadline = time.monotonic() + HASH_WAIT_SECONDS
    while True:
        gone = await run_in_threadpool(state.spool.resume_hash, transfer_id, total)
        digest = state.spool.file_sha256(transfer_id, total)
        if digest is not None:
            return digest
        if gone or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    if not gone:
        raise Conflict("hashing_again", "the broker is still hashing the file's last chunks; report the file again")
    log.info("transfer %s: the broker hashes the file again; %d chunks are uploaded again", transfer_id, len(gone))
    await _change(state, session_id, transfer_id, token, lambda db, peer, t: rules.hand_back_for_hashing(db, peer, t, gone))
    raise Conflict(
        "hashing_again", f"the broker restarted during this transfer and checks the file again: the sender uploads "
        f"{len(gone)} chunks again; report the file again once the broker holds every chunk",
    )


@router.post("/transfers/{transfer_id}/cancel", response_model=TransferOut, summary="Either side stops a transfer")
async def cancel(session_id: SessionId, transfer_id: TransferId, body: TransferCancel, state: State,
                 token: PeerToken) -> TransferOut:
    return await _change(state, session_id, transfer_id, token,
                         lambda db, peer, t: rules.cancel(db, peer, t, body.reason))


# --- file requests ------------------------------------------------------------------


@router.post("/file-requests", response_model=FileRequestOut, status_code=201,
             summary="The technician asks the host for a file; the user picks or approves it")
async def request_file(session_id: SessionId, body: FileRequestCreate, state: State,
                       token: PeerToken) -> FileRequestOut:
    out = await _run(state, session_id, token,
                     lambda db, peer: rules.file_request_out(rules.create_file_request(
                         db, peer, body, pending_most=state.settings.file_requests_per_session)))
    await _announce_request(state, out)
    return out


@router.get("/file-requests", response_model=list[FileRequestOut], summary="The session's file requests")
async def file_requests(session_id: SessionId, state: State, token: PeerToken) -> list[FileRequestOut]:
    return await _run(state, session_id, token, lambda db, _peer: [
        rules.file_request_out(r)
        for r in db.scalars(select(FileRequest).where(FileRequest.session_id == session_id).order_by(FileRequest.created_at))
    ])


@router.post("/file-requests/{request_id}/answer", response_model=FileRequestOut, summary="The host declines a request")
async def answer(session_id: SessionId, request_id: TransferId, body: FileRequestAnswer, state: State,
                 token: PeerToken) -> FileRequestOut:
    out = await _run(state, session_id, token,
                     lambda db, peer: rules.file_request_out(rules.answer_file_request(db, peer, request_id, body)))
    await _announce_request(state, out)
    return out
