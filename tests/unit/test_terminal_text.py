"""Text from peers made printable (protocol.terminal_text), and the places that print it through it.

The pure functions first, then what uses them without a network: the log format
all programs share, and the end user's terminal UI.
"""

from __future__ import annotations

import io
import logging
import sys
import unicodedata

import pytest

from host_client.ui_terminal import TerminalUI
from protocol.cli import PrintableLogFormatter
from protocol.terminal_text import is_unsafe, multi_line, one_line
from tech_console.commands.output import say

EVERY_CHARACTER = "".join(map(chr, range(0x110000)))


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain text, 100 % ok", "plain text, 100 % ok"),
        ("\x1b[2J\x1b]0;pwned\x07", "\\x1b[2J\\x1b]0;pwned\\x07"),
        ("one\ntwo\r\nthree\rfour", "one\\ntwo\\r\\nthree\\rfour"),
        ("a\tb\x7fc\x00", "a\\tb\\x7fc\\x00"),
        ("C1: \x9b31m \x85 \x90", "C1: \\x9b31m \\x85 \\x90"),
        ("invoice\u202efdp.exe", "invoice\\u202efdp.exe"),
        ("\u2066isolate\u2069 \u200emark\u200f \u061c", "\\u2066isolate\\u2069 \\u200emark\\u200f \\u061c"),
        ("line\u2028para\u2029end", "line\\u2028para\\u2029end"),
        ("zero\u200bwidth\ufeff", "zero\\u200bwidth\\ufeff"),
        ("hidden\U000e0041\U000e0042", "hidden\\U000e0041\\U000e0042"),
        ("lone \ud800 surrogate", "lone \\ud800 surrogate"),
    ],
    ids=["plain", "esc-osc-bel", "line-breaks", "tab-del-nul", "c1", "rlo", "isolates-marks", "separators",
         "zero-width", "tags", "surrogate"],
)
def test_one_line_shows_each_control_as_a_visible_escape(raw: str, shown: str) -> None:
    assert one_line(raw) == shown


def test_letters_marks_and_joined_emoji_stay_as_they_are() -> None:
    text = "Zoë Ørsted, 山田 太郎, مرحبا, मेरा\u200dनाम, می\u200cخواهم 👩\u200d💻 ﬁ café\u0301 C:\\Users\\ann\\x1b"
    assert one_line(text) == text
    assert multi_line(text) == text


def test_no_character_survives_as_a_control_or_a_line_break() -> None:
    shown = one_line(EVERY_CHARACTER)
    assert len(shown.splitlines()) == 1
    assert not any(is_unsafe(ch) for ch in shown)
    shown.encode("utf-8")  # no lone surrogate left to break the output


def test_exactly_controls_format_separators_and_surrogates_are_escaped() -> None:
    escaped = {ch for ch in EVERY_CHARACTER if is_unsafe(ch)}
    categories = {unicodedata.category(ch) for ch in escaped}
    assert categories == {"Cc", "Cf", "Cs", "Zl", "Zp"}
    assert "\u200c" not in escaped and "\u200d" not in escaped
    assert {"\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"} <= escaped


def test_escaping_is_idempotent() -> None:
    once = one_line(EVERY_CHARACTER)
    assert one_line(once) == once
    assert multi_line(multi_line("a\x1b\nb")) == multi_line("a\x1b\nb")


def test_multi_line_keeps_line_breaks_and_tabs_only() -> None:
    assert multi_line("first\r\nsecond\n\tthird") == "first\nsecond\n\tthird"
    assert multi_line("over\rwrite \x1b[1A\u2028 \x85") == "over\\rwrite \\x1b[1A\\u2028 \\x85"
    assert multi_line("a\nb").splitlines() == ["a", "b"]


def test_a_log_record_is_one_line_and_a_traceback_keeps_its_lines() -> None:
    formatter = PrintableLogFormatter()
    record = logging.LogRecord("peer", logging.WARNING, __file__, 1, "chat from %s: %s", ("Ann", "hi\n2026 forged\x1b[2K"), None)
    line = formatter.format(record)
    assert "\n" not in line and "\x1b" not in line
    assert line.endswith("chat from Ann: hi\\n2026 forged\\x1b[2K")
    try:
        raise ValueError("bad name \x1b]0;title\x07")
    except ValueError:
        failed = logging.LogRecord("peer", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    text = formatter.format(failed)
    assert "Traceback (most recent call last):" in text.splitlines()[1]
    assert "\x1b" not in text and "\x07" not in text and "bad name \\x1b]0;title\\x07" in text


async def test_the_end_users_terminal_shows_the_technicians_text_on_its_own_line() -> None:
    out = io.StringIO()
    ui = TerminalUI(io.StringIO(), out)
    ui.session_started("Tom\x1b[31m Tech", "s", 1)
    ui.chat_received("fine\n[deskhand] Tom Tech may now: control mouse and keyboard\x1b[2K")
    ui.transfer_finished("t", "evil\nname\u202e.txt", False, True, "/tmp/evil")
    lines = out.getvalue().splitlines()
    assert lines[1:] == [
        "Tom\\x1b[31m Tech: fine\\n[deskhand] Tom Tech may now: control mouse and keyboard\\x1b[2K",
        "[deskhand] received evil\\nname\\u202e.txt: /tmp/evil",
    ]


def test_the_console_prints_each_of_its_lines_as_one_printable_line(capsys: pytest.CaptureFixture[str]) -> None:
    say(["Ticket 7: Printer\x1b[8m hidden", "  requester: Ann\n  assigned:  nobody"])
    say("one line\r\nonly", sys.stderr)
    printed = capsys.readouterr()
    assert printed.out.splitlines() == ["Ticket 7: Printer\\x1b[8m hidden", "  requester: Ann\\n  assigned:  nobody"]
    assert printed.err == "one line\\r\\nonly\n"
