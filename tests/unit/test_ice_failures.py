"""The trail's judgement on a peer's ``ice_failed`` reports (broker/sessions/ice_failures.py): once per attempt, capped."""

from __future__ import annotations

from broker.sessions.ice_failures import MAX_AUDITED_ATTEMPTS, TrailedFailures, Verdict


def test_each_attempt_is_recorded_once() -> None:
    trailed = TrailedFailures()
    assert trailed.judge(3) is Verdict.record
    trailed = trailed.after(3, Verdict.record)
    assert trailed.judge(3) is Verdict.skip
    assert trailed.judge(4) is Verdict.record


def test_past_the_cap_the_trail_says_so_once_then_keeps_nothing_new() -> None:
    trailed = TrailedFailures()
    for attempt in range(1, MAX_AUDITED_ATTEMPTS + 1):
        verdict = trailed.judge(attempt)
        assert verdict is Verdict.record
        trailed = trailed.after(attempt, verdict)
    assert trailed.judge(MAX_AUDITED_ATTEMPTS + 1) is Verdict.cap
    trailed = trailed.after(MAX_AUDITED_ATTEMPTS + 1, Verdict.cap)
    assert trailed.judge(MAX_AUDITED_ATTEMPTS + 2) is Verdict.skip
    assert trailed.judge(50_000) is Verdict.skip
    # An attempt under the cap already in the trail is still skipped, not recorded again.
    assert trailed.judge(1) is Verdict.skip
    assert len(trailed.attempts) == MAX_AUDITED_ATTEMPTS


def test_a_trail_read_back_capped_stays_capped() -> None:
    read_back = TrailedFailures(frozenset(range(1, MAX_AUDITED_ATTEMPTS + 1)), capped=True)
    assert read_back.judge(MAX_AUDITED_ATTEMPTS + 1) is Verdict.skip
