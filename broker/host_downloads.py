"""The host builds this broker offers for download (``DESKHAND_HOST_DOWNLOADS``): which platforms, each file's size and SHA-256.

The folder holds files named as ``scripts/build-host`` names them,
``deskhand-host-<system>-<machine>`` (``.exe`` on Windows): ``deskhand-host-linux-x86_64``,
``deskhand-host-windows-x86_64.exe``, ``deskhand-host-macos-arm64``; the platform is the
part after ``deskhand-host-``. Anything else there is ignored, and only files found there
are ever served: a request names a platform, never a path.

The folder is listed at each request (a directory read and a stat per build, so a build put
there or replaced is offered at once); a file's SHA-256 is computed when its size,
modification time or inode changed since the last time, not on every request. Replace a
build by renaming the new file over it (``mv``): a download under way keeps the old file.
Blocking I/O: call from a worker thread.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from broker.refusals import NotFound

PLATFORM_PATTERN = r"^[a-z0-9]{1,16}-[a-z0-9_]{1,16}$"
"""A platform as the API takes it: ``linux-x86_64``, ``windows-x86_64``, ``macos-arm64``."""

FILE_NAME = re.compile(r"deskhand-host-(?P<platform>[a-z0-9]{1,16}-[a-z0-9_]{1,16})(?:\.exe)?")
"""A build's file name; anything else in the folder is not offered."""


@dataclass(frozen=True)
class HostBuild:
    """One downloadable build: its platform, file (name and path in the folder), size and SHA-256."""

    platform: str
    file_name: str
    path: Path
    size: int
    sha256: str


_Stamp = tuple[int, int, int]
"""What says a file changed: (size, modification time in ns, inode)."""


class HostDownloads:
    """The builds in one folder (or none, without a folder), their hashes kept per file version."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        self._hashes: dict[str, tuple[_Stamp, str]] = {}
        self._lock = threading.Lock()  # one hashing at a time: two first requests do not read a file twice

    def builds(self) -> list[HostBuild]:
        """Every build in the folder, by platform (the first name in sorted order if a platform has two)."""
        if self.folder is None:
            return []
        found: dict[str, HostBuild] = {}
        try:
            entries = sorted(os.scandir(self.folder), key=lambda e: e.name)
        except OSError:
            return []  # the folder went away: nothing to offer until it is back
        for entry in entries:
            match = FILE_NAME.fullmatch(entry.name)
            if match is None or match["platform"] in found:
                continue
            try:
                if not entry.is_file():
                    continue
                stat = entry.stat()
                digest = self._sha256(Path(entry.path), (stat.st_size, stat.st_mtime_ns, stat.st_ino))
            except OSError:
                continue  # removed or unreadable between the listing and now
            found[match["platform"]] = HostBuild(match["platform"], entry.name, Path(entry.path), stat.st_size, digest)
        self._forget_except({build.file_name for build in found.values()})
        return list(found.values())

    def build(self, platform: str) -> HostBuild:
        """The build for ``platform``; :class:`NotFound` naming the platforms there are, if not one of them."""
        builds = self.builds()
        for build in builds:
            if build.platform == platform:
                return build
        offered = [build.platform for build in builds]
        if not offered:
            message = f"no host download for {platform}: this broker offers none"
        else:
            message = f"no host download for {platform}; this broker offers: {', '.join(offered)}"
        raise NotFound("download_not_found", message, detail={"platforms": offered})

    def _sha256(self, path: Path, stamp: _Stamp) -> str:
        with self._lock:
            known = self._hashes.get(path.name)
            if known is not None and known[0] == stamp:
                return known[1]
            with path.open("rb") as file:
                value = hashlib.file_digest(file, "sha256").hexdigest()
            after = path.stat()
            if (after.st_size, after.st_mtime_ns, after.st_ino) == stamp:
                self._hashes[path.name] = (stamp, value)  # not kept when the file changed while being read
            return value

    def _forget_except(self, names: set[str]) -> None:
        with self._lock:
            for name in set(self._hashes) - names:
                del self._hashes[name]
