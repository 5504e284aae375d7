"""The audit trail on the database: sealing events into chains, signing heads, verifying.

Events are written unsealed in the transaction of the change they describe
(:func:`broker.audit.events.record`); :func:`seal_pending` then chains them, one at a
time in commit order, under lock :data:`SEALER_LOCK` (one sealer at a time across every
broker process on the database: :mod:`broker.storage.broker_locks`), and signs
each chain's new head in the same transaction: a sealed event is never without
a signed head. :func:`seal_backlog` does so in transactions of at most
:data:`SEAL_BATCH` events. Before it seals onto a chain it checks the chain from its last
signed head (:func:`broker.audit.chain.judge_head`) and refuses, loudly and on the
record, to sign over one that does not check out.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from broker.audit.chain import (
    BROKER_CHAIN,
    CHAIN_CLOSED,
    CHAIN_OPENED,
    GENESIS,
    SESSION_END_KINDS,
    ChainEvent,
    Freshness,
    SignedHead,
    Verdict,
    check_commitments,
    check_exported_heads,
    event_hash,
    judge_head,
    segment_index,
    segment_problem,
    sign_head,
    verify_chain,
)
from broker.clock import utcnow
from broker.storage.models import AuditEvent, AuditHead

log = logging.getLogger(__name__)

SEGMENT_KIND = "recording.segment"
SIGN_REFUSED = "audit.sign_refused"
"""Broker-chain event: a chain did not check out from its signed head, so nothing more is sealed onto it."""
SEALED_LATE = "audit.sealed_late"
"""Broker-chain event: events older than the grace were found unsealed (written before a crash, or inserted)."""
SEALER_LOCK = "audit-sealer"
"""The broker lock (``Database.locks``) held from reading the chain heads until the sealed events are committed."""
SEAL_BATCH = 1000
"""Most pending events sealed in one transaction by :func:`seal_backlog`: a backlog (a crash, a
flood of reports) is sealed in several short transactions, not one that holds the write lock
for as long as it takes."""


def iso(moment: datetime) -> str:
    """The one text form of a time in the chain: UTC, microseconds, ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def as_chain_event(row: AuditEvent) -> ChainEvent:
    return ChainEvent(
        id=row.id, chain=row.chain or "", seq=row.chain_seq or 0, at=iso(row.at), kind=row.kind, actor=row.actor,
        source=row.source, session_id=row.session_id, ticket_id=row.ticket_id, data=row.data or {},
        prev_hash=row.prev_hash or "", hash=row.hash or "",
    )


def as_signed_head(row: AuditHead) -> SignedHead:
    return SignedHead(row.chain, row.seq, row.head_hash, row.signed_at, row.signature)


@dataclass
class SealResult:
    """What one round of sealing did."""

    sealed: int = 0
    signed: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    """Chains not sealed onto, and why."""
    last_id: int = 0
    """The highest pending event id this round looked at (0: none)."""
    more: bool = False
    """The round stopped at its limit: events after ``last_id`` may still wait."""

    def add(self, other: SealResult) -> None:
        """Count ``other``, a later round, in this one."""
        self.sealed += other.sealed
        self.signed = list(dict.fromkeys([*self.signed, *other.signed]))
        self.refused.update(other.refused)
        self.last_id = max(self.last_id, other.last_id)
        self.more = other.more


def seal_pending(
    db: Session, key: Ed25519PrivateKey, *, grace: timedelta, refused_before: set[tuple[str, str]] | None = None,
    after_id: int = 0, limit: int | None = None,
) -> SealResult:
    """Chain every event not chained yet, in the order they were committed, and sign the moved heads.

    ``after_id`` and ``limit``: only the first ``limit`` pending events whose id is above
    ``after_id`` (the broker's own follow-ups to them besides); :func:`seal_backlog` goes
    through everything so, a transaction per batch.

    The caller runs this, and commits, while holding :data:`SEALER_LOCK` (use
    :meth:`broker.deps.BrokerState.seal_trail`): two sealers reading the same head
    would give two events one number. A chain that does not check out from its
    signed head is left alone (its new events stay unsealed, nothing is lost) and
    an ``audit.sign_refused`` event says why, once per chain and reason
    (``refused_before`` remembers them across rounds).
    """
    now = utcnow()
    result = SealResult()
    pending = list(db.scalars(
        select(AuditEvent).where(AuditEvent.hash.is_(None), AuditEvent.id > after_id).order_by(AuditEvent.id).limit(limit)
    ))
    if not pending:
        return result
    result.last_id = pending[-1].id
    result.more = limit is not None and len(pending) == limit
    chains = {row.session_id or BROKER_CHAIN for row in pending} | {BROKER_CHAIN}
    heads, tips, result.refused = _judge_chains(db, chains, key.public_key())
    late = [row for row in pending if row.at < now - grace]
    moved: set[str] = set()
    while pending:
        follow_ups: list[AuditEvent] = []
        closing: list[str] = []
        for row in pending:
            chain = row.session_id or BROKER_CHAIN
            if chain not in tips:
                continue
            seq, previous = tips[chain]
            row.chain, row.chain_seq, row.prev_hash = chain, seq + 1, previous
            row.hash = event_hash(as_chain_event(row).fields())
            tips[chain] = (seq + 1, row.hash)
            moved.add(chain)
            result.sealed += 1
            if chain != BROKER_CHAIN and seq == 0:
                follow_ups.append(_broker_event(now, CHAIN_OPENED, chain=chain, first_hash=row.hash))
            if chain != BROKER_CHAIN and row.kind in SESSION_END_KINDS:
                closing.append(chain)
        for chain in dict.fromkeys(closing):
            seq, head = tips[chain]
            follow_ups.append(_broker_event(now, CHAIN_CLOSED, chain=chain, seq=seq, head=head))
        for chain, why in result.refused.items():
            if refused_before is not None and (chain, why) in refused_before:
                continue
            log.error("audit chain %s does not check out, so the broker will not sign over it: %s; "
                      "run deskhand-broker audit verify", chain, why)
            follow_ups.append(_broker_event(now, SIGN_REFUSED, chain=chain, reason=why))
            if refused_before is not None:
                refused_before.add((chain, why))
        if late:
            log.warning("%d audit events were found unsealed, the oldest from %s", len(late), iso(late[0].at))
            follow_ups.append(_broker_event(now, SEALED_LATE, count=len(late), first_row=late[0].id,
                                            last_row=late[-1].id, oldest=iso(late[0].at)))
            late = []
        db.add_all(follow_ups)
        db.flush()
        pending = follow_ups
    signed_at = iso(now)
    for chain in sorted(moved):
        seq, head_hash = tips[chain]
        signed = sign_head(key, chain, seq, head_hash, signed_at)
        stored = heads.get(chain)
        if stored is None:
            db.add(AuditHead(chain=chain, seq=seq, head_hash=head_hash, signed_at=signed_at, signature=signed.signature))
        else:
            stored.seq, stored.head_hash, stored.signed_at, stored.signature = seq, head_hash, signed_at, signed.signature
        result.signed.append(chain)
    db.flush()
    return result


def seal_backlog(
    unit_of_work: Callable[[], AbstractContextManager[Session]], key: Ed25519PrivateKey, *, grace: timedelta,
    refused_before: set[tuple[str, str]] | None = None, batch: int = SEAL_BATCH,
) -> SealResult:
    """Seal everything pending, at most ``batch`` events per transaction, each committed by ``unit_of_work``.

    The caller holds :data:`SEALER_LOCK` throughout. Batches go on in id order from where the last
    stopped, so the events of a chain that may not be sealed onto are passed over, not read again.
    """
    total = SealResult()
    while True:
        with unit_of_work() as db:
            result = seal_pending(db, key, grace=grace, refused_before=refused_before,
                                  after_id=total.last_id, limit=batch)
        total.add(result)
        if not result.more:
            return total


def _broker_event(now: datetime, kind: str, **data: object) -> AuditEvent:
    return AuditEvent(at=now, kind=kind, actor="broker", source=None, session_id=None, ticket_id=None, data=data)


def _judge_chains(
    db: Session, chains: set[str], public_key: Ed25519PublicKey,
) -> tuple[dict[str, AuditHead], dict[str, tuple[int, str]], dict[str, str]]:
    """The chains' head rows; each chain's tip to seal onto (seq, hash), or why it may not be sealed onto."""
    heads = {row.chain: row for row in db.scalars(select(AuditHead).where(AuditHead.chain.in_(chains)))}
    last_sealed = dict(db.execute(
        select(AuditEvent.chain, func.max(AuditEvent.chain_seq))
        .where(AuditEvent.chain.in_(chains), AuditEvent.hash.is_not(None))
        .group_by(AuditEvent.chain)
    ).all())
    head_events = {
        (row.chain, row.chain_seq): as_chain_event(row)
        for row in db.scalars(select(AuditEvent).where(
            tuple_(AuditEvent.chain, AuditEvent.chain_seq).in_([(h.chain, h.seq) for h in heads.values()]),
            AuditEvent.hash.is_not(None)))
    } if heads else {}
    tips: dict[str, tuple[int, str]] = {}
    refused: dict[str, str] = {}
    for chain in sorted(chains):
        row = heads.get(chain)
        head = as_signed_head(row) if row is not None else None
        head_event = head_events.get((chain, head.seq)) if head is not None else None
        why = judge_head(chain, head, head_event, int(last_sealed.get(chain) or 0), public_key)
        if why is not None:
            refused[chain] = why
        else:
            tips[chain] = (head.seq, head.head_hash) if head is not None else (0, GENESIS)
    return heads, tips, refused


@dataclass
class LoadedTrail:
    """Sealed events and signed heads as read from the database, and how many events wait to be sealed."""

    events: dict[str, list[ChainEvent]]
    heads: dict[str, list[SignedHead]]
    unsealed: int


def load_chains(db: Session, chain: str | None = None) -> LoadedTrail:
    """Every sealed event and signed head (of one chain, or all), and how many events wait to be sealed.

    Heads are read before events: an event sealed in between then shows as a
    recent unsigned one (allowed for a grace), never as a head beyond its chain.
    """
    heads: dict[str, list[SignedHead]] = defaultdict(list)
    head_query = select(AuditHead)
    if chain is not None:
        head_query = head_query.where(AuditHead.chain == chain)
    for head_row in db.scalars(head_query):
        heads[head_row.chain].append(as_signed_head(head_row))
    events: dict[str, list[ChainEvent]] = defaultdict(list)
    query = select(AuditEvent).where(AuditEvent.hash.is_not(None))
    if chain is not None:
        query = query.where(AuditEvent.chain == chain)
    for row in db.scalars(query.order_by(AuditEvent.chain, AuditEvent.chain_seq)):
        events[row.chain or ""].append(as_chain_event(row))
    unsealed_query = select(func.count()).select_from(AuditEvent).where(AuditEvent.hash.is_(None))
    if chain is not None:
        unsealed_query = unsealed_query.where(AuditEvent.session_id == (None if chain == BROKER_CHAIN else chain))
    return LoadedTrail(events, heads, int(db.scalar(unsealed_query) or 0))


def load_chain_after(db: Session, chain: str, seq: int) -> list[ChainEvent]:
    """The sealed events of ``chain`` after event ``seq``, in order."""
    rows = db.scalars(select(AuditEvent).where(
        AuditEvent.chain == chain, AuditEvent.chain_seq > seq, AuditEvent.hash.is_not(None)).order_by(AuditEvent.chain_seq))
    return [as_chain_event(row) for row in rows]


def verify_loaded(
    trail: LoadedTrail,
    key: Ed25519PublicKey,
    segment_sha256: Callable[[str, int], str | None] | None,
    *,
    freshness: Freshness | None,
    stored: bool = True,
    exported_heads: Iterable[SignedHead] = (),
    only: str | None = None,
) -> Verdict:
    """Check chains, their signed heads and coverage, recording segments (``segment_sha256(session, index)``),
    the broker chain's record of every session, and heads kept outside (``exported_heads``).

    ``stored``: segments are the broker's encrypted files; otherwise a bundle's plain ones. Without
    ``segment_sha256`` segments are not checked here (the caller checks each one as it reads it).
    ``freshness``: see :func:`broker.audit.chain.verify_chain` (None for a bundle). ``only``: the
    one chain this trail is about (a bundle's or a report's session).
    """
    verdict = Verdict()
    for chain in sorted(set(trail.events) | set(trail.heads)):
        chain_events = trail.events.get(chain, [])
        check = verify_chain(chain, chain_events, trail.heads.get(chain, []), key, freshness)
        verdict.chains += 1
        verdict.events += len(chain_events)
        verdict.checkpoints += check.heads_valid
        verdict.unsigned_recent += check.unsigned_recent
        verdict.problems += check.problems
        for event in chain_events:
            if event.kind == SEGMENT_KIND and event.session_id and segment_sha256 is not None:
                verdict.segments += 1
                actual = segment_sha256(event.session_id, segment_index(event))
                problem = segment_problem(chain, event, actual, stored=stored)
                if problem is not None:
                    verdict.problems.append(problem)
    if BROKER_CHAIN in trail.events:
        verdict.problems += check_commitments(trail.events[BROKER_CHAIN], trail.events)
    problems, verdict.exported_heads = check_exported_heads(exported_heads, trail.events, key, only=only)
    verdict.problems += problems
    return verdict
