"""File transfers and file requests: the rules, over the database.

The broker checks every step against the session's grant permissions and the
end user's recorded consent (the host checks again on its side), keeps each
chunk's SHA-256, and audits every transfer with its name, size, hashes,
direction, who and how it ended.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from broker.audit import events as audit
from broker.clock import utcnow
from broker.refusals import Conflict, Forbidden, Invalid, NotFound, OutOfSpace, RateLimited, TooLarge
from broker.sessions.grants import session_permissions
from broker.sessions.peers import SessionPeer
from broker.storage.models import FileRequest, SupportSession, Transfer, TransferChunk
from protocol.api import SessionState
from protocol.permissions import Permission
from protocol.signalling import Role
from protocol.transfers import (
    CHUNK_SIZE,
    Direction,
    FileRequestAnswer,
    FileRequestCreate,
    FileRequestOut,
    FileRequestState,
    TransferCreate,
    TransferDecision,
    TransferOut,
    TransferState,
    UnsafeName,
    chunk_count,
    safe_file_name,
)

ACTIVE_STATES = (TransferState.offered.value, TransferState.accepted.value)
SESSION_OVER_STATES = (SessionState.ended.value, SessionState.expired.value)
LOOKUP_BATCH = 500
"""Ids per ``IN (...)`` of one query: well inside every database's limit on parameters."""


def permission_for(direction: Direction) -> Permission:
    return Permission.files_send if direction is Direction.to_host else Permission.files_receive


def sender_of(direction: Direction) -> Role:
    return Role.technician if direction is Direction.to_host else Role.host


def refusal(session: SupportSession, permission: Permission) -> str | None:
    """Why ``permission`` is not available in ``session`` now (grant and recorded consent)."""
    if permission not in session_permissions(session):
        return f"the technician's permissions do not include {permission.value}"
    if session.consent is None:
        return "the user has not answered the consent prompt yet"
    if permission.value not in session.consent:
        return f"the user has not allowed {permission.value}"
    return None


def _require(session: SupportSession, permission: Permission) -> None:
    reason = refusal(session, permission)
    if reason is not None:
        raise Forbidden("not_allowed", reason)


def transfer_out(transfer: Transfer) -> TransferOut:
    return TransferOut(
        id=transfer.id,
        session_id=transfer.session_id,
        direction=Direction(transfer.direction),
        name=transfer.name,
        size=transfer.size,
        chunk_size=transfer.chunk_size,
        chunk_count=chunk_count(transfer.size, transfer.chunk_size),
        state=TransferState(transfer.state),
        sha256=transfer.sha256,
        broker_sha256=transfer.broker_sha256,
        saved_as=transfer.saved_as,
        chunks_at_broker=[c.index for c in transfer.chunks],
        reason=transfer.reason,
        created_by=transfer.created_by,
        created_at=transfer.created_at,
        completed_at=transfer.completed_at,
        request_id=transfer.request_id,
    )


def get_transfer(db: Session, session_id: str, transfer_id: str) -> Transfer:
    transfer = db.scalars(
        select(Transfer)
        .where(Transfer.id == transfer_id, Transfer.session_id == session_id)
        .options(selectinload(Transfer.chunks))
    ).one_or_none()
    if transfer is None:
        raise NotFound("not_found", f"transfer {transfer_id} does not exist in this session")
    return transfer


def transfer_row(db: Session, session_id: str, transfer_id: str) -> Transfer:
    """The transfer without its chunk list: for the per-chunk paths, which must stay cheap."""
    transfer = db.get(Transfer, transfer_id)
    if transfer is None or transfer.session_id != session_id:
        raise NotFound("not_found", f"transfer {transfer_id} does not exist in this session")
    return transfer


def chunk_sha256(db: Session, transfer_id: str, index: int) -> str | None:
    """The SHA-256 of a chunk the broker holds, or None when it does not hold it."""
    chunk = db.get(TransferChunk, (transfer_id, index))
    return chunk.sha256 if chunk is not None else None


def list_transfers(db: Session, session_id: str) -> list[Transfer]:
    return list(
        db.scalars(
            select(Transfer)
            .where(Transfer.session_id == session_id)
            .options(selectinload(Transfer.chunks))
            .order_by(Transfer.created_at)
        )
    )


def create_transfer(
    db: Session,
    peer: SessionPeer,
    body: TransferCreate,
    *,
    max_bytes: int,
    free_bytes: int | None,
    per_session: int,
) -> Transfer:
    """Register a file the sender is about to send; nothing moves until the receiver accepts."""
    if peer.role is not sender_of(body.direction):
        raise Forbidden("not_allowed", f"only the {sender_of(body.direction).value} sends files {body.direction.value}")
    session = peer.session
    _require(session, permission_for(body.direction))
    try:
        name = safe_file_name(body.name)
    except UnsafeName as exc:
        raise Invalid("invalid_name", str(exc)) from None
    if body.size > max_bytes:
        raise TooLarge("too_large", f"{body.size} bytes is over this broker's limit of {max_bytes} bytes per file")
    if free_bytes is not None and body.size > free_bytes:
        raise OutOfSpace("no_space", f"the broker has {free_bytes} bytes free, not enough for {body.size}")
    active = db.execute(
        select(func.count()).select_from(Transfer).where(
            Transfer.session_id == session.id, Transfer.state.in_(ACTIVE_STATES)
        )
    ).scalar_one()
    if active >= per_session:
        raise RateLimited("too_many_transfers", f"{active} transfers are already running in this session; wait for one to end")
    request = _answered_request(db, session, body)
    transfer = Transfer(
        id=str(uuid.uuid4()), session_id=session.id, direction=body.direction.value, name=name,
        size=body.size, chunk_size=CHUNK_SIZE, state=TransferState.offered.value,
        created_by=peer.actor, request_id=body.request_id, created_at=utcnow(),
    )
    db.add(transfer)
    if request is not None:
        request.state = FileRequestState.approved.value
        request.transfer_id = transfer.id
    db.flush()
    audit.record(
        db, "transfer.offered", actor=peer.actor, session_id=session.id, ticket_id=session.ticket_id,
        transfer_id=transfer.id, name=name, size=body.size, direction=body.direction.value,
    )
    return transfer


def _answered_request(db: Session, session: SupportSession, body: TransferCreate) -> FileRequest | None:
    """The file request of ``session`` that the offered file answers, checked before anything is created.

    A file request asks the host for a file, so a file for the technician answers one of this
    session's pending requests and a file for the host answers none. ``request_id`` is checked
    whichever the direction: an id of no request of this session is refused, never stored or
    announced to this session's peers.
    """
    if body.request_id is None:
        if body.direction is Direction.to_technician:
            raise Invalid("invalid_request", "a file for the technician answers a file request: give request_id")
        return None
    request = db.get(FileRequest, body.request_id)
    if request is None or request.session_id != session.id:
        raise NotFound("not_found", f"request_id: file request {body.request_id} does not exist in this session")
    if body.direction is Direction.to_host:
        raise Invalid("invalid_request", "request_id: a file sent to the host answers no file request "
                       "(only the host answers them, with a file to_technician); leave request_id out")
    if request.state != FileRequestState.pending.value:
        raise Conflict("request_not_pending", f"request_id: file request {request.id} is already {request.state}")
    return request


def _require_role(peer: SessionPeer, role: Role, what: str) -> None:
    if peer.role is not role:
        raise Forbidden("not_allowed", f"only the {role.value} can {what}")


def _require_active(transfer: Transfer) -> None:
    if TransferState(transfer.state).over:
        raise Conflict("transfer_over", f"the transfer is already {transfer.state}")


def receiver_of(transfer: Transfer) -> Role:
    return sender_of(Direction(transfer.direction)).other


def decide(db: Session, peer: SessionPeer, transfer: Transfer, body: TransferDecision) -> None:
    _require_role(peer, receiver_of(transfer), "accept or refuse this transfer")
    if transfer.state != TransferState.offered.value:
        raise Conflict("transfer_decided", f"the transfer is already {transfer.state}")
    if body.accept:
        transfer.state = TransferState.accepted.value
        transfer.saved_as = body.saved_as
    else:
        transfer.state = TransferState.refused.value
        transfer.reason = body.reason or "refused"
        transfer.completed_at = utcnow()
    audit.record(
        db, "transfer.accepted" if body.accept else "transfer.refused", actor=peer.actor,
        session_id=transfer.session_id, transfer_id=transfer.id, name=transfer.name,
        saved_as=body.saved_as, reason=body.reason,
    )


def check_chunk_upload(peer: SessionPeer, transfer: Transfer) -> None:
    _require_role(peer, sender_of(Direction(transfer.direction)), "upload chunks of this transfer")
    if transfer.state != TransferState.accepted.value:
        raise Conflict("not_accepted", f"the transfer is {transfer.state}; chunks are taken once the receiver accepted")


def record_chunk(db: Session, transfer: Transfer, index: int, sha256: str, size: int) -> None:
    existing = db.get(TransferChunk, (transfer.id, index))
    if existing is None:
        db.add(TransferChunk(transfer_id=transfer.id, index=index, sha256=sha256, size=size))
    else:
        existing.sha256, existing.size = sha256, size


def check_chunk_download(peer: SessionPeer, transfer: Transfer) -> None:
    _require_role(peer, receiver_of(transfer), "download chunks of this transfer")
    if transfer.state != TransferState.accepted.value:
        raise Conflict("not_accepted", f"the transfer is {transfer.state}")


def forget_chunk(db: Session, transfer_id: str, index: int) -> None:
    """The broker no longer holds a chunk's bytes: forget the chunk, so that it is sent again."""
    chunk = db.get(TransferChunk, (transfer_id, index))
    if chunk is not None:
        db.delete(chunk)


def drop_chunk(db: Session, peer: SessionPeer, transfer: Transfer, index: int) -> None:
    """The receiver found the chunk corrupt: forget it so that the sender sends it again."""
    check_chunk_download(peer, transfer)
    chunk = db.get(TransferChunk, (transfer.id, index))
    if chunk is not None:
        db.delete(chunk)
    audit.record(db, "transfer.chunk_rejected", actor=peer.actor, session_id=transfer.session_id,
                 transfer_id=transfer.id, index=index)


def finish(db: Session, peer: SessionPeer, transfer: Transfer, sha256: str) -> None:
    _require_role(peer, sender_of(Direction(transfer.direction)), "finish this transfer")
    _require_active(transfer)
    transfer.sha256 = sha256


def check_completion(peer: SessionPeer, transfer: Transfer) -> None:
    """Only the receiver reports the file, once the sender declared its hash and while it runs."""
    _require_role(peer, receiver_of(transfer), "complete this transfer")
    _require_active(transfer)
    if transfer.sha256 is None:
        raise Conflict("not_finished", "the sender has not finished uploading yet")


def hand_back_for_hashing(db: Session, peer: SessionPeer, transfer: Transfer, chunks: list[int]) -> None:
    """The broker lost its running hash of the file (it restarted): the sender uploads ``chunks`` again.

    They are forgotten, as a chunk gone from the spool is, so that the sender, which waits
    for the receiver, uploads them again; the broker hashes them and lets them go.
    """
    check_completion(peer, transfer)
    for index in chunks:
        forget_chunk(db, transfer.id, index)
    audit.record(
        db, "transfer.hashing_again", actor=audit.BROKER, session_id=transfer.session_id, transfer_id=transfer.id,
        name=transfer.name, chunks=len(chunks), first_chunk=chunks[0] if chunks else None,
        reason="the broker restarted during the transfer and hashes the file again",
    )


def complete(db: Session, peer: SessionPeer, transfer: Transfer, sha256: str, broker_sha256: str) -> bool:
    """The receiver reports the whole file; completed only if sender, broker and receiver agree on its hash."""
    check_completion(peer, transfer)
    if not broker_sha256:
        raise ValueError("a transfer completes only with the broker's own hash of the bytes it relayed")
    transfer.broker_sha256 = broker_sha256
    transfer.completed_at = utcnow()
    agreed = sha256 == transfer.sha256 == broker_sha256
    transfer.state = TransferState.completed.value if agreed else TransferState.failed.value
    if not agreed:
        transfer.reason = "the file's SHA-256 differs between sender, broker and receiver"
    audit.record(
        db, "transfer.completed" if agreed else "transfer.failed", actor=peer.actor,
        session_id=transfer.session_id, transfer_id=transfer.id, name=transfer.name,
        saved_as=transfer.saved_as, size=transfer.size, direction=transfer.direction,
        sender_sha256=transfer.sha256, broker_sha256=broker_sha256, receiver_sha256=sha256,
        created_by=transfer.created_by,
    )
    return agreed


def cancel(db: Session, peer: SessionPeer | None, transfer: Transfer, reason: str) -> None:
    _require_active(transfer)
    transfer.state = TransferState.cancelled.value
    transfer.reason = reason or "cancelled"
    transfer.completed_at = utcnow()
    audit.record(
        db, "transfer.cancelled", actor=peer.actor if peer else audit.BROKER, session_id=transfer.session_id,
        transfer_id=transfer.id, name=transfer.name, size=transfer.size, direction=transfer.direction,
        reason=transfer.reason,
    )


def sweep_transfers(db: Session, held: Iterable[str]) -> set[str]:
    """Cancel the transfers still running in sessions that are over; return which of ``held`` are over.

    ``held`` are the transfers the spool holds chunks of: those that are over are to be
    freed. Only running transfers (found by their state's index), their sessions and the
    held transfers are read, by key: a sweep costs the same however many transfers ended before.
    """
    running = db.scalars(select(Transfer).where(Transfer.state.in_(ACTIVE_STATES))).all()
    over_sessions = {
        session_id
        for batch in _batches({transfer.session_id for transfer in running})
        for session_id in db.scalars(select(SupportSession.id).where(
            SupportSession.id.in_(batch), SupportSession.state.in_(SESSION_OVER_STATES)))
    }
    for transfer in running:
        if transfer.session_id in over_sessions:
            cancel(db, None, transfer, "the session ended")
    db.flush()
    return {
        transfer_id
        for batch in _batches(held)
        for transfer_id in db.scalars(select(Transfer.id).where(
            Transfer.id.in_(batch), Transfer.state.not_in(ACTIVE_STATES)))
    }


def _batches(ids: Iterable[str]) -> Iterator[list[str]]:
    """``ids`` in lists of at most :data:`LOOKUP_BATCH`, one ``IN (...)`` each."""
    ordered = sorted(ids)
    for start in range(0, len(ordered), LOOKUP_BATCH):
        yield ordered[start:start + LOOKUP_BATCH]


# --- file requests ------------------------------------------------------------------


def file_request_out(request: FileRequest) -> FileRequestOut:
    return FileRequestOut(
        id=request.id, session_id=request.session_id, path=request.path, note=request.note,
        state=FileRequestState(request.state), reason=request.reason, transfer_id=request.transfer_id,
        created_at=request.created_at,
    )


def create_file_request(db: Session, peer: SessionPeer, body: FileRequestCreate, *, pending_most: int) -> FileRequest:
    """The technician asks for a file; at most ``pending_most`` wait for the user at once
    (each is a question on the user's screen)."""
    _require_role(peer, Role.technician, "ask for files")
    _require(peer.session, Permission.files_receive)
    if "\x00" in body.path:
        raise Invalid("invalid_request", "a path cannot contain a NUL character")
    pending = db.execute(
        select(func.count()).select_from(FileRequest).where(
            FileRequest.session_id == peer.session.id, FileRequest.state == FileRequestState.pending.value,
        )
    ).scalar_one()
    if pending >= pending_most:
        raise RateLimited("too_many_requests", f"{pending} file requests already wait for the user; wait for an answer")
    request = FileRequest(
        id=str(uuid.uuid4()), session_id=peer.session.id, path=body.path, note=body.note,
        state=FileRequestState.pending.value, created_at=utcnow(),
    )
    db.add(request)
    audit.record(db, "file_request.created", actor=peer.actor, session_id=peer.session.id,
                 request_id=request.id, path=body.path)
    return request


def answer_file_request(db: Session, peer: SessionPeer, request_id: str, body: FileRequestAnswer) -> FileRequest:
    """The host refuses a request (approving happens by creating the transfer that answers it)."""
    _require_role(peer, Role.host, "answer file requests")
    request = db.get(FileRequest, request_id)
    if request is None or request.session_id != peer.session.id:
        raise NotFound("not_found", f"file request {request_id} does not exist in this session")
    if request.state != FileRequestState.pending.value:
        raise Conflict("request_not_pending", f"the request is already {request.state}")
    if body.approve:
        raise Invalid("invalid_request", "approve a request by offering the file (POST .../transfers with request_id)")
    request.state = FileRequestState.refused.value
    request.reason = body.reason or "the user declined"
    audit.record(db, "file_request.refused", actor=peer.actor, session_id=peer.session.id,
                 request_id=request.id, reason=request.reason)
    return request
