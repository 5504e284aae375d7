"""What the Tk thread and the clipboard do without any display at all.

The same classes on a real X server are tested in ``tests/e2e/test_host_window.py``.
"""

from __future__ import annotations

import logging
import sys

import pytest

from host_client.clipboard import NoClipboard, check_clipboard_size
from host_client.tk_thread import TkThread, TkUnavailable
from protocol.channel import MAX_CLIPBOARD_CHARS


def test_no_display_is_explained_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(TkUnavailable, match=r"set DISPLAY.*--ui terminal"):
        TkThread.start(withdrawn=True)


def test_missing_tkinter_is_explained_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tkinter", None)  # makes `import tkinter` fail
    with pytest.raises(TkUnavailable, match=r"python3-tk.*--ui terminal"):
        TkThread.start(withdrawn=True)


def test_clipboard_size_limit_is_the_protocol_limit() -> None:
    check_clipboard_size("x" * MAX_CLIPBOARD_CHARS)
    with pytest.raises(ValueError, match=f"{MAX_CLIPBOARD_CHARS + 1} characters; at most {MAX_CLIPBOARD_CHARS}"):
        check_clipboard_size("x" * (MAX_CLIPBOARD_CHARS + 1))


async def test_no_clipboard_is_empty_and_says_once_that_it_drops_text(caplog: pytest.LogCaptureFixture) -> None:
    clipboard = NoClipboard("no display: started with --ui terminal")
    with caplog.at_level(logging.WARNING, logger="host_client.clipboard"):
        await clipboard.write("one")
        await clipboard.write("two")
    assert await clipboard.read() is None
    assert [r.getMessage() for r in caplog.records] == [
        "clipboard text from the technician is dropped: no display: started with --ui terminal"
    ]
    with pytest.raises(ValueError):
        await clipboard.write("x" * (MAX_CLIPBOARD_CHARS + 1))
