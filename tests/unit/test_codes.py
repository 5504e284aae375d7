"""Support codes: parsing what people type, issuing, hashing and judging redemptions."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from broker.sessions.codes import CodeRecord, Verdict, hash_code, issue_code, judge_redemption
from protocol.codes import CodeFormatError, JoinTarget, format_code, normalize_code, parse_join_target

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)
EARLIER = NOW - timedelta(minutes=5)


@pytest.mark.parametrize(
    "text",
    ["123456789", "123 456 789", "123-456-789", " 123  456-789 ", "12-3456 789", "123\t456\n789", "123\u00a0456\u2009789"],
)
def test_spaces_and_dashes_are_accepted(text: str) -> None:
    assert normalize_code(text) == "123456789"


def test_leading_zeros_are_kept() -> None:
    assert normalize_code("000 000 001") == "000000001"


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
        ("１２３４５６７８９", "only digits"),  # so are fullwidth ones
        ("123_456_789", "only digits"),
        ("+123456789", "only digits"),
        ("1" * 100, "far too long"),
        ("-" * 65, "far too long"),
    ],
)
def test_malformed_codes_are_refused_with_a_reason(text: str, words: str) -> None:
    with pytest.raises(CodeFormatError, match=words):
        normalize_code(text)


@pytest.mark.parametrize("value", [None, 123456789, b"123456789", ["123456789"]])
def test_a_code_that_is_not_text_is_refused(value: object) -> None:
    with pytest.raises(CodeFormatError, match="must be text"):
        normalize_code(value)  # type: ignore[arg-type]  # the point: a caller passing something else


def test_code_format_error_is_a_value_error() -> None:
    """pydantic turns ValueError from a validator into a 422; the API relies on it."""
    assert issubclass(CodeFormatError, ValueError)


@pytest.mark.parametrize(("text", "shown"), [("012345678", "012 345 678"), ("987-654-321", "987 654 321")])
def test_format_groups_in_threes(text: str, shown: str) -> None:
    assert format_code(text) == shown


@pytest.mark.parametrize("text", ["12345678", "abc", ""])
def test_format_refuses_what_is_not_a_code(text: str) -> None:
    with pytest.raises(CodeFormatError):
        format_code(text)


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
    # HMAC-SHA256 as documented, not a plain hash anyone could compute for all 10^9 codes.
    assert hash_code(a, "123456789") == hmac.new(a, b"123456789", hashlib.sha256).hexdigest()
    assert hash_code(a, "123456789") != hashlib.sha256(b"123456789").hexdigest()
    assert len(hash_code(a, "123456789")) == 64 and "123456789" not in hash_code(a, "123456789")


def record(state: str, expires: datetime, joined: bool = False, sid: str = "s") -> CodeRecord:
    return CodeRecord(session_id=sid, state=state, expires_at=expires, joined=joined)


@pytest.mark.parametrize(
    ("records", "verdict"),
    [
        ([], Verdict.unknown),
        ([record("waiting", LATER)], Verdict.redeemable),
        ([record("waiting", EARLIER)], Verdict.expired),
        ([record("waiting", NOW)], Verdict.expired),  # the last valid instant is just before expiry
        ([record("expired", EARLIER)], Verdict.expired),
        ([record("connected", LATER, joined=True)], Verdict.used),
        ([record("ended", LATER, joined=True)], Verdict.used),
        ([record("ended", LATER)], Verdict.cancelled),
        # An old session used the same digits long ago: the live one wins.
        ([record("ended", EARLIER - timedelta(days=30), joined=True, sid="old"), record("waiting", LATER, sid="new")], Verdict.redeemable),
        ([record("waiting", LATER, sid="live"), record("ended", LATER + timedelta(days=1), joined=True)], Verdict.redeemable),
        # The newest record decides between old outcomes.
        ([record("ended", EARLIER - timedelta(days=30), joined=True), record("expired", EARLIER)], Verdict.expired),
        ([record("expired", EARLIER - timedelta(days=30)), record("connected", EARLIER, joined=True)], Verdict.used),
        ([record("ended", EARLIER - timedelta(days=30), joined=True), record("ended", EARLIER)], Verdict.cancelled),
    ],
)
def test_judge_redemption(records: list[CodeRecord], verdict: Verdict) -> None:
    got, session_id = judge_redemption(records, NOW)
    assert got is verdict
    assert (session_id is not None) == (verdict is Verdict.redeemable)
    if verdict is Verdict.redeemable:
        assert session_id == next(r for r in records if r.state == "waiting").session_id


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("123 456 789", JoinTarget("123456789")),
        ("  https://desk.example.com/join/#123456789  ", JoinTarget("123456789", "https://desk.example.com")),
        ("http://127.0.0.1:8000/join/#123-456-789", JoinTarget("123456789", "http://127.0.0.1:8000")),
        ("https://example.com/desk/join#123%20456%20789", JoinTarget("123456789", "https://example.com/desk")),
        ("https://[::1]:8443/join/#123456789", JoinTarget("123456789", "https://[::1]:8443")),
    ],
)
def test_a_code_or_the_join_link_gives_the_code_and_the_broker(text: str, target: JoinTarget) -> None:
    assert parse_join_target(text) == target


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("https://desk.example.com/join/", "no code after its '#'"),
        ("https://desk.example.com/join/#12345", "has 9 digits, this one has 5"),
        ("https://ann:secret@desk.example.com/join/#123456789", "never holds a user name or password"),
        ("ftp://desk.example.com/join/#123456789", "not a Deskhand join link"),
        ("https://desk.example.com/login/#123456789", "not a Deskhand join link"),
        ("https://desk.example.com/xjoin/#123456789", "not a Deskhand join link"),
        ("https://desk.example.com/join/?next=evil#123456789", "not a Deskhand join link"),
        ("https:///join/#123456789", "not a Deskhand join link"),
        ("https://[::1/join/#123456789", "not a Deskhand join link"),
        ("https://desk.example.com/join/#" + "1" * 5000, "far too long"),
    ],
)
def test_what_is_no_join_link_is_refused_in_words(text: str, said: str) -> None:
    with pytest.raises(CodeFormatError, match=re.escape(said)):
        parse_join_target(text)
