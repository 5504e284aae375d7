"""peer.landing.LandingFolder: names that never collide, verified files that never overwrite."""

from __future__ import annotations

import os
import stat
from collections import namedtuple
from pathlib import Path

import pytest

import peer.landing
from peer.landing import SPACE_MARGIN_BYTES, LandingFolder
from protocol.transfers import MAX_NAME_BYTES, UnsafeName, numbered_name

DiskUsage = namedtuple("DiskUsage", "total used free")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A landing folder nested in the temporary directory (not created yet)."""
    return tmp_path / "outer" / "landing"


@pytest.fixture
def landing(folder: Path) -> LandingFolder:
    return LandingFolder(folder)


def fake_free(monkeypatch: pytest.MonkeyPatch, free: int) -> list[Path]:
    """Make ``shutil.disk_usage`` (as peer.landing sees it) report ``free`` bytes; returns the paths asked about."""
    asked: list[Path] = []

    def disk_usage(path: str | os.PathLike[str]) -> DiskUsage:
        asked.append(Path(path))
        return DiskUsage(total=free * 2, used=free, free=free)

    monkeypatch.setattr(peer.landing.shutil, "disk_usage", disk_usage)
    return asked


def land(landing: LandingFolder, name: str, content: bytes) -> Path:
    """Receive ``content`` as the transfers do: choose a name, write the part and a ledger, name it for good."""
    saved_as = landing.choose_name(name)
    landing.part(saved_as).write_bytes(content)
    landing.ledger(saved_as).write_text("{}")
    return named(landing, saved_as)


def named(landing: LandingFolder, saved_as: str) -> Path:
    """Show the verified part under its name and settle it there (a transfer reported complete)."""
    shown = landing.show(saved_as)
    landing.settle(saved_as)
    return shown


def guard_numbered_name(monkeypatch: pytest.MonkeyPatch, limit: int = 200) -> None:
    """Make peer.landing's numbered_name raise after ``limit`` calls, so a name search that never ends fails instead."""
    calls = [0]

    def guarded(name: str, n: int) -> str:
        calls[0] += 1
        if calls[0] > limit:
            raise RuntimeError(f"numbered_name called {limit} times for {name[:20]!r}…: the search does not end")
        return numbered_name(name, n)

    monkeypatch.setattr(peer.landing, "numbered_name", guarded)


def files_under(root: Path) -> set[str]:
    """Every path under ``root``, relative to it."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# --- choose_name ------------------------------------------------------------------------------


def test_choose_name_creates_a_private_folder_and_returns_the_safe_name(landing: LandingFolder, folder: Path) -> None:
    assert landing.choose_name("report.pdf") == "report.pdf"
    assert folder.is_dir()
    assert stat.S_IMODE(folder.stat().st_mode) & 0o077 == 0


def test_choose_name_makes_the_name_safe(landing: LandingFolder) -> None:
    assert landing.choose_name("../../etc/passwd") == "passwd"
    assert landing.choose_name("C:\\Users\\x\\con.txt") == "_con.txt"
    with pytest.raises(UnsafeName):
        landing.choose_name("..")


def test_names_reserved_by_transfers_in_flight_are_not_handed_out_twice(landing: LandingFolder) -> None:
    chosen = [landing.choose_name("report.pdf") for _ in range(4)]
    assert chosen == ["report.pdf", "report (2).pdf", "report (3).pdf", "report (4).pdf"]


def test_reserved_names_are_shared_by_different_spellings_of_the_same_name(landing: LandingFolder) -> None:
    assert landing.choose_name("a/report.pdf") == "report.pdf"
    assert landing.choose_name("b\\report.pdf") == "report (2).pdf"
    assert landing.choose_name(".report.pdf.") == "report (3).pdf"


def test_an_existing_file_is_never_chosen(landing: LandingFolder, folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "report.pdf").write_bytes(b"mine")
    (folder / "report (2).pdf").write_bytes(b"mine too")
    assert landing.choose_name("report.pdf") == "report (3).pdf"


def test_an_existing_directory_is_never_chosen(landing: LandingFolder, folder: Path) -> None:
    (folder / "notes").mkdir(parents=True)
    assert landing.choose_name("notes") == "notes (2)"


def test_a_name_whose_partial_file_exists_is_never_chosen(landing: LandingFolder, folder: Path) -> None:
    folder.mkdir(parents=True)
    landing.part("report.pdf").write_bytes(b"half of an earlier run")
    assert landing.choose_name("report.pdf") == "report (2).pdf"


def test_the_chosen_name_satisfies_every_rule_at_once(landing: LandingFolder, folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "x.txt").write_bytes(b"")
    landing.adopt("x (2).txt")
    landing.part("x (3).txt").write_bytes(b"")
    chosen = landing.choose_name("x.txt")
    assert chosen == "x (4).txt"
    assert not (folder / chosen).exists() and not landing.part(chosen).exists()


def test_adopt_reserves_a_name_from_an_earlier_run(landing: LandingFolder) -> None:
    landing.adopt("movie.mkv")
    assert landing.choose_name("movie.mkv") == "movie (2).mkv"


def test_discard_releases_the_reservation(landing: LandingFolder) -> None:
    first = landing.choose_name("a.txt")
    landing.discard(first)
    assert landing.choose_name("a.txt") == "a.txt"


def test_part_and_ledger_are_hidden_files_in_the_folder(landing: LandingFolder, folder: Path) -> None:
    assert landing.part("a.txt") == folder / ".a.txt.deskhand-part"
    assert landing.ledger("a.txt") == folder / ".a.txt.deskhand-ledger"
    assert landing.part("a.txt") != landing.ledger("a.txt")


def test_choose_name_ends_for_a_long_name_that_exists(
    landing: LandingFolder, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    guard_numbered_name(monkeypatch)
    long_name = "a" * (MAX_NAME_BYTES - 4) + ".txt"
    folder.mkdir(parents=True)
    (folder / long_name).write_bytes(b"first")
    chosen = landing.choose_name(long_name)
    assert chosen != long_name and not (folder / chosen).exists()


@pytest.mark.parametrize("name", ["a" * 300 + ".txt", "b" * MAX_NAME_BYTES, "é" * 120 + ".pdf"])
def test_two_transfers_in_flight_with_a_long_name_get_different_names(
    landing: LandingFolder, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    guard_numbered_name(monkeypatch)
    first = landing.choose_name(name)
    second = landing.choose_name(name)
    assert first != second


# --- show, settle, withdraw -------------------------------------------------------------------


def test_naming_gives_the_verified_part_its_name_and_cleans_up(landing: LandingFolder, folder: Path) -> None:
    saved_as = landing.choose_name("report.pdf")
    landing.part(saved_as).write_bytes(b"verified bytes")
    landing.ledger(saved_as).write_text("{}")
    final = named(landing, saved_as)
    assert final == folder / "report.pdf"
    assert final.read_bytes() == b"verified bytes"
    assert final.stat().st_nlink == 1  # the part's link is gone, not merely another name for it
    assert not landing.part(saved_as).exists()
    assert not landing.ledger(saved_as).exists()
    assert files_under(folder) == {"report.pdf"}


def test_a_shown_file_keeps_its_part_and_ledger_until_settled(landing: LandingFolder, folder: Path) -> None:
    """Shown before the transfer is reported: a report that fails must leave something to resume from."""
    saved_as = landing.choose_name("report.pdf")
    landing.part(saved_as).write_bytes(b"verified bytes")
    landing.ledger(saved_as).write_text("{}")
    shown = landing.show(saved_as)
    assert shown.read_bytes() == b"verified bytes"
    assert files_under(folder) == {"report.pdf", ".report.pdf.deskhand-part", ".report.pdf.deskhand-ledger"}
    landing.settle(saved_as)
    assert files_under(folder) == {"report.pdf"}


def test_a_withdrawn_name_leaves_the_part_to_resume_from(landing: LandingFolder, folder: Path) -> None:
    saved_as = landing.choose_name("report.pdf")
    landing.part(saved_as).write_bytes(b"verified bytes")
    landing.ledger(saved_as).write_text("{}")
    landing.withdraw(landing.show(saved_as))
    assert files_under(folder) == {".report.pdf.deskhand-part", ".report.pdf.deskhand-ledger"}
    assert landing.part(saved_as).read_bytes() == b"verified bytes"
    assert landing.choose_name("report.pdf") == "report (2).pdf"  # still reserved for the resumed transfer
    assert named(landing, saved_as) == folder / "report.pdf"


def test_naming_works_without_a_ledger(landing: LandingFolder, folder: Path) -> None:
    saved_as = landing.choose_name("a.bin")
    landing.part(saved_as).write_bytes(b"x")
    assert named(landing, saved_as).read_bytes() == b"x"
    assert files_under(folder) == {"a.bin"}


def test_naming_releases_the_reservation(landing: LandingFolder, folder: Path) -> None:
    final = land(landing, "a.txt", b"1")
    final.unlink()
    assert landing.choose_name("a.txt") == "a.txt"


def test_naming_never_overwrites_a_file_that_appeared_meanwhile(landing: LandingFolder, folder: Path) -> None:
    saved_as = landing.choose_name("report.pdf")
    landing.part(saved_as).write_bytes(b"received")
    (folder / "report.pdf").write_bytes(b"the user's own file")  # created while the transfer ran
    final = named(landing, saved_as)
    assert final == folder / "report (2).pdf"
    assert final.read_bytes() == b"received"
    assert (folder / "report.pdf").read_bytes() == b"the user's own file"
    assert files_under(folder) == {"report.pdf", "report (2).pdf"}


def test_naming_skips_every_name_that_appeared_meanwhile(landing: LandingFolder, folder: Path) -> None:
    saved_as = landing.choose_name("report.pdf")
    landing.part(saved_as).write_bytes(b"received")
    for name in ("report.pdf", "report (2).pdf", "report (3).pdf"):
        (folder / name).write_bytes(name.encode())
    final = named(landing, saved_as)
    assert final.name == "report (4).pdf"
    for name in ("report.pdf", "report (2).pdf", "report (3).pdf"):
        assert (folder / name).read_bytes() == name.encode()


def test_naming_never_overwrites_a_dangling_symlink(landing: LandingFolder, folder: Path, tmp_path: Path) -> None:
    saved_as = landing.choose_name("a.txt")
    landing.part(saved_as).write_bytes(b"received")
    target = tmp_path / "outside.txt"
    (folder / "a.txt").symlink_to(target)  # points nowhere (yet)
    final = named(landing, saved_as)
    assert final == folder / "a (2).txt"
    assert (folder / "a.txt").is_symlink()
    assert not target.exists()


def test_two_transfers_of_the_same_name_both_land(landing: LandingFolder, folder: Path) -> None:
    first = landing.choose_name("photo.jpg")
    second = landing.choose_name("photo.jpg")
    landing.part(first).write_bytes(b"one")
    landing.part(second).write_bytes(b"two")
    assert named(landing, second).read_bytes() == b"two"
    assert named(landing, first).read_bytes() == b"one"
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == {"photo.jpg": b"one", "photo (2).jpg": b"two"}


def test_landing_the_same_name_repeatedly_keeps_every_copy(landing: LandingFolder, folder: Path) -> None:
    finals = [land(landing, "log.txt", f"copy {i}".encode()) for i in range(5)]
    assert [f.name for f in finals] == ["log.txt", "log (2).txt", "log (3).txt", "log (4).txt", "log (5).txt"]
    assert [f.read_bytes() for f in finals] == [f"copy {i}".encode() for i in range(5)]
    assert files_under(folder) == {f.name for f in finals}


def test_naming_without_a_part_raises_and_creates_nothing(landing: LandingFolder, folder: Path) -> None:
    saved_as = landing.choose_name("a.txt")
    with pytest.raises(FileNotFoundError):
        named(landing, saved_as)
    assert files_under(folder) == set()


def test_naming_ends_for_a_long_name_that_appeared_meanwhile(
    landing: LandingFolder, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    guard_numbered_name(monkeypatch)
    long_name = "a" * (MAX_NAME_BYTES - 4) + ".txt"
    saved_as = landing.choose_name(long_name)
    landing.part(saved_as).write_bytes(b"received")
    (folder / long_name).write_bytes(b"first")
    final = named(landing, saved_as)
    assert final.read_bytes() == b"received"
    assert (folder / long_name).read_bytes() == b"first"


# --- discard ----------------------------------------------------------------------------------


def test_discard_removes_part_and_ledger(landing: LandingFolder, folder: Path) -> None:
    saved_as = landing.choose_name("a.txt")
    landing.part(saved_as).write_bytes(b"half")
    landing.ledger(saved_as).write_text("{}")
    landing.discard(saved_as)
    assert files_under(folder) == set()


def test_discard_is_harmless_when_nothing_was_written(landing: LandingFolder, folder: Path) -> None:
    saved_as = landing.choose_name("a.txt")
    landing.discard(saved_as)
    landing.discard(saved_as)
    assert files_under(folder) == set()


def test_discard_leaves_other_files_alone(landing: LandingFolder, folder: Path) -> None:
    kept = land(landing, "a.txt", b"kept")
    other = landing.choose_name("a.txt")
    landing.part(other).write_bytes(b"half")
    landing.discard(other)
    assert kept.read_bytes() == b"kept"
    assert files_under(folder) == {"a.txt"}


# --- refusal ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["..", ".", "///", "   ", "a\x00b", "???"])
def test_refusal_names_an_unsafe_name(landing: LandingFolder, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    fake_free(monkeypatch, 10**12)
    reason = landing.refusal(name, 1)
    assert reason is not None and reason


def test_refusal_accepts_a_file_that_fits(landing: LandingFolder, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked = fake_free(monkeypatch, 10**12)
    assert landing.refusal("report.pdf", 10**6) is None
    assert landing.refusal("../odd/but/fixable.txt", 0) is None
    assert asked and all(p == folder for p in asked)  # the space asked about is the landing folder's


def test_refusal_over_the_size_limit(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_free(monkeypatch, 10**12)
    small = LandingFolder(folder, max_file_bytes=1000)
    assert small.refusal("a.bin", 1000) is None
    reason = small.refusal("a.bin", 1001)
    assert reason is not None and "over the limit" in reason


def test_the_default_limit_is_four_gibibytes(landing: LandingFolder, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_free(monkeypatch, 10**13)
    assert landing.refusal("a.bin", 4 * 1024**3) is None
    assert landing.refusal("a.bin", 4 * 1024**3 + 1) is not None


@pytest.mark.parametrize(
    ("size", "free", "refused"),
    [
        (1000, 1000 + SPACE_MARGIN_BYTES, False),  # exactly enough: the margin is left over
        (1000, 999 + SPACE_MARGIN_BYTES, True),  # one byte short of the margin
        (0, SPACE_MARGIN_BYTES - 1, True),  # even an empty file needs the margin free
        (10**9, 10**9, True),
        (1, 10**12, False),
    ],
)
def test_refusal_when_space_is_short(
    landing: LandingFolder, monkeypatch: pytest.MonkeyPatch, size: int, free: int, refused: bool
) -> None:
    fake_free(monkeypatch, free)
    reason = landing.refusal("a.bin", size)
    if refused:
        assert reason is not None and "free" in reason
    else:
        assert reason is None


def test_an_unsafe_name_is_refused_before_anything_else(landing: LandingFolder, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_free(monkeypatch, 0)
    reason = landing.refusal("..", 10**15)
    assert reason is not None and "usable" in reason


# --- nothing outside the folder ---------------------------------------------------------------


ESCAPES = [
    "../escape.txt", "../../escape.txt", "/tmp/absolute.txt", "..\\..\\escape.txt", "sub/dir/nested.txt",
    "C:\\escape.txt", "~/home.txt", "..", ".deskhand-part", "a/../../b.txt",
]


@pytest.mark.parametrize("finish", [True, False])
def test_nothing_is_ever_written_outside_the_folder(
    tmp_path: Path, folder: Path, landing: LandingFolder, monkeypatch: pytest.MonkeyPatch, finish: bool
) -> None:
    fake_free(monkeypatch, 10**12)
    before = files_under(tmp_path)
    for name in ESCAPES:
        if landing.refusal(name, 3) is not None:
            with pytest.raises(UnsafeName):
                landing.choose_name(name)
            continue
        saved_as = landing.choose_name(name)
        assert "/" not in saved_as and "\\" not in saved_as
        assert landing.part(saved_as).parent == folder
        assert landing.ledger(saved_as).parent == folder
        landing.part(saved_as).write_bytes(b"abc")
        landing.ledger(saved_as).write_text("{}")
        if finish:
            assert named(landing, saved_as).parent == folder
        else:
            landing.discard(saved_as)
    created = files_under(tmp_path) - before
    outside = {p for p in created if not (tmp_path / p).is_relative_to(folder)} - {"outer", str(Path("outer") / "landing")}
    assert outside == set()
    landed = {p.name for p in folder.iterdir()}
    if finish:
        assert landed == {
            "escape.txt", "escape (2).txt", "escape (3).txt", "escape (4).txt", "absolute.txt", "nested.txt",
            "home.txt", "deskhand-part", "b.txt",
        }
    else:
        assert landed == set()


def assert_inside(path: Path, folder: Path) -> None:
    """``path`` resolves to somewhere inside ``folder``."""
    assert path.resolve().is_relative_to(folder.resolve())


@pytest.mark.parametrize("name", [n for n in ESCAPES if n != ".."])
def test_every_path_the_landing_folder_hands_out_is_inside_it(landing: LandingFolder, folder: Path, name: str) -> None:
    saved_as = landing.choose_name(name)
    for path in (folder / saved_as, landing.part(saved_as), landing.ledger(saved_as)):
        assert_inside(path, folder)


def test_a_hidden_name_lands_visible(landing: LandingFolder, folder: Path) -> None:
    final = land(landing, ".profile", b"x")
    assert final == folder / "profile"
    assert files_under(folder) == {"profile"}
