"""Support codes: parsing what people type, issuing, hashing and judging redemptions."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from broker.codes import CodeRecord, Verdict, hash_code, issue_code, judge_redemption
from protocol.codes import CodeFormatError, format_code, normalize_code

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
LATER = NOW + timedelta(minutes=5)
EARLIER = NOW - timedelta(minutes=5)


@pytest.mark.parametrize("text", ["123456789", "123 456 789", "123-456-789", " 123  456-789 ", "12-3456 789"])
def test_spaces_and_dashes_are_accepted(text: str) -> None:
    assert normalize_code(text) == "123456789"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "no support code"),
        ("   ", "no support code"),
        ("12345678", "has 8"),
        ("1234567890", "has 10"),
        ("123 456 78a", "only digits"),
        ("123.456.789", "only digits"),
        ("١٢٣٤٥٦٧٨٩", "only digits"),  # Arabic-Indic digits are digits to str.isdigit
        ("1" * 100, "far too long"),
    ],
)
def test_malformed_codes_are_refused_with_a_reason(text: str, words: str) -> None:
    with pytest.raises(CodeFormatError, match=words):
        normalize_code(text)


def test_format_groups_in_threes() -> None:
    assert format_code("012345678") == "012 345 678"


def test_issued_codes_are_nine_digits_and_spread_over_the_space() -> None:
    codes = [issue_code() for _ in range(3000)]
    assert all(len(c) == 9 and c.isdigit() for c in codes)
    assert len(set(codes)) > 2990
    first_digits = Counter(c[0] for c in codes)
    assert set(first_digits) == set("0123456789")
    assert max(first_digits.values()) < 3000 * 0.2


def test_the_code_hash_is_keyed() -> None:
    a, b = b"a" * 32, b"b" * 32
    assert hash_code(a, "123456789") == hash_code(a, "123456789")
    assert hash_code(a, "123456789") != hash_code(b, "123456789")
    assert hash_code(a, "123456789") != hash_code(a, "123456788")
    assert len(hash_code(a, "123456789")) == 64


def record(state: str, expires: datetime, joined: bool = False, sid: str = "s") -> CodeRecord:
    return CodeRecord(session_id=sid, state=state, expires_at=expires, joined=joined)


@pytest.mark.parametrize(
    ("records", "verdict"),
    [
        ([], Verdict.unknown),
        ([record("waiting", LATER)], Verdict.redeemable),
        ([record("waiting", EARLIER)], Verdict.expired),
        ([record("expired", EARLIER)], Verdict.expired),
        ([record("connected", LATER, joined=True)], Verdict.used),
        ([record("ended", LATER, joined=True)], Verdict.used),
        ([record("ended", LATER)], Verdict.cancelled),
        # An old session used the same digits long ago: the live one wins.
        ([record("ended", EARLIER - timedelta(days=30), joined=True, sid="old"), record("waiting", LATER, sid="new")], Verdict.redeemable),
        # The newest record decides between old outcomes.
        ([record("ended", EARLIER - timedelta(days=30), joined=True), record("expired", EARLIER)], Verdict.expired),
    ],
)
def test_judge_redemption(records: list[CodeRecord], verdict: Verdict) -> None:
    got, session_id = judge_redemption(records, NOW)
    assert got is verdict
    assert (session_id is not None) == (verdict is Verdict.redeemable)
    if verdict is Verdict.redeemable:
        assert session_id == [r for r in records if r.state == "waiting"][0].session_id
