"""How the broker applies a host's consent frames: a revocation at once, the rest at a bounded rate."""

from __future__ import annotations

from broker.sessions.consent_flow import ConsentFlow, ConsentState, ConsentStep, consent_state
from protocol.permissions import Permission
from protocol.rates import TokenBucket
from protocol.signalling import ConsentSource

VIEW = consent_state(["view"], "window")
VIEW_CONTROL = consent_state(["view", "control"], "window")
NOTHING = consent_state([], "window")


def flow(applied: ConsentState | None = VIEW, burst: int = 2, rate: float = 1.0) -> ConsentFlow:
    return ConsentFlow(TokenBucket(rate, burst), applied)


def test_the_first_consent_applies_at_once_and_the_same_again_changes_nothing() -> None:
    gate = flow(applied=None, burst=1)
    assert gate.offer(VIEW, 0.0) == ConsentStep(apply=VIEW)
    assert gate.offer(VIEW, 0.0) == ConsentStep()  # a reconnecting host sends it again
    assert gate.offer(consent_state(["view"], ConsentSource.window), 0.0) == ConsentStep()


def test_changes_within_the_budget_apply_at_once_and_beyond_it_are_held() -> None:
    gate = flow(burst=2)
    assert gate.offer(VIEW_CONTROL, 0.0).apply == VIEW_CONTROL
    assert gate.offer(consent_state(["view", "control"], "terminal"), 0.0).apply is not None
    held = gate.offer(consent_state(["view", "control", "chat"], "terminal"), 0.0)
    assert held.apply is None and held.held_for == 1.0
    assert gate.due(0.5) == ConsentStep(held_for=0.5)
    assert gate.due(1.0).apply == consent_state(["view", "control", "chat"], "terminal")
    assert gate.due(1.0) == ConsentStep()


def test_a_revocation_is_applied_at_once_even_with_no_budget_left() -> None:
    gate = flow(applied=VIEW_CONTROL, burst=1)
    assert gate.offer(consent_state(["view", "control", "chat"], "window"), 0.0).apply is not None
    assert gate.offer(VIEW_CONTROL, 0.0).apply == VIEW_CONTROL  # chat taken away: at once, budget or not
    assert gate.offer(NOTHING, 0.0).apply == NOTHING
    assert gate.applied == NOTHING


def test_a_later_consent_replaces_a_held_one_and_going_back_cancels_it() -> None:
    gate = flow(burst=1)
    gate.offer(VIEW_CONTROL, 0.0)  # the budget is spent
    gate.offer(NOTHING, 0.0)  # a revocation, at once
    assert gate.offer(VIEW, 0.1).held_for is not None
    assert gate.offer(VIEW_CONTROL, 0.2).held_for is not None
    assert gate.held == VIEW_CONTROL
    assert gate.offer(NOTHING, 0.3) == ConsentStep()  # back to what applies: nothing waits
    assert gate.due(5.0) == ConsentStep()


def test_a_change_held_when_the_host_leaves_is_released_to_be_applied() -> None:
    gate = flow(burst=1)
    gate.offer(VIEW_CONTROL, 0.0)
    gate.offer(consent_state(["view", "control", "chat"], "window"), 0.0)
    assert gate.release() == consent_state(["view", "control", "chat"], "window")
    assert gate.release() is None


def test_a_flood_of_alternating_frames_becomes_a_handful_of_changes_ending_with_the_last() -> None:
    gate = flow(burst=5, rate=1.0)
    applied: list[ConsentState] = []
    for n in range(3000):
        step = gate.offer(VIEW_CONTROL if n % 2 == 0 else NOTHING, n / 3000)
        if step.apply is not None:
            applied.append(step.apply)
    assert applied[-1] == NOTHING == gate.applied  # the flood's last frame (a revocation) applies
    assert len(applied) <= 12, len(applied)
    assert {p for s in applied for p in s.permissions} <= {Permission.view, Permission.control}
