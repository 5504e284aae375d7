"""Export bundles: a session's evidence in one zip, written by the broker and verified offline.

A bundle is closed: a signed head covers its last event, and every file in it is
covered by a hash inside signed data (events by the chain; each segment by its
``recording.segment`` event; ``recording.webm``, the file people watch, by the
``audit.exported`` event of this export, which the manifest names; the manifest's
own fields are checked against the events). A file nothing covers is a problem.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from broker.audit.chain import SESSION_END_KINDS, ChainEvent, Problem, SignedHead, Verdict, segment_index
from broker.audit.trail import SEGMENT_KIND, LoadedTrail, verify_loaded

BUNDLE_FORMAT = "deskhand-audit-bundle-v2"
OLD_FORMATS = frozenset({"deskhand-audit-bundle-v1"})
EXPORTED_KIND = "audit.exported"
MANIFEST, EVENTS, HEADS, RECORDING = "manifest.json", "events.jsonl", "heads.json", "recording.webm"
METADATA_LIMITS = {MANIFEST: 64 * 1024, HEADS: 1024 * 1024, EVENTS: 1024 * 1024 * 1024}
"""The most a bundle's metadata files may unpack to (a hostile zip must not fill memory)."""
HASH_BLOCK = 1024 * 1024


class BundleError(Exception):
    """The file is not a readable bundle; the message says what is wrong."""


def segment_name(index: int) -> str:
    return f"segments/{index:08d}.webm"


def key_fingerprint(public_key_b64: str) -> str:
    """SHA-256 of the raw public key, as printed for people to compare."""
    return hashlib.sha256(base64.b64decode(public_key_b64)).hexdigest()


def write_bundle(
    session_id: str,
    events: list[ChainEvent],
    head: SignedHead,
    public_key_b64: str,
    export_seq: int,
    segments: Iterable[tuple[int, Callable[[], bytes]]],
    recording: bytes,
) -> bytes:
    """The zip of one session: ``events`` up to ``head``, each segment (index, its bytes, read when
    written), the joined ``recording`` that the ``audit.exported`` event at ``export_seq`` hashes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr(MANIFEST, json.dumps({
            "format": BUNDLE_FORMAT,
            "session_id": session_id,
            "export_event": export_seq,
            "public_key": public_key_b64,
            "public_key_sha256": key_fingerprint(public_key_b64),
        }, indent=2))
        bundle.writestr(EVENTS, "".join(json.dumps(e.to_json(), sort_keys=True) + "\n" for e in events))
        bundle.writestr(HEADS, json.dumps([head.to_json()], indent=2))
        for index, read in segments:
            # Already compressed video: stored, not deflated again.
            bundle.writestr(segment_name(index), read(), compress_type=zipfile.ZIP_STORED)
        bundle.writestr(RECORDING, recording, compress_type=zipfile.ZIP_STORED)
    return buffer.getvalue()


def verify_bundle(
    path: Path, expected_key: str | None = None, exported_heads: Iterable[SignedHead] = (),
) -> tuple[Verdict, dict[str, Any]]:
    """Check every event, signed head, segment and file in the bundle; returns the verdict and what it is.

    ``expected_key`` (base64): the broker key you trust; without it the bundle's own key is used
    and only its fingerprint tells whose it is. ``exported_heads``: heads kept outside the broker;
    the bundle must agree with those of its session.
    """
    try:
        bundle = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise BundleError(f"{path} is not a bundle: {exc}") from None
    with bundle:
        manifest, events, heads = _read_metadata(bundle, path)
        session = manifest["session_id"]
        key_b64 = expected_key or manifest["public_key"]
        try:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(key_b64, validate=True))
        except (binascii.Error, ValueError) as exc:
            raise BundleError(f"the public key is malformed: {exc}") from None
        names = set(bundle.namelist())

        def segment_sha256(_session: str, index: int) -> str | None:
            name = segment_name(index)
            return _member_sha256(bundle, name) if name in names else None

        trail = LoadedTrail({session: events}, {session: heads}, 0)
        verdict = verify_loaded(trail, key, segment_sha256, freshness=None, stored=False,
                                exported_heads=exported_heads, only=session)
        verdict.problems += _manifest_problems(manifest, events, key_b64, expected_key)
        verdict.problems += _uncovered_files(session, names, events)
        verdict.problems += _recording_problems(bundle, names, session, manifest, events)
    info = {
        "session_id": session, "public_key": key_b64, "public_key_sha256": key_fingerprint(key_b64),
        "ended": any(e.kind in SESSION_END_KINDS for e in events),
    }
    return verdict, info


def _read_metadata(bundle: zipfile.ZipFile, path: Path) -> tuple[dict[str, Any], list[ChainEvent], list[SignedHead]]:
    try:
        raw = {name: _read_limited(bundle, name) for name in METADATA_LIMITS}
    except KeyError as exc:
        manifest_format = _format_of(bundle)
        if manifest_format in OLD_FORMATS:
            raise BundleError(f"{path} is a {manifest_format} bundle, made by an older broker: its recording.webm and "
                              "manifest are not covered by signed data. Export the session again.") from None
        raise BundleError(f"{path} is not a complete bundle: {exc.args[0]}") from None
    try:
        manifest = json.loads(raw[MANIFEST])
        if not isinstance(manifest, dict):
            raise TypeError("the manifest is not an object")
        if manifest.get("format") != BUNDLE_FORMAT:
            raise BundleError(f"{path} is a {manifest.get('format')!r} file, not a {BUNDLE_FORMAT}")
        for name in ("session_id", "public_key", "public_key_sha256"):
            if not isinstance(manifest.get(name), str):
                raise TypeError(f"the manifest has no {name}")
        events = [ChainEvent.from_json(json.loads(line)) for line in raw[EVENTS].decode().splitlines() if line]
        heads_json = json.loads(raw[HEADS])
        if not isinstance(heads_json, list):
            raise TypeError("heads.json is not a list")
        heads = [SignedHead.from_json(h) for h in heads_json]
    except (KeyError, ValueError, TypeError, UnicodeDecodeError, RecursionError) as exc:
        raise BundleError(f"{path} is not a readable bundle: {exc}") from None
    return manifest, events, heads


def _format_of(bundle: zipfile.ZipFile) -> object:
    try:
        return json.loads(_read_limited(bundle, MANIFEST)).get("format")
    except (KeyError, ValueError, AttributeError):
        return None


def _read_limited(bundle: zipfile.ZipFile, name: str) -> bytes:
    info = bundle.getinfo(name)  # KeyError: missing
    limit = METADATA_LIMITS[name]
    if info.file_size > limit:
        raise BundleError(f"{name} in the bundle is {info.file_size} bytes, more than a bundle's {limit}")
    with bundle.open(info) as member:
        data = member.read(limit + 1)
    if len(data) > limit:
        raise BundleError(f"{name} in the bundle unpacks to more than {limit} bytes")
    return data


def _member_sha256(bundle: zipfile.ZipFile, name: str) -> str:
    digest = hashlib.sha256()
    with bundle.open(name) as member:
        while block := member.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _manifest_problems(manifest: dict[str, Any], events: list[ChainEvent], key_b64: str, expected_key: str | None) -> list[Problem]:
    session = manifest["session_id"]
    problems = []
    if expected_key and expected_key != manifest["public_key"]:
        problems.append(Problem(session, None, None, "the bundle names another broker key than the one given"))
    if manifest["public_key_sha256"] != key_fingerprint(manifest["public_key"]):
        problems.append(Problem(session, None, None, "the manifest's key fingerprint is not that of its key"))
    if not events:
        problems.append(Problem(session, None, None, "the bundle holds no events"))
    for event in events:
        if event.session_id != session:
            problems.append(Problem(session, event.seq, event.id,
                                    f"is about session {event.session_id}, not the manifest's {session}"))
            break
    return problems


def _uncovered_files(session: str, names: set[str], events: list[ChainEvent]) -> list[Problem]:
    covered = {MANIFEST, EVENTS, HEADS, RECORDING} | {
        segment_name(segment_index(e)) for e in events if e.kind == SEGMENT_KIND
    }
    return [Problem(session, None, None, f"the bundle holds {name}, which nothing signed covers")
            for name in sorted(names - covered)]


def _recording_problems(
    bundle: zipfile.ZipFile, names: set[str], session: str, manifest: dict[str, Any], events: list[ChainEvent],
) -> list[Problem]:
    seq = manifest.get("export_event")
    export = next((e for e in events if e.seq == seq), None) if isinstance(seq, int) else None
    if export is None or export.kind != EXPORTED_KIND:
        return [Problem(session, None, None, f"the manifest names no audit.exported event of this bundle (export_event {seq!r})")]
    if RECORDING not in names:
        return [Problem(session, export.seq, export.id, "recording.webm is missing")]
    if _member_sha256(bundle, RECORDING) != export.data.get("recording_sha256"):
        return [Problem(session, export.seq, export.id,
                        "recording.webm is not the recording this export signed (it was replaced or altered)")]
    return []
