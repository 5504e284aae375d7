"""What makes a password acceptable: long enough, not the account name, not a common one.

Pure: no database, no settings object. The broker sets the configured minimum
length once at start (:func:`configure`, from ``DESKHAND_PASSWORD_MIN_LENGTH``),
so every caller of :func:`check_password` (changing one's own password, an admin
setting someone's) applies the same rule without passing settings around.
"""

from __future__ import annotations

import unicodedata

DEFAULT_MIN_LENGTH = 12
LOWEST_MIN_LENGTH = 8
"""The smallest minimum an operator may configure (the setting's lower bound)."""
MAX_LENGTH = 1024
USERNAME_CONTAINMENT_MIN = 3
"""Shorter account names are only refused as the whole password: refusing every password
that merely contains "al" or "jo" would reject good passphrases for no gain."""

# Passwords of 8+ characters that lead every breach list (shorter ones fail the length
# rule anyway). Compared case-insensitively. Deliberately small: a bigger list belongs in
# a data file, and length does most of the work.
COMMON_PASSWORDS: frozenset[str] = frozenset({
    "password", "password1", "password12", "password123", "password1234", "password12345",
    "passw0rd", "p@ssw0rd", "p@ssword", "passwordpassword", "mypassword", "newpassword",
    "12345678", "123456789", "1234567890", "12345678910", "123456789012", "1234567890123",
    "87654321", "11111111", "111111111111", "00000000", "000000000000", "11223344", "12341234",
    "123123123", "123123123123", "147258369", "159753456", "987654321", "0987654321",
    "qwertyui", "qwertyuiop", "qwerty123", "qwerty1234", "qwerty123456", "1q2w3e4r", "1q2w3e4r5t",
    "1q2w3e4r5t6y", "1qaz2wsx", "1qaz2wsx3edc", "zaq12wsx", "asdfghjk", "asdfghjkl", "zxcvbnm123",
    "qazwsxedc", "q1w2e3r4t5y6", "abcdefgh", "abcdefghijkl", "abcd1234", "abc12345", "abc123456",
    "iloveyou", "iloveyou1", "iloveyou123", "sunshine", "princess", "football", "baseball",
    "basketball", "superman", "batman123", "starwars", "trustno1", "whatever", "computer",
    "internet", "letmein1", "letmeinnow", "welcome1", "welcome123", "welcome2024", "welcome2025",
    "changeme", "changeme123", "administrator", "admin123", "admin1234", "admin12345",
    "adminadmin", "rootroot", "secret123", "master123", "dragon123", "monkey123", "shadow123",
    "michael1", "jennifer", "jordan23", "liverpool", "chelsea1", "arsenal1", "pokemon1",
    "11111111111", "aaaaaaaa", "aaaaaaaaaaaa", "deskhand", "deskhand123", "deskhand1234",
    "correcthorsebatterystaple",
})

_min_length = DEFAULT_MIN_LENGTH


def configure(min_length: int) -> None:
    """Set the minimum length :func:`check_password` applies (the broker calls this at start)."""
    global _min_length
    if not LOWEST_MIN_LENGTH <= min_length <= MAX_LENGTH:
        raise ValueError(f"the minimum password length must be between {LOWEST_MIN_LENGTH} and {MAX_LENGTH}")
    _min_length = min_length


def configured_min_length() -> int:
    """The minimum length currently in force."""
    return _min_length


def check_password(password: str, username: str, *, min_length: int | None = None) -> str | None:
    """Why ``password`` is not acceptable for ``username``, or None when it is.

    The answer is a sentence for the person choosing the password, naming the rule.
    ``min_length`` defaults to the configured minimum.
    """
    minimum = _min_length if min_length is None else min_length
    # Compatibility folding: "Ｐａｓｓｗｏｒｄ" is no stronger than "password".
    folded = unicodedata.normalize("NFKC", password).casefold()
    name = unicodedata.normalize("NFKC", username).casefold()
    if len(password) < minimum:
        return f"the password is too short: use at least {minimum} characters (a few words make a good one)"
    if len(password) > MAX_LENGTH:
        return f"the password is too long: use at most {MAX_LENGTH} characters"
    if name and (folded == name or (len(name) >= USERNAME_CONTAINMENT_MIN and name in folded)):
        return "the password must not contain the account name"
    if folded in COMMON_PASSWORDS:
        return "the password is one of the most common passwords: choose one nobody would guess"
    return None
