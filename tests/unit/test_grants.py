"""Signed grants: genuine ones pass; forged, tampered, foreign, expired ones do not."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from broker.sessions.grants import sign_grant
from host_client.grant_check import load_public_key, verify_grant
from protocol.grants import CLOCK_SKEW_SECONDS, Grant, GrantRejected, SignedGrant, canonical_bytes
from protocol.permissions import Permission

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
BROKER = Ed25519PrivateKey.generate()
OTHER = Ed25519PrivateKey.generate()


def grant(**changes: object) -> Grant:
    fields: dict[str, object] = dict(
        session_id="s-1", ticket_id=7, technician_id=3, technician_name="Tess Tech",
        permissions=[Permission.control, Permission.view], issued_at=int(NOW.timestamp()),
        expires_at=int((NOW + timedelta(minutes=15)).timestamp()),
    )
    fields.update(changes)
    return Grant(**fields)


def test_a_genuine_grant_verifies_and_its_permissions_are_canonical() -> None:
    signed = sign_grant(BROKER, grant())
    verified = verify_grant(signed, BROKER.public_key(), session_id="s-1", now=NOW)
    assert verified.permissions == [Permission.view, Permission.control]
    assert verified.permission_set() == {Permission.view, Permission.control}
    assert canonical_bytes(verified).startswith(b"deskhand-grant-v1\n{")


@pytest.mark.parametrize(
    ("signed", "reason"),
    [
        (sign_grant(OTHER, grant()), "signature does not match"),
        (SignedGrant(grant=grant(permissions=[Permission.view, Permission.control, Permission.files_send]),
                     signature=sign_grant(BROKER, grant()).signature), "signature does not match"),
        (SignedGrant(grant=grant(), signature="not base64!"), "signature does not match"),
        (sign_grant(BROKER, grant(session_id="s-2")), "another session"),
        (sign_grant(BROKER, grant(expires_at=int((NOW - timedelta(minutes=10)).timestamp()),
                                  issued_at=int((NOW - timedelta(minutes=30)).timestamp()))), "expired"),
        (sign_grant(BROKER, grant(issued_at=int((NOW + timedelta(hours=1)).timestamp()),
                                  expires_at=int((NOW + timedelta(hours=2)).timestamp()))), "in the future"),
        (sign_grant(BROKER, grant(expires_at=int(NOW.timestamp()) - 1)), "before it was issued"),
        (sign_grant(BROKER, grant(v=2)), "version 2"),
    ],
)
def test_bad_grants_are_refused_with_a_reason(signed: SignedGrant, reason: str) -> None:
    with pytest.raises(GrantRejected, match=reason):
        verify_grant(signed, BROKER.public_key(), session_id="s-1", now=NOW)


def test_clock_skew_is_tolerated_up_to_the_limit() -> None:
    signed = sign_grant(BROKER, grant())
    late = NOW + timedelta(minutes=15, seconds=CLOCK_SKEW_SECONDS - 1)
    verify_grant(signed, BROKER.public_key(), session_id="s-1", now=late)
    with pytest.raises(GrantRejected, match="expired"):
        verify_grant(signed, BROKER.public_key(), session_id="s-1", now=late + timedelta(seconds=2))


def test_public_keys_load_from_base64_and_malformed_ones_are_refused() -> None:
    raw = BROKER.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    key = load_public_key(base64.b64encode(raw).decode())
    verify_grant(sign_grant(BROKER, grant()), key, session_id="s-1", now=NOW)
    for bad in ("", "%%%", base64.b64encode(b"short").decode()):
        with pytest.raises(GrantRejected, match="malformed"):
            load_public_key(bad)
