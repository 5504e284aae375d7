"""The shapes of second-factor codes, shared by the broker's API models and the console.

A TOTP code is the 6 digits an authenticator app shows (spaces, as some apps
print "123 456", are dropped). A recovery code is 16 characters from an
alphabet without look-alikes, printed in groups of four ("7kq2-m9xd-pw4r-c8tn");
hyphens, spaces and case do not matter when it is typed back.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

TOTP_DIGITS = 6
RECOVERY_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
RECOVERY_LENGTH = 16
RECOVERY_GROUP = 4

_TOTP = re.compile(rf"^[0-9]{{{TOTP_DIGITS}}}$")
_RECOVERY = re.compile(rf"^[{RECOVERY_ALPHABET}]{{{RECOVERY_LENGTH}}}$")


def normalize_totp_code(text: str) -> str:
    """The 6 digits of ``text``; ValueError with a sentence for people otherwise."""
    value = text.replace(" ", "")
    if not _TOTP.match(value):
        raise ValueError(f"an authenticator code is {TOTP_DIGITS} digits, e.g. 123456")
    return value


def normalize_recovery_code(text: str) -> str:
    """The 16 characters of a recovery code, lower case, without separators; ValueError otherwise."""
    value = text.replace("-", "").replace(" ", "").lower()
    if not _RECOVERY.match(value):
        raise ValueError(
            f"a recovery code is {RECOVERY_LENGTH} letters and digits in groups of {RECOVERY_GROUP}, "
            "e.g. 7kq2-m9xd-pw4r-c8tn"
        )
    return value


def format_recovery_code(value: str) -> str:
    """``7kq2m9xdpw4rc8tn`` -> ``7kq2-m9xd-pw4r-c8tn`` (how codes are shown)."""
    return "-".join(value[i:i + RECOVERY_GROUP] for i in range(0, len(value), RECOVERY_GROUP))


def normalize_second_factor(text: str) -> str:
    """A TOTP code or a recovery code, whichever ``text`` is; ValueError if neither."""
    try:
        return normalize_totp_code(text)
    except ValueError:
        pass
    try:
        return normalize_recovery_code(text)
    except ValueError:
        raise ValueError(
            f"give the {TOTP_DIGITS}-digit code from your authenticator app or one of your recovery codes"
        ) from None


def is_totp_code(value: str) -> bool:
    """True for a normalized TOTP code (as opposed to a normalized recovery code)."""
    return bool(_TOTP.match(value))


# What the normalizers accept, as patterns for the OpenAPI schema (so that clients and
# schema-driven fuzzers know which strings are valid); the normalizers stay the authority.
_TOTP_SCHEMA = rf"^ *(?:[0-9] *){{{TOTP_DIGITS}}}$"
_RECOVERY_CHAR = "[2-9a-hjkmnp-zA-HJKMNP-Z]"
_RECOVERY_SCHEMA = rf"^[- ]*(?:{_RECOVERY_CHAR}[- ]*){{{RECOVERY_LENGTH}}}$"

TotpCode = Annotated[str, AfterValidator(normalize_totp_code), Field(json_schema_extra={"pattern": _TOTP_SCHEMA})]
"""A 6-digit authenticator code, normalized."""
RecoveryCode = Annotated[
    str, AfterValidator(normalize_recovery_code), Field(json_schema_extra={"pattern": _RECOVERY_SCHEMA})
]
"""A recovery code, normalized (no separators, lower case)."""
SecondFactor = Annotated[
    str, AfterValidator(normalize_second_factor),
    Field(json_schema_extra={"pattern": f"(?:{_TOTP_SCHEMA})|(?:{_RECOVERY_SCHEMA})"}),
]
"""Either of the two, normalized."""
