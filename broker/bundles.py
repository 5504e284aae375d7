"""Verifying an exported audit bundle offline: no database, no broker, only the zip."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import zipfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .chain import ChainEvent, Checkpoint, Problem, Verdict
from .trail import verify_loaded

BUNDLE_FORMAT = "deskhand-audit-bundle-v1"


class BundleError(Exception):
    """The file is not a readable bundle; the message says what is wrong."""


def verify_bundle(path: Path, expected_key: str | None = None) -> tuple[Verdict, dict[str, str]]:
    """Check every event, checkpoint and segment in the bundle; returns the verdict and the manifest.

    ``expected_key`` (base64): the broker key you trust; without it the bundle's own key is used
    and only its fingerprint tells whose it is.
    """
    try:
        bundle = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise BundleError(f"{path} is not a bundle: {exc}") from None
    with bundle:
        try:
            manifest = json.loads(bundle.read("manifest.json"))
            events = [ChainEvent(**_event_fields(json.loads(line))) for line in bundle.read("events.jsonl").decode().splitlines() if line]
            checkpoints = [Checkpoint(**c) for c in json.loads(bundle.read("checkpoints.json"))]
        except (KeyError, ValueError, TypeError) as exc:
            raise BundleError(f"{path} is not a complete bundle: {exc}") from None
        if manifest.get("format") != BUNDLE_FORMAT:
            raise BundleError(f"{path} is a {manifest.get('format')!r} file, not a {BUNDLE_FORMAT}")
        key_b64 = expected_key or manifest["public_key"]
        try:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(key_b64, validate=True))
        except (binascii.Error, ValueError) as exc:
            raise BundleError(f"the public key is malformed: {exc}") from None
        names = set(bundle.namelist())

        def segment_sha256(_session: str, index: int) -> str | None:
            name = f"segments/{index:08d}.webm"
            return hashlib.sha256(bundle.read(name)).hexdigest() if name in names else None

        session = manifest["session_id"]
        verdict = verify_loaded({session: events}, {session: checkpoints}, key, segment_sha256, stored=False)
        if expected_key and expected_key != manifest["public_key"]:
            verdict.problems.insert(0, Problem(session, None, None, "the bundle names another broker key than the one given"))
    fingerprint = hashlib.sha256(base64.b64decode(key_b64)).hexdigest()
    return verdict, {"session_id": session, "public_key": key_b64, "public_key_sha256": fingerprint}


def _event_fields(data: dict[str, object]) -> dict[str, object]:
    return {
        "id": data["id"], "chain": data["chain"], "seq": data["seq"], "at": data["at"], "kind": data["kind"],
        "actor": data["actor"], "source": data["source"], "session_id": data["session_id"],
        "ticket_id": data["ticket_id"], "data": data["data"], "prev_hash": data["prev"], "hash": data["hash"],
    }
