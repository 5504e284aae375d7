"""File transfers: payloads, chunk arithmetic and file-name safety.

Files travel through the broker over HTTP in chunks (see docs/benchmarks.md for
why not over a data channel): the sender uploads each chunk with its SHA-256,
the broker keeps it until the transfer ends, the receiver downloads, verifies
and writes it. Every chunk is addressed by index, so a transfer resumes after
any interruption by moving only the chunks that are missing.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from datetime import datetime

from pydantic import Field, field_validator

from .api import MultiLine, Request, Response

CHUNK_SIZE = 4 * 1024 * 1024
"""Bytes per chunk: large enough that per-request costs vanish, small enough to resume cheaply."""

MAX_NAME_BYTES = 200
"""Longest file name kept (UTF-8 bytes); longer names are shortened, keeping the extension."""

SHA256_PATTERN = r"^[0-9a-f]{64}$"


class Direction(str, enum.Enum):
    to_host = "to_host"
    """The technician sends a file to the end user's machine (permission ``files.send``)."""
    to_technician = "to_technician"
    """The host sends a file the technician asked for (permission ``files.receive``)."""


class TransferState(str, enum.Enum):
    offered = "offered"
    """Waiting for the receiver to accept (it checks size, space and permission first)."""
    accepted = "accepted"
    """Chunks are moving."""
    completed = "completed"
    refused = "refused"
    cancelled = "cancelled"
    failed = "failed"

    @property
    def over(self) -> bool:
        return self in (TransferState.completed, TransferState.refused, TransferState.cancelled, TransferState.failed)


class TransferCreate(Request):
    """What the sender declares before sending anything."""

    name: str = Field(min_length=1, max_length=1024)
    size: int = Field(ge=0, le=2**50)
    direction: Direction
    request_id: str | None = Field(default=None, max_length=36)
    """For ``to_technician`` (required): the pending file request of this session this answers.
    A file ``to_host`` answers none; an offer naming one is refused."""


class TransferFinish(Request):
    """The sender has uploaded every chunk; this is the whole file's SHA-256."""

    sha256: str = Field(pattern=SHA256_PATTERN)


class TransferDecision(Request):
    """The receiver accepts (with the name it will save under) or refuses (with a reason)."""

    accept: bool
    saved_as: str | None = Field(default=None, max_length=1024)
    """A name as :func:`safe_file_name` leaves it (receivers choose names by it): nothing else is
    stored, so no control character or folder reaches a report through it."""
    reason: MultiLine = Field(default="", max_length=500)

    @field_validator("saved_as")
    @classmethod
    def _a_safe_name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            safe = safe_file_name(value)
        except UnsafeName as exc:
            raise ValueError(str(exc)) from None
        if safe != value:
            raise ValueError(f"{value[:60]!r} is not a file name as receivers make them ({safe[:60]!r} would be)")
        return value


class TransferComplete(Request):
    """The receiver has every chunk and the whole file matches ``sha256``."""

    sha256: str = Field(pattern=SHA256_PATTERN)


class TransferCancel(Request):
    reason: MultiLine = Field(default="", max_length=500)


class TransferOut(Response):
    id: str
    session_id: str
    direction: Direction
    name: str
    size: int
    chunk_size: int
    chunk_count: int
    state: TransferState
    sha256: str | None = None
    """The sender's declared hash, known once it has finished uploading."""
    broker_sha256: str | None = None
    """The hash of the bytes the broker relayed, computed by the broker itself; set once the receiver
    reported the file, always for a completed transfer."""
    saved_as: str | None = None
    chunks_at_broker: list[int] = Field(default_factory=list)
    """Indexes of the chunks the broker holds now."""
    reason: str | None = None
    created_by: str
    created_at: datetime
    completed_at: datetime | None = None
    request_id: str | None = None


class FileRequestCreate(Request):
    """The technician asks the host for a file (the user picks or approves it)."""

    path: str = Field(default="", max_length=4096)
    """A suggestion: the path the technician would like, or empty to let the user pick."""
    note: MultiLine = Field(default="", max_length=500)


class FileRequestAnswer(Request):
    approve: bool
    reason: MultiLine = Field(default="", max_length=500)


class FileRequestState(str, enum.Enum):
    pending = "pending"
    approved = "approved"
    refused = "refused"


class FileRequestOut(Response):
    id: str
    session_id: str
    path: str
    note: str
    state: FileRequestState
    reason: str | None = None
    transfer_id: str | None = None
    created_at: datetime


def transfer_version(transfer: TransferOut) -> str:
    """A tag that changes whenever anything a waiting peer cares about changes (for long polls)."""
    return f"{transfer.state.value}:{len(transfer.chunks_at_broker)}:{transfer.sha256 or ''}"


def chunk_count(size: int, chunk_size: int = CHUNK_SIZE) -> int:
    """How many chunks a file of ``size`` bytes has (an empty file has none)."""
    return (size + chunk_size - 1) // chunk_size


def chunk_span(index: int, size: int, chunk_size: int = CHUNK_SIZE) -> tuple[int, int]:
    """Offset and length of chunk ``index``."""
    if not 0 <= index < chunk_count(size, chunk_size):
        raise ValueError(f"chunk {index} is outside a file of {size} bytes")
    offset = index * chunk_size
    return offset, min(chunk_size, size - offset)


class UnsafeName(ValueError):
    """A file name that cannot be made safe; the message says why."""


_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$", re.IGNORECASE)
_FORBIDDEN = set('<>:"/\\|?*')


def safe_file_name(name: str) -> str:
    """A name that is safe to create in a folder on Linux, macOS and Windows.

    Only the last path component is kept (a sender's folders mean nothing here);
    control and format characters and the characters Windows forbids become
    ``_``; leading dots and trailing dots and spaces go (no hidden files, no
    ``..``); Windows device names get a ``_`` prefix; names longer than
    :data:`MAX_NAME_BYTES` are shortened, keeping the extension. Raises
    :class:`UnsafeName` when nothing usable is left.
    """
    if "\x00" in name:
        raise UnsafeName("a file name cannot contain a NUL character")
    base = re.split(r"[\\/]", name)[-1]
    base = unicodedata.normalize("NFC", base)
    cleaned = "".join(
        "_" if ch in _FORBIDDEN or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") else ch
        for ch in base
    )
    cleaned = cleaned.lstrip(". ").rstrip(". ")
    if not cleaned or set(cleaned) <= {"_"}:
        raise UnsafeName(f"{name[:60]!r} has no usable file name in it")
    if _WINDOWS_RESERVED.match(cleaned):
        cleaned = "_" + cleaned
    return _shorten(cleaned)


def _shorten(name: str, suffix: str = "") -> str:
    """``name`` with ``suffix`` added to its stem, cut to MAX_NAME_BYTES without losing suffix or extension.

    The stem is what gets cut: a number added to tell two files apart must
    survive the cut, or every numbered name of a long name is the name itself.
    """
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext.encode("utf-8")) > 16:
        stem, ext = name, ""
    tail = suffix + (f".{ext}" if ext else "")
    if len((stem + tail).encode("utf-8")) <= MAX_NAME_BYTES:
        return stem + tail
    budget = MAX_NAME_BYTES - len(tail.encode("utf-8"))
    stem = stem.encode("utf-8")[:budget].decode("utf-8", "ignore").rstrip(". ")
    return stem + tail


def numbered_name(name: str, n: int) -> str:
    """``report.pdf`` -> ``report (2).pdf``: the name to try when ``name`` exists."""
    return _shorten(name, f" ({n})")
