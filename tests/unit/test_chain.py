"""The pure judgements of the audit chain (``broker/audit/chain.py``): coverage by signed heads, the
broker's check before it signs, the broker chain's record of sessions, heads kept outside."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.audit.chain import (
    BROKER_CHAIN,
    CHAIN_CLOSED,
    CHAIN_OPENED,
    GENESIS,
    ChainEvent,
    Freshness,
    SignedHead,
    check_commitments,
    check_exported_heads,
    event_hash,
    judge_head,
    sign_head,
    verify_chain,
)

KEY = Ed25519PrivateKey.generate()
PUBLIC = KEY.public_key()
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def at(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def chain_of(name: str, kinds: list[str], *, ago: float = 600, data: list[dict[str, object]] | None = None) -> list[ChainEvent]:
    events, previous = [], GENESIS
    for seq, kind in enumerate(kinds, start=1):
        fields = ChainEvent(seq, name, seq, at(ago), kind, "broker", None, None if name == BROKER_CHAIN else name, None,
                            (data or [{}] * len(kinds))[seq - 1], previous, "")
        event = ChainEvent(**{**fields.__dict__, "hash": event_hash(fields.fields())})
        events.append(event)
        previous = event.hash
    return events


def head_over(events: list[ChainEvent], seq: int | None = None, key: Ed25519PrivateKey = KEY) -> SignedHead:
    event = events[(seq or len(events)) - 1]
    return sign_head(key, event.chain, event.seq, event.hash, at(0))


def append(events: list[ChainEvent], kind: str, ago: float) -> list[ChainEvent]:
    last = events[-1]
    fields = ChainEvent(last.seq + 1, last.chain, last.seq + 1, at(ago), kind, "broker", None, last.session_id, None, {},
                        last.hash, "")
    return [*events, ChainEvent(**{**fields.__dict__, "hash": event_hash(fields.fields())})]


FRESH = Freshness(NOW, timedelta(seconds=60))


def test_a_chain_signed_to_its_end_verifies() -> None:
    events = chain_of("s", ["session.created", "code.issued", "session.ended"])
    check = verify_chain("s", events, [head_over(events)], PUBLIC, FRESH)
    assert check.problems == [] and check.signed_seq == 3 and check.heads_valid == 1


def test_a_chain_without_a_signed_head_fails_unless_it_is_younger_than_the_grace() -> None:
    old = chain_of("s", ["session.created", "code.issued"], ago=600)
    (problem,) = verify_chain("s", old, [], PUBLIC, FRESH).problems
    assert problem.seq == 1 and "no signed head covers it" in problem.what
    recent = chain_of("s", ["session.created", "code.issued"], ago=5)
    check = verify_chain("s", recent, [], PUBLIC, FRESH)
    assert check.problems == [] and check.unsigned_recent == 2
    # A bundle (no freshness) allows no unsigned event at all.
    (problem,) = verify_chain("s", recent, [], PUBLIC, None).problems
    assert "no signed head covers it" in problem.what


def test_the_unsigned_tail_after_the_last_head_is_named_at_its_first_event() -> None:
    events = chain_of("s", ["session.created", "code.issued"])
    head = head_over(events)
    forged = append(append(events, "consent.changed", ago=300), "chat.sent", ago=300)
    (problem,) = verify_chain("s", forged, [head], PUBLIC, FRESH).problems
    assert problem.seq == 3 and "appended without the broker's key" in problem.what
    assert verify_chain("s", append(events, "chat.sent", ago=1), [head], PUBLIC, FRESH).problems == []


def test_a_head_signed_by_another_key_or_for_another_chain_covers_nothing() -> None:
    events = chain_of("s", ["session.created"])
    foreign = head_over(events, key=Ed25519PrivateKey.generate())
    problems = verify_chain("s", events, [foreign], PUBLIC, FRESH).problems
    assert [p.what for p in problems][:1] == ["a signed head's signature is not the broker's"]
    other = sign_head(KEY, "t", 1, events[0].hash, at(0))
    assert any("not the broker's" in p.what for p in verify_chain("s", events, [other], PUBLIC, FRESH).problems)


def test_an_event_of_another_chain_is_named() -> None:
    events = chain_of("s", ["session.created"])
    moved = [ChainEvent(**{**events[0].__dict__, "chain": "t"})]
    assert any("belongs to chain t" in p.what for p in verify_chain("s", moved, [], PUBLIC, FRESH).problems)


@pytest.mark.parametrize(("change", "why"), [
    ("none", None),
    ("no head, nothing sealed", None),
    ("no head, events sealed", "2 sealed events, but no signed head covers them"),
    ("foreign head", "is not signed by this broker's key"),
    ("head event gone", "which the broker signed, is gone"),
    ("head event rewritten", "differs from what the broker signed"),
    ("sealed beyond the head", "events 3-4 were sealed after the last signed head"),
])
def test_the_broker_checks_a_chain_from_its_signed_head_before_sealing_onto_it(change: str, why: str | None) -> None:
    events = chain_of("s", ["session.created", "code.issued"])
    head: SignedHead | None = head_over(events)
    head_event: ChainEvent | None = events[-1]
    last = 2
    if change == "no head, nothing sealed":
        head, head_event, last = None, None, 0
    elif change == "no head, events sealed":
        head = None
    elif change == "foreign head":
        head = head_over(events, key=Ed25519PrivateKey.generate())
    elif change == "head event gone":
        head_event = None
    elif change == "head event rewritten":
        head_event = ChainEvent(**{**events[-1].__dict__, "data": {"permissions": ["control"]}})
    elif change == "sealed beyond the head":
        last = 4
    verdict = judge_head("s", head, head_event, last, PUBLIC)
    assert (verdict is None) if why is None else (verdict is not None and why in verdict), verdict


def test_the_broker_chain_misses_a_session_deleted_or_rewritten() -> None:
    session = chain_of("s", ["session.created", "session.ended"])
    broker = chain_of(BROKER_CHAIN, [CHAIN_OPENED, CHAIN_CLOSED], data=[
        {"chain": "s", "first_hash": session[0].hash}, {"chain": "s", "seq": 2, "head": session[1].hash}])
    assert check_commitments(broker, {BROKER_CHAIN: broker, "s": session}) == []
    (gone, gone_too) = check_commitments(broker, {BROKER_CHAIN: broker})
    assert "session s's trail is gone" in gone.what and gone.chain == BROKER_CHAIN and gone_too.seq == 2
    rewritten = chain_of("s", ["session.created", "code.issued"], data=[{"by": "mallory"}, {}])
    problems = check_commitments(broker, {BROKER_CHAIN: broker, "s": rewritten})
    assert [p.what for p in problems] == ["session s's chain differs at event 1 from what the broker chain recorded",
                                         "session s's chain differs at event 2 from what the broker chain recorded"]


def test_heads_kept_outside_fix_the_chain_up_to_them() -> None:
    events = chain_of("s", ["session.created", "code.issued", "session.ended"])
    kept = [head_over(events, 2)]
    assert check_exported_heads(kept, {"s": events}, PUBLIC) == ([], 1)
    assert check_exported_heads(kept, {"s": events}, PUBLIC, only="t") == ([], 0)
    # A bundle exported before the head was signed cannot be compared with it; one exported after can.
    assert check_exported_heads(kept, {"s": events[:1]}, PUBLIC, only="s") == ([], 0)
    assert check_exported_heads(kept, {"s": events}, PUBLIC, only="s") == ([], 1)
    # Rewritten and re-signed by the key holder: the chain verifies on its own, not against the kept head.
    rewritten = chain_of("s", ["session.created", "code.redeemed", "session.ended"])
    assert verify_chain("s", rewritten, [head_over(rewritten)], PUBLIC, FRESH).problems == []
    (problem,), _ = check_exported_heads(kept, {"s": rewritten}, PUBLIC)
    assert problem.seq == 2 and "kept outside (the chain was rewritten)" in problem.what
    (cut,), _ = check_exported_heads(kept, {"s": events[:1]}, PUBLIC)
    assert "the chain ends before event 2" in cut.what
    (gone,), _ = check_exported_heads(kept, {}, PUBLIC)
    assert "the chain is gone" in gone.what
    (forged,), _ = check_exported_heads([head_over(events, 2, key=Ed25519PrivateKey.generate())], {"s": events}, PUBLIC)
    assert "not signed by the broker's key" in forged.what


@pytest.mark.parametrize("bad", [{}, {"chain": "s", "seq": "1", "head_hash": "x", "signed_at": "t", "signature": "s"},
                                 {"chain": "s", "seq": 0, "head_hash": "x", "signed_at": "t", "signature": "s"},
                                 {"chain": "s", "seq": True, "head_hash": "x", "signed_at": "t", "signature": "s"}])
def test_a_malformed_head_is_refused_with_the_reason(bad: dict[str, object]) -> None:
    with pytest.raises((KeyError, ValueError, TypeError)):
        SignedHead.from_json(bad)
