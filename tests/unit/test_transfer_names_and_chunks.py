"""protocol.transfers: file-name safety, numbered names, chunk arithmetic, versions and states."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from protocol.transfers import (
    CHUNK_SIZE,
    MAX_NAME_BYTES,
    Direction,
    TransferDecision,
    TransferOut,
    TransferState,
    UnsafeName,
    chunk_count,
    chunk_span,
    numbered_name,
    safe_file_name,
    transfer_version,
)


def utf8_len(text: str) -> int:
    """Length of ``text`` in UTF-8 bytes (the unit of :data:`MAX_NAME_BYTES`)."""
    return len(text.encode("utf-8"))


def assert_looks_safe(name: str) -> None:
    """The invariants every result of :func:`safe_file_name` must hold."""
    assert name
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert not name.startswith((".", " "))
    assert not name.endswith((".", " "))
    assert utf8_len(name) <= MAX_NAME_BYTES
    assert not set('<>:"|?*') & set(name)
    assert all(unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in name)
    assert unicodedata.normalize("NFC", name) == name


# --- safe_file_name: path components ---------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("a/b/c.txt", "c.txt"),
        ("a\\b\\c.txt", "c.txt"),
        ("mixed/sep\\name.txt", "name.txt"),
        ("mixed\\sep/name.txt", "name.txt"),
        ("../../x", "x"),
        ("..\\..\\x", "x"),
        ("../../../etc/passwd", "passwd"),
        ("/etc/passwd", "passwd"),
        ("/abs", "abs"),
        ("C:\\Windows\\System32\\cmd.exe", "cmd.exe"),
        ("\\\\server\\share\\file.doc", "file.doc"),
        ("C:evil.txt", "C_evil.txt"),
        ("./x", "x"),
        ("dir/.hidden", "hidden"),
    ],
)
def test_only_the_last_path_component_is_kept(raw: str, expected: str) -> None:
    assert safe_file_name(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["", ".", "..", "...", "   ", " . . ", "///", "/", "\\", "\\\\", "a/", "a\\", "x/..", "x/.", "../", "???", "<>|"],
)
def test_names_with_nothing_usable_are_refused(raw: str) -> None:
    with pytest.raises(UnsafeName):
        safe_file_name(raw)


def test_unsafe_name_is_a_value_error_with_a_message() -> None:
    with pytest.raises(ValueError, match="no usable file name"):
        safe_file_name("..")


@pytest.mark.parametrize("raw", ["a\x00b", "\x00", "ok.txt\x00.exe", "dir\x00/file", "dir/\x00file"])
def test_nul_is_refused_wherever_it_is(raw: str) -> None:
    with pytest.raises(UnsafeName, match="NUL"):
        safe_file_name(raw)


# --- safe_file_name: characters --------------------------------------------------------------


@pytest.mark.parametrize(
    "ch",
    [
        "\x01", "\t", "\n", "\r", "\x1b", "\x1f", "\x7f",  # C0 controls and DEL
        "\x85", "\x9b",  # C1 controls
        "\u200b", "\u200e", "\u202e", "\u2066", "\ufeff", "\u00ad",  # format characters (Cf)
        "\ue000", "\U000f0000",  # private use (Co)
        "\uffff", "\U0010ffff",  # noncharacters (Cn)
        "\ud800",  # a lone surrogate (Cs)
    ],
)
def test_control_format_and_unassigned_characters_become_underscores(ch: str) -> None:
    assert safe_file_name(f"a{ch}b.txt") == "a_b.txt"


@pytest.mark.parametrize("ch", list('<>:"|?*'))
def test_windows_forbidden_characters_become_underscores(ch: str) -> None:
    assert safe_file_name(f"a{ch}b{ch}c.txt") == "a_b_c.txt"


def test_right_to_left_override_cannot_disguise_an_extension() -> None:
    # "photo\u202egpj.exe" displays as "photoexe.jpg" in many UIs.
    assert safe_file_name("photo\u202egpj.exe") == "photo_gpj.exe"


def test_ordinary_unicode_and_inner_spaces_are_kept() -> None:
    assert safe_file_name("Réunion d'équipe – 2024 年.txt") == "Réunion d'équipe – 2024 年.txt"
    assert safe_file_name("a  b.txt") == "a  b.txt"
    assert safe_file_name("emoji 😀.png") == "emoji 😀.png"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (".bashrc", "bashrc"),
        (".hidden.txt", "hidden.txt"),
        ("...x", "x"),
        ("  x", "x"),
        (". . x", "x"),
        ("x.", "x"),
        ("x...", "x"),
        ("x ", "x"),
        ("x. . ", "x"),
        ("...x...", "x"),
        ("  report.pdf  ", "report.pdf"),
        ("a.b.c", "a.b.c"),
    ],
)
def test_leading_dots_and_spaces_and_trailing_dots_and_spaces_go(raw: str, expected: str) -> None:
    assert safe_file_name(raw) == expected


def test_dots_and_spaces_around_a_forbidden_character_are_still_stripped() -> None:
    # Replacing characters happens before stripping, so "_" produced inside stays.
    assert safe_file_name(". ?x? .") == "_x_"


# --- safe_file_name: Windows device names ----------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "con", "prn", "aux", "nul", "com1", "com9", "lpt1", "lpt9",
        "CON", "Prn", "aUx", "NUL", "COM1", "Lpt9",
        "con.txt", "NUL.tar.gz", "aux.c", "Com1.log", "lpt9.", "com¹", "LPT³.txt",
    ],
)
def test_windows_device_names_get_an_underscore_prefix(raw: str) -> None:
    expected = "_" + raw.rstrip(".")
    assert safe_file_name(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("dir/aux.txt", "_aux.txt"),
        ("C:\\x\\COM3.dat", "_COM3.dat"),
        (".con", "_con"),
        ("  prn  ", "_prn"),
    ],
)
def test_device_names_are_detected_after_cleaning(raw: str, expected: str) -> None:
    assert safe_file_name(raw) == expected


@pytest.mark.parametrize(
    "raw", ["console", "com10", "lpt10", "com", "lpt", "connect.txt", "xcon", "con_", "nulls.txt", "auxiliary.c", "icon.png"]
)
def test_names_that_merely_resemble_device_names_are_left_alone(raw: str) -> None:
    assert safe_file_name(raw) == raw


# --- safe_file_name: length and normalisation ------------------------------------------------


@pytest.mark.parametrize("length", [MAX_NAME_BYTES - 1, MAX_NAME_BYTES])
def test_names_up_to_the_limit_are_kept_whole(length: int) -> None:
    name = "a" * (length - 4) + ".txt"
    assert safe_file_name(name) == name


def test_a_long_name_without_extension_is_cut_to_the_limit() -> None:
    assert safe_file_name("a" * 300) == "a" * MAX_NAME_BYTES
    assert safe_file_name("a" * (MAX_NAME_BYTES + 1)) == "a" * MAX_NAME_BYTES


@pytest.mark.parametrize("ext", ["pdf", "txt", "x", "tar", "a" * 16, "ünïcødé"])
def test_a_long_name_keeps_a_short_extension(ext: str) -> None:
    result = safe_file_name("b" * 300 + "." + ext)
    assert result.endswith("." + ext)
    assert utf8_len(result) == MAX_NAME_BYTES
    assert result == "b" * (MAX_NAME_BYTES - utf8_len(ext) - 1) + "." + ext


def test_an_extension_over_sixteen_bytes_is_not_kept() -> None:
    result = safe_file_name("b" * 300 + "." + "x" * 17)
    assert result == "b" * MAX_NAME_BYTES


@pytest.mark.parametrize(("ch", "width"), [("é", 2), ("€", 3), ("😀", 4), ("中", 3)])
@pytest.mark.parametrize("ext", ["", ".txt"])
def test_shortening_never_splits_a_multibyte_character(ch: str, width: int, ext: str) -> None:
    assert utf8_len(ch) == width
    result = safe_file_name(ch * 150 + ext)
    assert result.endswith(ext)
    stem = result[: len(result) - len(ext)] if ext else result
    assert set(stem) == {ch}  # only whole characters, no replacement characters
    budget = MAX_NAME_BYTES - utf8_len(ext)
    assert len(stem) == budget // width  # as many whole characters as fit
    assert utf8_len(result) <= MAX_NAME_BYTES


def test_a_cut_that_ends_in_dots_or_spaces_is_tidied() -> None:
    # The cut falls right after the space; a name ending in a space is not allowed.
    name = "a" * 195 + " " + "b" * 10 + ".txt"
    assert safe_file_name(name) == "a" * 195 + ".txt"
    name = "a" * 194 + " ." + "b" * 10 + ".txt"
    assert safe_file_name(name) == "a" * 194 + ".txt"
    # An extension too long to keep: the whole name is cut, right after a dot.
    assert safe_file_name("a" * 199 + "." + "b" * 20) == "a" * 199
    assert safe_file_name("a" * 198 + " ." + "b" * 20) == "a" * 198


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("e\u0301.txt", "\u00e9.txt"),  # e + combining acute -> é
        ("A\u030a", "\u00c5"),  # A + ring -> Å
        ("\u212b", "\u00c5"),  # ANGSTROM SIGN -> Å (canonical equivalent)
        ("\u1100\u1161", "\uac00"),  # Hangul jamo -> syllable
    ],
)
def test_names_are_nfc_normalised(raw: str, expected: str) -> None:
    assert safe_file_name(raw) == expected


def test_normalisation_happens_before_the_length_is_measured() -> None:
    decomposed = "e\u0301" * 100  # 300 bytes decomposed, 200 bytes composed
    assert utf8_len(decomposed) == 300
    assert safe_file_name(decomposed) == "\u00e9" * 100


def test_compatibility_characters_are_not_folded() -> None:
    # NFC, not NFKC: a fullwidth solidus is not a path separator and stays as it is.
    assert safe_file_name("a\uff0fb") == "a\uff0fb"


HOSTILE = [
    "../../x", "/etc/passwd", "C:\\Windows\\win.ini", "con.txt", "a\x01b", "photo\u202egpj.exe",
    "é" * 150 + ".txt", "😀" * 80, "b" * 300 + "." + "x" * 17, " . leading", "trailing . ", "e\u0301" * 150,
    'what?<>:"|*.txt', "a" * 195 + " " + "b" * 10 + ".txt", "LPT1", "..\\..\\aux",
]


@pytest.mark.parametrize("raw", HOSTILE)
def test_results_hold_every_invariant_and_are_stable(raw: str) -> None:
    once = safe_file_name(raw)
    assert_looks_safe(once)
    assert safe_file_name(once) == once


# --- numbered_name ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "n", "expected"),
    [
        ("report.pdf", 2, "report (2).pdf"),
        ("report.pdf", 3, "report (3).pdf"),
        ("report", 2, "report (2)"),
        ("archive.tar.gz", 2, "archive.tar (2).gz"),
        ("a b.c", 10, "a b (10).c"),
        ("_con.txt", 2, "_con (2).txt"),
    ],
)
def test_numbered_names(name: str, n: int, expected: str) -> None:
    assert numbered_name(name, n) == expected


def test_numbered_names_are_distinct_and_differ_from_the_original() -> None:
    names = {numbered_name("report.pdf", n) for n in range(2, 50)}
    assert len(names) == 48
    assert "report.pdf" not in names


@pytest.mark.parametrize("name", ["a" * 300 + ".txt", "é" * 150 + ".txt", "b" * 250])
def test_numbered_names_of_long_names_stay_within_the_limit(name: str) -> None:
    safe = safe_file_name(name)
    for n in (2, 10, 999):
        numbered = numbered_name(safe, n)
        assert utf8_len(numbered) <= MAX_NAME_BYTES
        assert numbered.endswith(".txt") == safe.endswith(".txt")


@pytest.mark.parametrize("name", ["a" * 196 + ".txt", "a" * 300 + ".txt", "é" * 98 + ".txt", "b" * 200, "c" * 193 + ".txt"])
def test_numbered_names_of_long_names_are_distinct(name: str) -> None:
    safe = safe_file_name(name)
    numbered = [numbered_name(safe, n) for n in range(2, 30)]
    assert len({safe, *numbered}) == 29, numbered[:3]


# --- the name a receiver reports (TransferDecision.saved_as) -----------------------------------


@pytest.mark.parametrize("name", ["report.pdf", "report (2).pdf", "_con.txt", "Zoë's notes.txt", "a" * 300 + ".txt"])
def test_a_receiver_may_report_any_name_the_landing_rules_make(name: str) -> None:
    for made in (safe_file_name(name), numbered_name(safe_file_name(name), 7)):
        assert TransferDecision(accept=True, saved_as=made).saved_as == made


@pytest.mark.parametrize(
    "name",
    ["notes\x1b[31m.txt", "notes.txt\n    user:tess: done", "invoice\u202efdp.exe", "a\x9bb.txt", "../notes.txt",
     "sub/notes.txt", ".hidden", "con.txt", "x" * 300, "", "\x00"],
)
def test_a_reported_name_the_landing_rules_would_change_is_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="saved_as"):
        TransferDecision(accept=True, saved_as=name)


def test_a_refusal_needs_no_name() -> None:
    assert TransferDecision(accept=False, reason="no space").saved_as is None


# --- chunk arithmetic ------------------------------------------------------------------------


def test_default_chunk_size_is_four_mebibytes() -> None:
    assert CHUNK_SIZE == 4 * 1024 * 1024


@pytest.mark.parametrize(
    ("size", "chunk_size", "count"),
    [
        (0, CHUNK_SIZE, 0),
        (1, CHUNK_SIZE, 1),
        (CHUNK_SIZE - 1, CHUNK_SIZE, 1),
        (CHUNK_SIZE, CHUNK_SIZE, 1),
        (CHUNK_SIZE + 1, CHUNK_SIZE, 2),
        (3 * CHUNK_SIZE, CHUNK_SIZE, 3),
        (2**50, CHUNK_SIZE, 2**50 // CHUNK_SIZE),
        (25, 10, 3),
        (30, 10, 3),
        (31, 10, 4),
        (5, 1, 5),
    ],
)
def test_chunk_count(size: int, chunk_size: int, count: int) -> None:
    assert chunk_count(size, chunk_size) == count


def test_chunk_count_defaults_to_chunk_size() -> None:
    assert chunk_count(CHUNK_SIZE * 2 + 1) == 3


@pytest.mark.parametrize(
    ("index", "size", "chunk_size", "span"),
    [
        (0, 25, 10, (0, 10)),
        (1, 25, 10, (10, 10)),
        (2, 25, 10, (20, 5)),  # the last chunk is shorter
        (2, 30, 10, (20, 10)),  # an exact multiple: the last chunk is full
        (0, 1, 10, (0, 1)),
        (1, CHUNK_SIZE + 7, CHUNK_SIZE, (CHUNK_SIZE, 7)),
    ],
)
def test_chunk_span(index: int, size: int, chunk_size: int, span: tuple[int, int]) -> None:
    assert chunk_span(index, size, chunk_size) == span


@pytest.mark.parametrize(
    ("index", "size", "chunk_size"),
    [(0, 0, 10), (-1, 25, 10), (3, 25, 10), (3, 30, 10), (100, 25, 10), (1, CHUNK_SIZE, CHUNK_SIZE), (-1, 0, 10)],
)
def test_chunk_span_outside_the_file_raises(index: int, size: int, chunk_size: int) -> None:
    with pytest.raises(ValueError, match="outside"):
        chunk_span(index, size, chunk_size)


@pytest.mark.parametrize(("size", "chunk_size"), [(0, 7), (1, 7), (6, 7), (7, 7), (8, 7), (49, 7), (50, 7), (1000, 64)])
def test_spans_tile_the_file_exactly(size: int, chunk_size: int) -> None:
    position = 0
    for index in range(chunk_count(size, chunk_size)):
        offset, length = chunk_span(index, size, chunk_size)
        assert offset == position
        assert 0 < length <= chunk_size
        position += length
    assert position == size


# --- transfer_version and TransferState ------------------------------------------------------


def make_transfer(**changes: Any) -> TransferOut:
    """A plausible transfer, with ``changes`` applied."""
    fields: dict[str, Any] = {
        "id": "t1", "session_id": "s1", "direction": Direction.to_host, "name": "a.bin", "size": 25,
        "chunk_size": 10, "chunk_count": 3, "state": TransferState.accepted, "created_by": "user:1",
        "created_at": datetime(2024, 1, 1, tzinfo=UTC),
    }
    fields.update(changes)
    return TransferOut(**fields)


def test_transfer_version_is_the_same_for_the_same_transfer() -> None:
    assert transfer_version(make_transfer()) == transfer_version(make_transfer())
    assert transfer_version(make_transfer(chunks_at_broker=[0, 2])) == transfer_version(make_transfer(chunks_at_broker=[0, 2]))


@pytest.mark.parametrize(
    "changes",
    [
        {"state": TransferState.completed},
        {"state": TransferState.offered},
        {"state": TransferState.cancelled},
        {"chunks_at_broker": [0]},
        {"chunks_at_broker": [0, 1, 2]},
        {"sha256": "a" * 64},
    ],
)
def test_transfer_version_changes_with_what_a_waiting_peer_cares_about(changes: dict[str, Any]) -> None:
    assert transfer_version(make_transfer(**changes)) != transfer_version(make_transfer())


def test_transfer_version_tells_chunk_counts_and_hashes_apart() -> None:
    versions = {transfer_version(make_transfer(chunks_at_broker=list(range(n)))) for n in range(4)}
    assert len(versions) == 4
    assert transfer_version(make_transfer(sha256="a" * 64)) != transfer_version(make_transfer(sha256="b" * 64))
    assert len({transfer_version(make_transfer(state=s)) for s in TransferState}) == len(TransferState)


OVER = {
    TransferState.offered: False,
    TransferState.accepted: False,
    TransferState.completed: True,
    TransferState.refused: True,
    TransferState.cancelled: True,
    TransferState.failed: True,
}


def test_every_state_is_classified() -> None:
    assert set(OVER) == set(TransferState)


@pytest.mark.parametrize(("state", "over"), list(OVER.items()))
def test_transfer_state_over(state: TransferState, over: bool) -> None:
    assert state.over is over
