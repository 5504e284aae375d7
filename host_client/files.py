"""Where files sent to this computer go: one folder per session under the user's downloads."""

from __future__ import annotations

import os
from pathlib import Path


def default_downloads_root() -> Path:
    """``DESKHAND_DOWNLOADS``, else ``XDG_DOWNLOAD_DIR``, else ``~/Downloads``."""
    for variable in ("DESKHAND_DOWNLOADS", "XDG_DOWNLOAD_DIR"):
        if os.environ.get(variable):
            return Path(os.environ[variable]).expanduser()
    return Path.home() / "Downloads"


def session_folder(root: Path, session_id: str, ticket_id: int) -> Path:
    """The session's own folder: ``<root>/Deskhand/ticket <n> session <id8>``."""
    return root / "Deskhand" / f"ticket {ticket_id} session {session_id[:8]}"


def readable_file(path: Path) -> str | None:
    """Why ``path`` cannot be sent (None when it can)."""
    try:
        if not path.is_file():
            return f"{path} is not a file"
        with path.open("rb"):
            pass
    except OSError as exc:
        return f"{path} cannot be read: {exc.strerror or exc}"
    return None
