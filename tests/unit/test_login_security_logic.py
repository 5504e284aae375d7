"""Pure sign-in logic with controlled inputs: password policy, lock delays, TOTP steps, code shapes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from broker.accounts import password_policy, totp
from broker.accounts.lockout import MAX_LOCK_SECONDS, LockoutPolicy, retry_after
from broker.accounts.password_policy import check_password
from broker.throttling.ratelimit import FailureLimiter
from protocol.totp import (
    format_recovery_code,
    is_totp_code,
    normalize_recovery_code,
    normalize_second_factor,
    normalize_totp_code,
)

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)

# --- password policy ----------------------------------------------------------------------


@pytest.mark.parametrize(("password", "username", "words"), [
    ("elevenchars", "ann", "at least 12 characters"),
    ("", "ann", "at least 12"),
    ("x" * 1025, "ann", "at most 1024"),
    ("bob-the-builder-42", "bob-the-builder-42", "account name"),
    ("BOB-THE-BUILDER-42", "bob-the-builder-42", "account name"),
    ("my name is annabel, ok", "Annabel", "account name"),
    ("Password1234", "ann", "most common"),
    ("ＰＡＳＳＷＯＲＤ１２３４", "ann", "most common"),  # full-width letters fold to ASCII
    ("correcthorsebatterystaple", "ann", "most common"),
])
def test_refusals_name_the_rule(password: str, username: str, words: str) -> None:
    problem = check_password(password, username)
    assert problem is not None and words in problem


@pytest.mark.parametrize(("password", "username"), [
    ("a long walk on the beach", "ann"),
    ("jo went to the shops today", "jo"),  # names under 3 characters only refused as the whole password
    ("twelve chars", "twelve chars!"),  # containing part of the name is not containing the name
])
def test_good_passwords_pass(password: str, username: str) -> None:
    assert check_password(password, username) is None


def test_a_two_letter_name_is_still_refused_as_the_whole_password() -> None:
    assert check_password("jo", "jo", min_length=8) is not None  # too short first
    assert "account name" in (check_password("jojojojojojo", "jojojojojojo") or "")


def test_the_configured_minimum_applies_unless_one_is_given() -> None:
    try:
        password_policy.configure(16)
        assert "at least 16" in (check_password("fifteen chars!!", "ann") or "")
        assert check_password("fifteen chars!!", "ann", min_length=12) is None
    finally:
        password_policy.configure(password_policy.DEFAULT_MIN_LENGTH)
    for bad in (7, 1025):
        with pytest.raises(ValueError):
            password_policy.configure(bad)


# --- lock delays --------------------------------------------------------------------------


def test_the_lock_starts_at_the_threshold_doubles_and_stops_at_an_hour() -> None:
    policy = LockoutPolicy(failures_before_lock=5, base_seconds=30)
    assert [policy.lock_seconds(n) for n in range(0, 5)] == [None] * 5
    assert [policy.lock_seconds(n) for n in range(5, 14)] == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert policy.lock_seconds(10**9) == MAX_LOCK_SECONDS  # no 2**huge
    assert policy.locked_until(4, T0) is None
    assert policy.locked_until(6, T0) == T0 + timedelta(seconds=60)


def test_retry_after_counts_whole_seconds_from_the_given_clock() -> None:
    until = T0 + timedelta(seconds=30)
    assert retry_after(until, T0) == 30
    assert retry_after(until, T0 + timedelta(seconds=29.2)) == 1  # rounds up, never 0
    assert retry_after(until, until) is None
    assert retry_after(until, until + timedelta(seconds=1)) is None
    assert retry_after(None, T0) is None


@pytest.mark.parametrize(("failures", "base"), [(0, 30), (5, 0), (5, 7200)])
def test_a_nonsensical_policy_is_refused(failures: int, base: float) -> None:
    with pytest.raises(ValueError):
        LockoutPolicy(failures_before_lock=failures, base_seconds=base)


# --- TOTP steps ---------------------------------------------------------------------------


def test_a_code_is_accepted_within_one_step_either_side_and_only_once() -> None:
    secret = totp.new_secret()
    otp = pyotp.TOTP(secret)
    step = otp.timecode(T0)
    for drift in (-1, 0, 1):
        code = otp.generate_otp(step + drift)
        assert totp.accepted_step(secret, code, T0, None) == step + drift
    assert totp.accepted_step(secret, otp.generate_otp(step + 2), T0, None) is None
    assert totp.accepted_step(secret, otp.generate_otp(step - 2), T0, None) is None
    current = otp.generate_otp(step)
    assert totp.accepted_step(secret, current, T0, last_step=step) is None  # replayed
    assert totp.accepted_step(secret, otp.generate_otp(step - 1), T0, last_step=step) is None  # older
    assert totp.accepted_step(secret, otp.generate_otp(step + 1), T0, last_step=step) == step + 1
    window = {otp.generate_otp(step + d) for d in (-1, 0, 1)}
    stranger = next(c for c in ("000000", "111111", "222222", "333333") if c not in window)
    assert totp.accepted_step(secret, stranger, T0, None) is None


def test_the_provisioning_uri_names_the_issuer_and_account() -> None:
    secret = totp.new_secret()
    uri = totp.provisioning_uri(secret, "ann")
    assert uri.startswith("otpauth://totp/Deskhand:ann?") and "issuer=Deskhand" in uri and f"secret={secret}" in uri


def test_recovery_codes_are_distinct_normalized_and_matched_by_hash() -> None:
    codes = totp.new_recovery_codes()
    assert len(set(codes)) == 10
    assert all(normalize_recovery_code(totp.shown(c)) == c for c in codes)
    hashes = [totp.recovery_code_hash(c) for c in codes]
    assert totp.matching_hash(codes[3], hashes) == hashes[3]
    assert totp.matching_hash(totp.new_recovery_codes(1)[0], hashes) is None


# --- code shapes --------------------------------------------------------------------------


def test_code_shapes_are_normalized_or_refused_with_a_sentence() -> None:
    assert normalize_totp_code("123 456") == "123456"
    assert normalize_recovery_code(" 7KQ2-M9XD pw4r-c8tn ") == "7kq2m9xdpw4rc8tn"
    assert format_recovery_code("7kq2m9xdpw4rc8tn") == "7kq2-m9xd-pw4r-c8tn"
    assert is_totp_code(normalize_second_factor("654321"))
    assert not is_totp_code(normalize_second_factor("7kq2-m9xd-pw4r-c8tn"))
    for bad in ("12345", "1234567", "12345a", "１２３４５６", ""):
        with pytest.raises(ValueError, match="6 digits"):
            normalize_totp_code(bad)
    for bad in ("7kq2-m9xd-pw4r", "7kq2-m9xd-pw4r-c8t1", "7kq2-m9xd-pw4r-c8tnx"):  # short, '1' not in the alphabet, long
        with pytest.raises(ValueError, match="recovery code"):
            normalize_recovery_code(bad)
    with pytest.raises(ValueError, match="authenticator app or one of your recovery codes"):
        normalize_second_factor("12-34")


def test_the_schema_patterns_describe_what_the_normalizers_accept() -> None:
    from protocol import totp as shapes

    lower = {c for c in map(chr, range(128)) if re.fullmatch(shapes._RECOVERY_CHAR, c) and not c.isupper()}
    assert lower == set(shapes.RECOVERY_ALPHABET)
    for text in ("123456", " 1 2 3 4 5 6 "):
        assert re.match(shapes._TOTP_SCHEMA, text) and normalize_totp_code(text)
    for text in ("7kq2-m9xd-pw4r-c8tn", "-7KQ2 m9xd--pw4rc8tn "):
        assert re.match(shapes._RECOVERY_SCHEMA, text) and normalize_recovery_code(text)
    assert not any(re.match(shapes._TOTP_SCHEMA, t) for t in ("12345", "000000000000000", ""))


# --- the per-source limiter without a global limit -----------------------------------------


def test_a_limiter_without_a_global_limit_only_blocks_the_busy_source() -> None:
    limiter = FailureLimiter.create(per_source=2, overall=None, window=60)
    assert limiter.count_attempt("a", 0) is None
    assert limiter.count_attempt("a", 1) is None
    assert limiter.count_attempt("a", 2) == 58  # blocked: nothing more is counted
    for i in range(100):
        assert limiter.count_attempt(f"b{i}", 3) is None  # no global limit
    limiter.forgive("a", 1)
    assert limiter.count_attempt("a", 4) is None  # a forgiven attempt frees its place
