"""Where received files land, and the rules they land by (both peers use it).

Nothing is written outside the landing folder. Names are made safe
(:func:`protocol.transfers.safe_file_name`), an existing file is never
overwritten (a numbered name is chosen instead), and a file is only given its
real name once every byte has been verified: until then it is a hidden
``.<name>.deskhand-part`` beside its chunk ledger.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from protocol.transfers import UnsafeName, numbered_name, safe_file_name

DEFAULT_MAX_FILE_BYTES = 4 * 1024**3
SPACE_MARGIN_BYTES = 64 * 1024**2
"""Free space left over after a file lands: a full disk breaks more than the transfer."""


@dataclass
class LandingFolder:
    """The one folder incoming files may be written to."""

    folder: Path
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    _reserved: set[str] = field(default_factory=set)

    def refusal(self, name: str, size: int) -> str | None:
        """Why a file of ``size`` bytes named ``name`` cannot land here; None when it can."""
        try:
            safe_file_name(name)
        except UnsafeName as exc:
            return str(exc)
        if size > self.max_file_bytes:
            return f"{_mb(size)} is over the limit of {_mb(self.max_file_bytes)} per file here"
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        free = shutil.disk_usage(self.folder).free
        if size + SPACE_MARGIN_BYTES > free:
            return f"only {_mb(free)} is free here, not enough for {_mb(size)}"
        return None

    def choose_name(self, name: str) -> str:
        """A safe name that no file, partial file or other transfer here uses."""
        safe = safe_file_name(name)
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        candidate, n = safe, 1
        while candidate in self._reserved or (self.folder / candidate).exists() or self.part(candidate).exists():
            n += 1
            candidate = numbered_name(safe, n)
        self._reserved.add(candidate)
        return candidate

    def adopt(self, saved_as: str) -> None:
        """Reserve a name chosen by an earlier run (resuming)."""
        self._reserved.add(saved_as)

    def part(self, saved_as: str) -> Path:
        return self.folder / f".{saved_as}.deskhand-part"

    def ledger(self, saved_as: str) -> Path:
        return self.folder / f".{saved_as}.deskhand-ledger"

    def show(self, saved_as: str) -> Path:
        """Give the verified file its name, without overwriting anything; returns where it is.

        The name is a second link to the part file, which stays with its ledger until
        :meth:`settle` (the transfer is reported complete) or :meth:`withdraw` (it was not):
        a transfer whose report failed resumes from the part."""
        part = self.part(saved_as)
        candidate, n = saved_as, 1
        while True:
            final = self.folder / candidate
            try:
                os.link(part, final)  # fails if ``final`` exists: never an overwrite
                return final
            except FileExistsError:
                n += 1
                candidate = numbered_name(saved_as, n)

    def settle(self, saved_as: str) -> None:
        """The shown file is the transfer's for good: its part file, ledger and reserved name go."""
        self.part(saved_as).unlink()
        self.ledger(saved_as).unlink(missing_ok=True)
        self._reserved.discard(saved_as)

    def withdraw(self, shown: Path) -> None:
        """Take back a name :meth:`show` gave (the part file keeps the bytes)."""
        shown.unlink(missing_ok=True)

    def discard(self, saved_as: str) -> None:
        """Forget a transfer that will not complete (refused, cancelled, or failed its hash)."""
        self.part(saved_as).unlink(missing_ok=True)
        self.ledger(saved_as).unlink(missing_ok=True)
        self._reserved.discard(saved_as)


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"
