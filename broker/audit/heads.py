"""Signed heads kept outside the broker: the file ``audit heads`` writes and ``--heads`` reads.

A heads file is the broker's signed head of every chain at one moment. Kept
where the broker cannot write (an auditor's machine, write-once storage), it
fixes the trail up to that moment: a database or bundle checked against it
(:func:`broker.audit.chain.check_exported_heads`) must still hold each head's event
with the same hash, which not even someone holding the signing key can fake
without the file changing too.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker.audit.bundles import key_fingerprint
from broker.audit.chain import SignedHead
from broker.audit.trail import as_signed_head, iso
from broker.clock import utcnow
from broker.storage.models import AuditHead

HEADS_FORMAT = "deskhand-audit-heads-v1"
MAX_HEADS_FILE_BYTES = 256 * 1024 * 1024


class HeadsFileError(Exception):
    """The file is not a heads file; the message says what is wrong."""


def heads_document(db: Session, public_key_b64: str, chain: str | None = None) -> dict[str, Any]:
    """Every chain's signed head (or ``chain``'s), with the key that signed them."""
    query = select(AuditHead).order_by(AuditHead.chain)
    if chain is not None:
        query = query.where(AuditHead.chain == chain)
    return {
        "format": HEADS_FORMAT,
        "exported_at": iso(utcnow()),
        "public_key": public_key_b64,
        "public_key_sha256": key_fingerprint(public_key_b64),
        "heads": [as_signed_head(row).to_json() for row in db.scalars(query)],
    }


def parse_heads(raw: bytes, name: str) -> list[SignedHead]:
    """The heads in a heads file's bytes; raises :class:`HeadsFileError` saying what is wrong."""
    if len(raw) > MAX_HEADS_FILE_BYTES:
        raise HeadsFileError(f"{name} is larger than a heads file can be ({MAX_HEADS_FILE_BYTES} bytes)")
    try:
        document = json.loads(raw)
        if not isinstance(document, dict) or document.get("format") != HEADS_FORMAT:
            raise HeadsFileError(f"{name} is not a {HEADS_FORMAT} file (write one with: deskhand-broker audit heads)")
        listed = document.get("heads")
        if not isinstance(listed, list):
            raise TypeError("'heads' is not a list")
        return [SignedHead.from_json(item) for item in listed]
    except (ValueError, TypeError, KeyError, RecursionError) as exc:
        raise HeadsFileError(f"{name} is not a readable heads file: {exc}") from None
