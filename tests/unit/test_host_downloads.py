"""broker/host_downloads.py: which files of the folder are builds, and each file hashed once per version."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from broker import host_downloads
from broker.host_downloads import HostDownloads
from broker.refusals import NotFound
from broker.settings import Settings


def test_a_file_is_hashed_once_until_it_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build = tmp_path / "deskhand-host-linux-x86_64"
    build.write_bytes(b"one")
    hashed: list[int] = []
    real = hashlib.sha256
    file_digest = hashlib.file_digest

    def counting(file: Any, digest: str) -> Any:
        hashed.append(1)
        return file_digest(file, digest)

    monkeypatch.setattr(host_downloads.hashlib, "file_digest", counting)
    downloads = HostDownloads(tmp_path)
    assert [b.sha256 for b in downloads.builds()] == [real(b"one").hexdigest()]
    downloads.builds()
    downloads.build("linux-x86_64")
    assert len(hashed) == 1
    build.write_bytes(b"two, longer")
    assert downloads.build("linux-x86_64").sha256 == real(b"two, longer").hexdigest()
    assert len(hashed) == 2


def test_only_build_names_are_offered(tmp_path: Path) -> None:
    for name in ("deskhand-host-linux-x86_64", "deskhand-host-windows-x86_64.exe", "deskhand-host-macos-arm64",
                 "deskhand-host", "deskhand-host-linux", "deskhand-host-linux-x86_64.sha256", "notes.txt",
                 "deskhand-host-Linux-x86_64", ".deskhand-host-linux-arm64"):
        (tmp_path / name).write_bytes(b"x")
    os.symlink("/etc/hostname", tmp_path / "deskhand-host-freebsd-x86_64")  # the operator's link is followed
    platforms = [b.platform for b in HostDownloads(tmp_path).builds()]
    assert platforms == ["freebsd-x86_64", "linux-x86_64", "macos-arm64", "windows-x86_64"]
    with pytest.raises(NotFound) as refused:
        HostDownloads(tmp_path).build("linux-arm64")
    assert refused.value.detail == {"platforms": platforms}
    assert HostDownloads(None).builds() == [] and HostDownloads(tmp_path / "gone").builds() == []


def test_the_setting_must_name_a_folder(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path, host_downloads=tmp_path).host_downloads == tmp_path
    assert Settings(data_dir=tmp_path, host_downloads="").host_downloads is None
    (tmp_path / "file").write_bytes(b"")
    for wrong in (tmp_path / "missing", tmp_path / "file"):
        with pytest.raises(ValidationError, match="does not exist or is not a folder"):
            Settings(data_dir=tmp_path, host_downloads=wrong)
