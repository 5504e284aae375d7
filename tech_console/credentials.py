"""Where ``deskhand-console login`` keeps its token between commands."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


def default_credentials_path() -> Path:
    """``$XDG_CONFIG_HOME/deskhand/console.json``, or ``~/.config/deskhand/console.json``."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "deskhand" / "console.json"


@dataclass(frozen=True)
class Credentials:
    broker: str
    token: str
    username: str
    expires_at: str


def load_credentials(path: Path) -> Credentials | None:
    """The saved sign-in, or None when there is none or it cannot be read."""
    try:
        data = json.loads(path.read_text("utf-8"))
        return Credentials(**{k: str(data[k]) for k in ("broker", "token", "username", "expires_at")})
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save_credentials(path: Path, credentials: Credentials) -> None:
    """Write the sign-in readable by this user only (the token is a secret)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(asdict(credentials), fh)
    os.replace(tmp, path)


def forget_credentials(path: Path) -> None:
    path.unlink(missing_ok=True)
