"""What a host remembers of its session, so that a restarted host can resume it.

Saved on join in ``$XDG_STATE_HOME/deskhand/host`` (``~/.local/state/...``),
readable by the user only (it holds the host token), and removed when the
session ends. ``deskhand-host resume`` reads it back; the broker still decides
whether the session is alive.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from protocol.api import JoinResponse


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "deskhand" / "host"


@dataclass
class SavedSession:
    broker_url: str
    joined: JoinResponse
    downloads_root: str
    outgoing: dict[str, str] = field(default_factory=dict)
    """Transfer id -> the local file being sent (to resume uploads)."""
    recording_origin_ms: int | None = None
    """When this host started recording the session (Unix ms, this computer's clock); None until it did."""

    @property
    def path(self) -> Path:
        return state_dir() / f"{self.joined.session_id}.json"

    def save(self) -> None:
        directory = state_dir()
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(
                {"broker_url": self.broker_url, "joined": self.joined.model_dump(mode="json"),
                 "downloads_root": self.downloads_root, "outgoing": self.outgoing,
                 "recording_origin_ms": self.recording_origin_ms},
                out,
            )
        os.replace(temporary, self.path)

    def forget(self) -> None:
        self.path.unlink(missing_ok=True)


def load_saved(path: Path) -> SavedSession | None:
    try:
        data = json.loads(path.read_text("utf-8"))
        return SavedSession(
            broker_url=str(data["broker_url"]),
            joined=JoinResponse.model_validate(data["joined"]),
            downloads_root=str(data["downloads_root"]),
            outgoing={str(k): str(v) for k, v in dict(data.get("outgoing", {})).items()},
            recording_origin_ms=None if (origin := data.get("recording_origin_ms")) is None else int(origin),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def latest_saved() -> SavedSession | None:
    """The most recently saved session, if any."""
    directory = state_dir()
    if not directory.is_dir():
        return None
    candidates = sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in candidates:
        saved = load_saved(path)
        if saved is not None:
            return saved
    return None
