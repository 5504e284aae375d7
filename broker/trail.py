"""The audit trail on the database: sealing events into chains, signing heads, verifying.

Events are written unsealed in the transaction of the change they describe
(:func:`broker.audit.record`); :func:`seal_pending` then chains them, one at a
time in commit order, under a lock (one sealer per broker process). The broker
signs every chain's head at least once a minute and when a session ends.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timezone

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .chain import (
    BROKER_CHAIN,
    GENESIS,
    ChainEvent,
    Checkpoint,
    Verdict,
    event_hash,
    segment_problem,
    sign_checkpoint,
    verify_chain,
)
from .clock import utcnow
from .models import AuditCheckpoint, AuditEvent

SEGMENT_KIND = "recording.segment"
SEALING = threading.Lock()
"""Held from reading the chain heads until the sealed events are committed."""


def iso(moment: datetime) -> str:
    """The one text form of a time in the chain: UTC, microseconds, ``Z``."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def as_chain_event(row: AuditEvent) -> ChainEvent:
    return ChainEvent(
        id=row.id, chain=row.chain or "", seq=row.chain_seq or 0, at=iso(row.at), kind=row.kind, actor=row.actor,
        source=row.source, session_id=row.session_id, ticket_id=row.ticket_id, data=row.data or {},
        prev_hash=row.prev_hash or "", hash=row.hash or "",
    )


def seal_pending(db: Session) -> int:
    """Chain every event not chained yet, in the order they were committed; returns how many.

    The caller runs this, and commits, while holding :data:`SEALING` (use
    :meth:`broker.deps.BrokerState.seal_trail`): two sealers reading the same head
    would give two events one number.
    """
    rows = db.scalars(select(AuditEvent).where(AuditEvent.hash.is_(None)).order_by(AuditEvent.id)).all()
    heads: dict[str, tuple[int, str]] = {}
    for row in rows:
        chain = row.session_id or BROKER_CHAIN
        if chain not in heads:
            last = db.execute(
                select(AuditEvent.chain_seq, AuditEvent.hash)
                .where(AuditEvent.chain == chain, AuditEvent.hash.is_not(None))
                .order_by(AuditEvent.chain_seq.desc())
                .limit(1)
            ).first()
            heads[chain] = (last.chain_seq, last.hash) if last else (0, GENESIS)
        seq, previous = heads[chain]
        row.chain, row.chain_seq, row.prev_hash = chain, seq + 1, previous
        row.hash = event_hash(as_chain_event(row).fields())
        heads[chain] = (seq + 1, row.hash)
    db.flush()
    return len(rows)


def sign_heads(db: Session, key: Ed25519PrivateKey, chains: set[str] | None = None) -> list[Checkpoint]:
    """Sign the head of every chain (or of ``chains``) that moved since its last checkpoint."""
    heads = db.execute(
        select(AuditEvent.chain, func.max(AuditEvent.chain_seq))
        .where(AuditEvent.hash.is_not(None))
        .group_by(AuditEvent.chain)
    ).all()
    signed = dict(db.execute(select(AuditCheckpoint.chain, func.max(AuditCheckpoint.seq)).group_by(AuditCheckpoint.chain)).all())
    made = []
    now = iso(utcnow())
    for chain, seq in heads:
        if (chains is not None and chain not in chains) or signed.get(chain, 0) >= seq:
            continue
        head_hash = db.scalar(select(AuditEvent.hash).where(AuditEvent.chain == chain, AuditEvent.chain_seq == seq))
        checkpoint = sign_checkpoint(key, chain, seq, head_hash or "", now)
        db.add(AuditCheckpoint(chain=chain, seq=seq, head_hash=checkpoint.head_hash,
                               signed_at=checkpoint.signed_at, signature=checkpoint.signature))
        made.append(checkpoint)
    return made


def load_chains(db: Session, chain: str | None = None) -> tuple[dict[str, list[ChainEvent]], dict[str, list[Checkpoint]], int]:
    """Every sealed event and checkpoint (of one chain, or all), and how many events wait to be sealed."""
    events: dict[str, list[ChainEvent]] = defaultdict(list)
    query = select(AuditEvent).where(AuditEvent.hash.is_not(None))
    if chain is not None:
        query = query.where(AuditEvent.chain == chain)
    for row in db.scalars(query.order_by(AuditEvent.chain, AuditEvent.chain_seq)):
        events[row.chain or ""].append(as_chain_event(row))
    checkpoints: dict[str, list[Checkpoint]] = defaultdict(list)
    cp_query = select(AuditCheckpoint)
    if chain is not None:
        cp_query = cp_query.where(AuditCheckpoint.chain == chain)
    for cp in db.scalars(cp_query):
        checkpoints[cp.chain].append(Checkpoint(cp.chain, cp.seq, cp.head_hash, cp.signed_at, cp.signature))
    unsealed_query = select(func.count()).select_from(AuditEvent).where(AuditEvent.hash.is_(None))
    if chain is not None:
        unsealed_query = unsealed_query.where(AuditEvent.session_id == (None if chain == BROKER_CHAIN else chain))
    return events, checkpoints, int(db.scalar(unsealed_query) or 0)


def verify_loaded(
    events: dict[str, list[ChainEvent]],
    checkpoints: dict[str, list[Checkpoint]],
    key: Ed25519PublicKey,
    segment_sha256: Callable[[str, int], str | None],
    *,
    stored: bool = True,
) -> Verdict:
    """Check chains, checkpoints and recording segments (``segment_sha256(session, index)``).

    ``stored``: segments are the broker's encrypted files; otherwise a bundle's plain ones.
    """
    verdict = Verdict()
    for chain in sorted(set(events) | set(checkpoints)):
        chain_events = events.get(chain, [])
        verdict.chains += 1
        verdict.events += len(chain_events)
        verdict.checkpoints += len(checkpoints.get(chain, []))
        verdict.problems += verify_chain(chain, chain_events, checkpoints.get(chain, []), key)
        for event in chain_events:
            if event.kind == SEGMENT_KIND and event.session_id:
                verdict.segments += 1
                actual = segment_sha256(event.session_id, int(event.data.get("index", -1)))
                problem = segment_problem(chain, event, actual, stored=stored)
                if problem is not None:
                    verdict.problems.append(problem)
    return verdict
