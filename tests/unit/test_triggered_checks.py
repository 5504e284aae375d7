"""When an ICE agent checks a pair afresh on the peer's check (peer.triggered_checks, pure)."""

from __future__ import annotations

import pytest

from peer.triggered_checks import FRESH_CHECK_INTERVAL, FreshCheckGate


def test_the_first_incoming_check_on_a_pair_is_admitted_and_its_burst_is_not() -> None:
    gate: FreshCheckGate[str] = FreshCheckGate()
    assert gate.admit("a", 10.0)
    assert not gate.admit("a", 10.0)
    assert not gate.admit("a", 10.0 + FRESH_CHECK_INTERVAL * 0.9)


def test_a_pair_may_be_checked_afresh_again_once_the_interval_passed() -> None:
    gate: FreshCheckGate[str] = FreshCheckGate(interval=0.1)
    assert gate.admit("a", 1.0)
    assert not gate.admit("a", 1.05)  # refused: does not move the pair's last fresh check
    assert gate.admit("a", 1.1)
    assert not gate.admit("a", 1.15)


def test_pairs_are_gated_apart() -> None:
    gate: FreshCheckGate[str] = FreshCheckGate()
    assert gate.admit("a", 1.0)
    assert gate.admit("b", 1.0)
    assert not gate.admit("a", 1.01)


def test_the_interval_beats_aioices_first_retransmission() -> None:
    assert 0.05 <= FRESH_CHECK_INTERVAL <= 0.1  # a burst is one fresh check; 0.5 s is still beaten


def test_an_interval_must_be_positive() -> None:
    with pytest.raises(ValueError):
        FreshCheckGate(interval=0)


def test_a_check_the_agent_just_started_counts_as_fresh() -> None:
    gate: FreshCheckGate[str] = FreshCheckGate(interval=0.1)
    gate.note("a", 1.0)
    assert not gate.admit("a", 1.01)  # a copy of the request that triggered it
    assert gate.admit("a", 1.1)
    assert gate.admit("b", 1.01)
