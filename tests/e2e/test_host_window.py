"""The host's Tk window and clipboard on a real X server, driven like a user would.

Nothing of Tk is mocked: each test starts a :class:`TkThread` on the private Xvfb
and a :class:`WindowUI` on it, then types and clicks with ``xdotool`` (XTEST
events, as from a real keyboard and mouse). What the window shows is read back
from its widgets in the Tk thread. There is no window manager on Xvfb, so
nothing gives a window the keyboard by itself: before typing, a test sets the X
input focus with ``xdotool windowfocus --sync``, and it clicks into an entry to
choose which widget inside the window gets the keys. The window close button is
pressed the way a window manager does it: a ``WM_DELETE_WINDOW`` client message.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
import tkinter
from collections.abc import Iterator
from pathlib import Path
from tkinter import filedialog
from typing import Any

import pytest

from host_client.clipboard import TkClipboard
from host_client.tk_thread import TkStopped, TkThread
from host_client.tk_variables import BooleanVar, IntVar, StringVar
from host_client.ui_window import TECHNICIAN_GONE, TITLE, WindowUI
from protocol.channel import MAX_CLIPBOARD_CHARS
from protocol.codes import JoinTarget
from protocol.permissions import ALL_PERMISSIONS, Permission
from protocol.requests import HelpRequestCreate

pytestmark = pytest.mark.slow

TIMEOUT = 10.0
VIEW, CONTROL, CLIPBOARD, CHAT = Permission.view, Permission.control, Permission.clipboard, Permission.chat


# --- fixtures -------------------------------------------------------------------------


@pytest.fixture
def tk_thread(xvfb: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[TkThread]:
    """A TkThread on the private Xvfb; ``DISPLAY`` also reaches xdotool through the environment."""
    monkeypatch.setenv("DISPLAY", xvfb.display)
    tk = TkThread.start(withdrawn=True)
    yield tk
    tk.stop()


@pytest.fixture
def ui(tk_thread: TkThread) -> WindowUI:
    """A window UI with a short goodbye, so that close() tests stay quick."""
    return WindowUI(tk_thread, close_delay=0.3)


class RecordedActions:
    """A :class:`~host_client.ui.UserActions` that records calls and the thread they came in."""

    def __init__(self) -> None:
        self.calls: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.threads: set[int] = set()

    def _record(self, name: str, value: Any) -> None:
        self.threads.add(threading.get_ident())
        self.calls.put_nowait((name, value))

    def change_consent(self, permissions: frozenset[Permission]) -> None:
        self._record("change_consent", permissions)

    def end_session(self) -> None:
        self._record("end_session", None)

    def send_chat(self, text: str) -> None:
        self._record("send_chat", text)

    def cancel_transfer(self, transfer_id: str) -> None:
        self._record("cancel_transfer", transfer_id)

    async def next(self) -> tuple[str, Any]:
        return await asyncio.wait_for(self.calls.get(), TIMEOUT)


# --- driving X and reading Tk ---------------------------------------------------------


async def xdo(*args: str, check: bool = True) -> str:
    """Run ``xdotool`` on the test display; its standard output."""
    process = await asyncio.create_subprocess_exec(
        "xdotool", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), TIMEOUT)
    if check:
        assert process.returncode == 0, f"xdotool {' '.join(args)}: {err.decode()}"
    return out.decode()


async def window_id() -> str:
    """The X window of the Deskhand window, once it is mapped."""
    ids = (await xdo("search", "--sync", "--onlyvisible", "--name", TITLE)).split()
    assert len(ids) == 1, f"expected one window titled {TITLE!r}, found {ids}"
    return ids[0]


async def type_into_window(text: str = "", *keys: str) -> None:
    """Give the window the X focus, then type ``text`` and press ``keys``."""
    await xdo("windowfocus", "--sync", await window_id())
    if text:
        await xdo("type", "--delay", "15", text)
    if keys:
        await xdo("key", "--delay", "30", *keys)


async def click(tk: TkThread, text: str) -> None:
    """Click the middle of the widget showing ``text``."""
    await click_at(*await tk.acall(_centre_of, text))


async def click_when_shown(tk: TkThread, text: str) -> None:
    """Wait until a widget shows ``text`` (and is laid out), then click it."""
    await wait_until_shown(tk, text)
    await wait_until(tk, lambda root, t: _find(root, t).winfo_width() > 1, text)
    await click(tk, text)


async def click_at(x: int, y: int) -> None:
    """Move the pointer to ``x, y`` and click there.

    Not ``mousemove --sync``: it waits for the pointer to move, forever when it
    is already there (an earlier test may have clicked the same spot).
    """
    await xdo("mousemove", str(x), str(y), "click", "1")


def _descendants(widget: Any) -> Iterator[Any]:
    for child in widget.winfo_children():
        yield child
        yield from _descendants(child)


def _text_of(widget: Any) -> str:
    """What a widget shows: its text, its text variable's value, or a Text's contents."""
    if widget.winfo_class() == "Text":
        return widget.get("1.0", "end-1c")
    try:
        variable = str(widget.cget("textvariable"))
        return str(widget.getvar(variable)) if variable else str(widget.cget("text"))
    except Exception:  # noqa: BLE001 - a frame, an entry: no text of their own
        return ""


def _shown(root: Any) -> list[str]:
    return [_text_of(w) for w in _descendants(root) if w.winfo_ismapped()]


def _find(root: Any, text: str) -> Any:
    matches = [w for w in _descendants(root) if w.winfo_ismapped() and _text_of(w) == text]
    assert len(matches) == 1, f"expected one widget showing {text!r}, found {len(matches)}: {_shown(root)}"
    return matches[0]


def _centre_of(root: Any, text: str) -> tuple[int, int]:
    widget = _find(root, text)
    return widget.winfo_rootx() + widget.winfo_width() // 2, widget.winfo_rooty() + widget.winfo_height() // 2


def _is_ticked(root: Any, text: str) -> bool:
    widget = _find(root, text)
    # getvar may answer a Tcl object, which is always true in Python: ask Tcl.
    return bool(widget.tk.getboolean(widget.getvar(str(widget.cget("variable")))))


def _is_enabled(root: Any, text: str) -> bool:
    return not _find(root, text).instate(["disabled"])


def _chat_entry_centre(root: Any) -> tuple[int, int]:
    send = _find(root, "Send")
    (entry,) = [w for w in send.master.winfo_children() if w.winfo_class() == "TEntry"]
    return entry.winfo_rootx() + entry.winfo_width() // 2, entry.winfo_rooty() + entry.winfo_height() // 2


def _window_placement(root: Any) -> tuple[int, int, int, int, int]:
    (top,) = [w for w in root.winfo_children() if w.winfo_class() == "Toplevel"]
    return top.winfo_rootx(), top.winfo_rooty(), top.winfo_width(), top.winfo_height(), top.winfo_screenwidth()


async def wait_until_shown(tk: TkThread, fragment: str) -> None:
    """Wait until some widget's text contains ``fragment``."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while True:
        shown = await tk.acall(_shown)
        if any(fragment in text for text in shown):
            return
        assert asyncio.get_running_loop().time() < deadline, f"{fragment!r} never shown; shown: {shown}"
        await asyncio.sleep(0.03)


async def wait_until(tk: TkThread, predicate: Any, *args: Any) -> None:
    """Wait until ``predicate(root, *args)`` is true in the Tk thread."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while not await tk.acall(predicate, *args):
        assert asyncio.get_running_loop().time() < deadline, f"{predicate.__name__}{args} stayed false"
        await asyncio.sleep(0.03)


def press_close_button(window: str) -> None:
    """Do what a window manager does when the user clicks the close button."""
    from Xlib import X, display
    from Xlib.protocol import event

    screen = display.Display()
    try:
        target = screen.create_resource_object("window", int(window))
        message = event.ClientMessage(
            window=target, client_type=screen.intern_atom("WM_PROTOCOLS"),
            data=(32, [screen.intern_atom("WM_DELETE_WINDOW"), X.CurrentTime, 0, 0, 0]),
        )
        target.send_event(message, event_mask=X.NoEventMask)
        screen.sync()  # a round trip: the server has sent the message before we hang up
    finally:
        screen.close()


async def in_session(ui: WindowUI, tk: TkThread, consented: frozenset[Permission]) -> RecordedActions:
    """Attach recorded actions and show the session view with everything granted."""
    actions = RecordedActions()
    ui.attach(actions)
    ui.session_started("Alice Tech", "s-7", 42)
    ui.permissions_changed(ALL_PERMISSIONS, consented)
    await wait_until_shown(tk, "Session s-7 · ticket #42")
    return actions


# --- the code prompt ------------------------------------------------------------------


async def test_code_prompt_explains_a_bad_code_inline_then_returns_the_digits(ui: WindowUI, tk_thread: TkThread) -> None:
    asked = asyncio.create_task(ui.ask_code())
    await wait_until_shown(tk_thread, "Support code")
    left, top, width, height, screen_width = await tk_thread.acall(_window_placement)
    assert (width, height) == (360, 460) and top < 50 and screen_width - (left + width) < 50, "not at the top-right"

    await type_into_window("12a", "Return")
    await wait_until_shown(tk_thread, "A support code has only digits")
    assert not asked.done(), "a bad code must not end the prompt"

    # The bad code is selected after the message, so typing replaces it.
    await type_into_window("123 456 789", "Return")
    assert await asyncio.wait_for(asked, TIMEOUT) == JoinTarget("123456789")  # normalize_code's digits


async def test_a_host_that_knows_no_broker_takes_the_join_link_and_not_a_code_alone(ui: WindowUI, tk_thread: TkThread) -> None:
    # A downloaded host opened with nothing on its command line and no DESKHAND_BROKER.
    asked = asyncio.create_task(ui.ask_code(link_needed=True))
    await wait_until_shown(tk_thread, "Paste the link your technician sent you")
    assert "No code? Ask for help" not in await tk_thread.acall(_shown), "a help desk without an address cannot be asked"
    await type_into_window("123 456 789", "Return")
    await wait_until_shown(tk_thread, "This app does not know your help desk's address yet")
    assert not asked.done()
    await type_into_window("https://desk.example.com/join/#123456789", "Return")
    assert await asyncio.wait_for(asked, TIMEOUT) == JoinTarget("123456789", "https://desk.example.com")


async def test_without_a_code_the_user_asks_for_help_and_a_refused_field_is_named(
    ui: WindowUI, tk_thread: TkThread
) -> None:
    asked = asyncio.create_task(ui.ask_code())
    await click_when_shown(tk_thread, "No code? Ask for help")
    await wait_until_shown(tk_thread, "Ask the help desk")
    await click(tk_thread, "Ask for help")
    await wait_until_shown(tk_thread, "Your name: String should have at least 1 character")
    assert not asked.done()
    # The refused name field has the focus now; Tab goes to the next one.
    await type_into_window("Ann Smith", "Tab")
    await type_into_window("Printer is offline", "Tab")
    await type_into_window("ann-at-example", "Return")
    await wait_until_shown(tk_thread, "Your email: value is not a valid email address")
    # The email field has the keys: empty it (it is optional), and Return asks.
    await type_into_window("", "ctrl+a", "BackSpace", "End", "shift+Home", "BackSpace", "Return")
    request = await asyncio.wait_for(asked, TIMEOUT)
    assert isinstance(request, HelpRequestCreate)
    assert (request.name, request.summary, request.email, request.priority.value) == (
        "Ann Smith", "Printer is offline", None, "normal")
    assert request.machine_name and request.user_name


async def test_back_returns_from_the_help_form_to_the_code_prompt(ui: WindowUI, tk_thread: TkThread) -> None:
    asked = asyncio.create_task(ui.ask_code())
    await click_when_shown(tk_thread, "No code? Ask for help")
    await click_when_shown(tk_thread, "Back")
    await wait_until_shown(tk_thread, "Support code")
    await type_into_window("123456789", "Return")
    assert await asyncio.wait_for(asked, TIMEOUT) == JoinTarget("123456789")


async def test_a_waiting_request_is_withdrawn_from_the_window(ui: WindowUI, tk_thread: TkThread) -> None:
    withdrawn = asyncio.create_task(ui.withdrawn())
    ui.waiting_in_queue(2)
    await wait_until_shown(tk_thread, "You are number 2 in the queue.")
    assert not withdrawn.done()
    await click(tk_thread, "Withdraw request")
    await asyncio.wait_for(withdrawn, TIMEOUT)


async def test_escape_at_the_code_prompt_gives_up(ui: WindowUI, tk_thread: TkThread) -> None:
    asked = asyncio.create_task(ui.ask_code())
    await wait_until_shown(tk_thread, "Support code")
    await type_into_window("", "Escape")
    assert await asyncio.wait_for(asked, TIMEOUT) is None


# --- the satisfaction survey ----------------------------------------------------------


async def test_the_survey_needs_a_rating_then_sends_it(ui: WindowUI, tk_thread: TkThread) -> None:
    asked = asyncio.create_task(ui.ask_survey())
    await wait_until_shown(tk_thread, "How satisfied are you with this help?")
    await type_into_window("", "Return")
    await wait_until_shown(tk_thread, "Choose 1 to 5, or Skip.")
    assert not asked.done(), "no rating chosen: the survey stays"
    await click(tk_thread, "4")
    await click(tk_thread, "Send")
    answer = await asyncio.wait_for(asked, TIMEOUT)
    assert answer is not None and (answer.rating, answer.comment) == (4, "")


async def test_a_waiting_help_request_shows_its_place(ui: WindowUI, tk_thread: TkThread) -> None:
    ui.waiting_in_queue(3)
    await wait_until_shown(tk_thread, "You are number 3 in the queue.")
    ui.waiting_in_queue(1)
    await wait_until_shown(tk_thread, "You are next.")
    assert not any("number 3" in t for t in await tk_thread.acall(_shown))


async def test_escape_skips_the_survey(ui: WindowUI, tk_thread: TkThread) -> None:
    asked = asyncio.create_task(ui.ask_survey())
    await wait_until_shown(tk_thread, "5 (very happy)")
    await type_into_window("", "Escape")
    assert await asyncio.wait_for(asked, TIMEOUT) is None


# --- the consent prompt ---------------------------------------------------------------


def ask_consent(ui: WindowUI) -> asyncio.Task[frozenset[Permission] | None]:
    return asyncio.create_task(ui.ask_consent("Alice Tech", [VIEW, CONTROL, CLIPBOARD, CHAT], frozenset({VIEW, CHAT})))


async def test_return_allows_the_preselected_permissions(ui: WindowUI, tk_thread: TkThread) -> None:
    asked = ask_consent(ui)
    await wait_until_shown(tk_thread, "Allow Alice Tech to:")
    shown = await tk_thread.acall(_shown)
    assert [p.question for p in (VIEW, CONTROL, CLIPBOARD, CHAT)] == [t for t in shown if t in {
        p.question for p in Permission}], "one tick box per offered permission, in order"
    await type_into_window("", "Return")
    assert await asyncio.wait_for(asked, TIMEOUT) == {VIEW, CHAT}


async def test_tab_and_space_tick_another_permission(ui: WindowUI, tk_thread: TkThread) -> None:
    asked = ask_consent(ui)
    await wait_until_shown(tk_thread, "Allow Alice Tech to:")
    # The first box has the focus; Tab moves to the second ("control ..."), space ticks it.
    await type_into_window("", "Tab", "space")
    await wait_until(tk_thread, _is_ticked, CONTROL.question)
    await type_into_window("", "Return")
    assert await asyncio.wait_for(asked, TIMEOUT) == {VIEW, CONTROL, CHAT}


async def test_escape_declines_consent(ui: WindowUI, tk_thread: TkThread) -> None:
    asked = ask_consent(ui)
    await wait_until_shown(tk_thread, "Allow Alice Tech to:")
    await type_into_window("", "Escape")
    assert await asyncio.wait_for(asked, TIMEOUT) is None


# --- the session view -----------------------------------------------------------------


async def test_stop_control_and_unticking_narrow_consent(ui: WindowUI, tk_thread: TkThread) -> None:
    actions = await in_session(ui, tk_thread, frozenset({VIEW, CONTROL, CHAT}))
    assert await tk_thread.acall(_is_ticked, CONTROL.question)

    await click(tk_thread, "Stop control")
    assert await actions.next() == ("change_consent", {VIEW, CHAT})
    assert actions.threads == {threading.get_ident()}, "actions must arrive in the asyncio thread"
    assert not await tk_thread.acall(_is_ticked, CONTROL.question)
    assert not await tk_thread.acall(_is_enabled, "Stop control"), "nothing left to stop"
    await wait_until_shown(tk_thread, "Control stopped")

    await click(tk_thread, VIEW.question)
    assert await actions.next() == ("change_consent", {CHAT})


async def test_chat_both_ways_and_presence(ui: WindowUI, tk_thread: TkThread) -> None:
    actions = await in_session(ui, tk_thread, frozenset({VIEW, CHAT}))
    ui.chat_received("Hello, I can see your screen")
    await wait_until_shown(tk_thread, "Technician: Hello, I can see your screen")

    await click_at(*await tk_thread.acall(_chat_entry_centre))  # Tk's focus inside the window
    await type_into_window("thanks, go ahead", "Return")
    assert await actions.next() == ("send_chat", "thanks, go ahead")
    await wait_until_shown(tk_thread, "You: thanks, go ahead")

    ui.technician_present(False)
    await wait_until_shown(tk_thread, TECHNICIAN_GONE)
    ui.notice("recording paused: the broker is unreachable")
    await wait_until_shown(tk_thread, "recording paused")


async def test_close_button_ends_the_session_then_close_removes_the_window(ui: WindowUI, tk_thread: TkThread) -> None:
    actions = await in_session(ui, tk_thread, frozenset({VIEW}))
    await asyncio.to_thread(press_close_button, await window_id())
    assert await actions.next() == ("end_session", None)
    await wait_until_shown(tk_thread, "Ending the session")

    closing = asyncio.create_task(ui.close("Session s-7 ended by the user after 0:00:03."))
    await wait_until_shown(tk_thread, "Session s-7 ended by the user")
    await asyncio.wait_for(closing, TIMEOUT)
    assert not tk_thread.running
    assert (await xdo("search", "--name", TITLE, check=False)).split() == []
    ui.notice("after the end")  # dropped quietly, the window is gone


# --- file requests --------------------------------------------------------------------

SESSION_LINE = "Session s-7 · ticket #42"


def _path_entry(root: Any) -> str:
    """The text of the file request's path entry (the entry beside "Browse…")."""
    browse = _find(root, "Browse…")
    (entry,) = [w for w in browse.master.winfo_children() if w.winfo_class() == "TEntry"]
    return str(entry.get())


async def test_file_request_explains_a_missing_file_inline_then_sends_the_typed_path(
    ui: WindowUI, tk_thread: TkThread, tmp_path: Path
) -> None:
    await in_session(ui, tk_thread, frozenset({VIEW, Permission.files_receive}))
    report = tmp_path / "report.txt"
    report.write_text("the report")
    asked = asyncio.create_task(ui.ask_file_request("Alice Tech", str(tmp_path / "missing.txt"), "The report, please"))
    await wait_until_shown(tk_thread, "Alice Tech asks for a file")
    shown = await tk_thread.acall(_shown)
    assert "The report, please" in shown and SESSION_LINE not in shown, "the dialog takes the session view's place"
    assert await tk_thread.acall(_path_entry) == str(tmp_path / "missing.txt")

    await type_into_window("", "Return")  # sends the suggestion, which does not exist
    await wait_until_shown(tk_thread, "There is no file at this path.")
    assert not asked.done(), "a missing file must not end the request"

    await type_into_window(str(report), "Return")  # the path was selected after the message: typing replaces it
    assert await asyncio.wait_for(asked, TIMEOUT) == report
    await wait_until_shown(tk_thread, SESSION_LINE)


async def test_queued_file_requests_are_answered_one_at_a_time(ui: WindowUI, tk_thread: TkThread, tmp_path: Path) -> None:
    actions = await in_session(ui, tk_thread, frozenset({VIEW, Permission.files_receive}))
    log_file = tmp_path / "app.log"
    log_file.write_text("log")
    first = asyncio.create_task(ui.ask_file_request("Alice Tech", "", "first request"))
    second = asyncio.create_task(ui.ask_file_request("Alice Tech", str(log_file), "second request"))
    third = asyncio.create_task(ui.ask_file_request("Alice Tech", "", "third request"))

    await wait_until_shown(tk_thread, "first request")
    assert not {"second request", "third request"} & set(await tk_thread.acall(_shown)), "one dialog at a time"
    await type_into_window("", "Escape")
    assert await asyncio.wait_for(first, TIMEOUT) is None

    await wait_until_shown(tk_thread, "second request")
    assert not second.done() and not third.done()
    await type_into_window("", "Return")  # the suggestion exists: Return sends it
    assert await asyncio.wait_for(second, TIMEOUT) == log_file

    await wait_until_shown(tk_thread, "third request")
    await asyncio.to_thread(press_close_button, await window_id())
    assert await asyncio.wait_for(third, TIMEOUT) is None
    await wait_until_shown(tk_thread, SESSION_LINE)
    assert actions.calls.empty(), "closing a file request declines it; the session goes on"


async def test_browse_starts_in_the_suggested_folder_and_fills_the_path(
    ui: WindowUI, tk_thread: TkThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = tmp_path / "chosen.txt"
    chosen.write_text("chosen")
    opened: list[str] = []

    def file_browser(**options: Any) -> str:  # stands in for Tk's modal file browser, in the Tk thread
        # Plain strings only: keeping options["parent"] (a widget) would free it in this thread.
        opened.append(str(options["initialdir"]))
        return str(chosen)

    monkeypatch.setattr(filedialog, "askopenfilename", file_browser)
    asked = asyncio.create_task(ui.ask_file_request("Alice Tech", str(tmp_path / "missing.txt"), ""))
    await wait_until_shown(tk_thread, "Alice Tech asks for a file")
    await click(tk_thread, "Browse…")
    await wait_until(tk_thread, lambda root: _path_entry(root) == str(chosen))
    assert opened == [str(tmp_path)], "the browser starts in the suggestion's folder"
    await type_into_window("", "Return")
    assert await asyncio.wait_for(asked, TIMEOUT) == chosen


async def test_a_cancelled_file_request_leaves_the_window(ui: WindowUI, tk_thread: TkThread) -> None:
    await in_session(ui, tk_thread, frozenset({VIEW, Permission.files_receive}))
    asked = asyncio.create_task(ui.ask_file_request("Alice Tech", "", "never mind"))
    await wait_until_shown(tk_thread, "never mind")
    asked.cancel()
    await wait_until_shown(tk_thread, SESSION_LINE)
    assert "never mind" not in await tk_thread.acall(_shown)


# --- file transfers -------------------------------------------------------------------


def _transfer_row(root: Any, title: str) -> dict[str, Any]:
    """What the row titled ``title`` shows: bar value, detail text and style, Cancel, bar widget path."""
    parts = {child.winfo_name(): child for child in _find(root, title).master.winfo_children()}
    return {
        "value": float(str(parts["progress"].cget("value"))),
        "detail": _text_of(parts["detail"]),
        "style": str(parts["detail"].cget("style")),
        "cancel": "cancel" in parts,
        "bar": str(parts["progress"]),
    }


def _detail_is(root: Any, title: str, detail: str) -> bool:
    if not any(_text_of(w) == title for w in _descendants(root) if w.winfo_ismapped()):
        return False  # no row yet
    return _transfer_row(root, title)["detail"] == detail


def _session_controls_fit(root: Any) -> dict[str, int]:
    """Pixels of the session's controls left inside the window (negative: cut off), and the chat log's height."""
    (top,) = [w for w in root.winfo_children() if w.winfo_class() == "Toplevel"]
    bottom = top.winfo_rooty() + top.winfo_height()
    room = {text: bottom - (_find(root, text).winfo_rooty() + _find(root, text).winfo_height())
            for text in ("Stop control", "End session", "Send")}
    (chat_log,) = [w for w in _descendants(top) if w.winfo_class() == "Text"]
    room["chat log height"] = chat_log.winfo_height() if chat_log.winfo_ismapped() else 0
    return room


async def test_transfer_rows_show_progress_cancel_and_how_they_ended(ui: WindowUI, tk_thread: TkThread) -> None:
    actions = await in_session(ui, tk_thread, ALL_PERMISSIONS)  # the longest permission list
    ui.transfer_progress("t-1", "photo.jpg", False, 12_300_000, 256_000_000, 140e6)
    await wait_until_shown(tk_thread, "⬇ photo.jpg")
    row = await tk_thread.acall(_transfer_row, "⬇ photo.jpg")
    assert row["value"] == pytest.approx(12.3 / 256)
    assert row["detail"] == "12.3 MB of 256 MB · 140 MB/s · 2 s left" and row["cancel"]

    ui.transfer_progress("t-1", "photo.jpg", False, 128_000_000, 256_000_000, 0.0)
    await wait_until(tk_thread, _detail_is, "⬇ photo.jpg", "128 MB of 256 MB · —")  # no rate yet: no time left
    updated = await tk_thread.acall(_transfer_row, "⬇ photo.jpg")  # _find: still one row with this title
    assert updated["value"] == pytest.approx(0.5) and updated["bar"] == row["bar"], "updated in place"

    await click(tk_thread, "Cancel")
    assert await actions.next() == ("cancel_transfer", "t-1")
    ui.transfer_finished("t-1", "photo.jpg", False, False, "cancelled by the user")
    await wait_until(tk_thread, _detail_is, "⬇ photo.jpg", "✗ cancelled by the user")
    ended = await tk_thread.acall(_transfer_row, "⬇ photo.jpg")
    assert not ended["cancel"] and ended["style"] == "Error.TLabel"
    shown = await tk_thread.acall(_shown)
    assert "Cancel" not in shown and "Cancelling photo.jpg…" not in shown, "no Cancel button, no stale status"

    ui.transfer_progress("t-2", "empty.txt", True, 0, 0, 0.0)  # an empty file is complete from the start
    await wait_until_shown(tk_thread, "⬆ empty.txt")
    assert (await tk_thread.acall(_transfer_row, "⬆ empty.txt"))["value"] == pytest.approx(1.0)
    ui.transfer_finished("t-2", "empty.txt", True, True, "sent to the technician")
    ui.transfer_finished("t-3", "notes.txt", False, True, "/home/ann/Downloads/deskhand/notes.txt",
                         "3.10 MB in 0.50 s, 6.20 MB/s")
    await wait_until(tk_thread, _detail_is, "⬇ notes.txt",
                     "✓ saved to /home/ann/Downloads/deskhand/notes.txt · 3.10 MB in 0.50 s, 6.20 MB/s")
    assert (await tk_thread.acall(_transfer_row, "⬆ empty.txt"))["detail"] == "✓ sent to the technician"
    assert (await tk_thread.acall(_transfer_row, "⬇ notes.txt"))["style"] == "Done.TLabel"
    assert (await tk_thread.acall(_transfer_row, "⬇ photo.jpg"))["detail"] == "✗ cancelled by the user", "rows stay"

    ui.chat_received("all done")
    await wait_until_shown(tk_thread, "Technician: all done")
    room = await tk_thread.acall(_session_controls_fit)
    assert min(room.values()) >= 0 and room["chat log height"] >= 40, f"cut off at 360x460: {room}"


# --- the clipboard --------------------------------------------------------------------

READ_CLIPBOARD = "import tkinter; root = tkinter.Tk(); root.withdraw(); print(root.clipboard_get(), end='')"


async def test_clipboard_text_round_trips_and_other_programs_see_it(tk_thread: TkThread) -> None:
    clipboard = TkClipboard(tk_thread)
    await clipboard.write("clip ✓ text")
    assert await clipboard.read() == "clip ✓ text"

    # Another X client asks for the selection: our Tk thread must serve it.
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", READ_CLIPBOARD, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
    out, err = await asyncio.wait_for(process.communicate(), TIMEOUT)
    assert process.returncode == 0, err.decode()
    assert out.decode() == "clip ✓ text"

    with pytest.raises(ValueError, match=f"at most {MAX_CLIPBOARD_CHARS}"):
        await clipboard.write("x" * (MAX_CLIPBOARD_CHARS + 1))
    assert await clipboard.read() == "clip ✓ text", "a refused write leaves the clipboard alone"


# --- the Tk thread --------------------------------------------------------------------


def _tk_state(root: Any, seen: list[int]) -> str:
    seen.append(threading.get_ident())
    return root.title()


def _fail(root: Any) -> None:
    raise LookupError("no such widget")


async def test_tk_thread_runs_work_in_its_own_thread_and_stops_once(tk_thread: TkThread) -> None:
    seen: list[int] = []
    assert isinstance(tk_thread.call(_tk_state, seen).result(TIMEOUT), str)
    assert isinstance(await tk_thread.acall(_tk_state, seen), str)
    assert len(set(seen)) == 1 and seen[0] != threading.get_ident()

    with pytest.raises(LookupError) as raised:
        await tk_thread.acall(_fail)
    assert raised.value.__traceback__ is not None  # re-raised here; the Tk frames are gone
    assert "Raised in the Tk thread" in raised.value.__notes__[0]

    hooks: list[int] = []
    tk_thread.on_stop(lambda root: hooks.append(threading.get_ident()))
    tk_thread.stop()
    tk_thread.stop()
    assert hooks == seen[:1], "stop hooks run once, in the Tk thread"
    assert not tk_thread.running
    with pytest.raises(TkStopped):
        tk_thread.call(_tk_state, seen)


async def test_a_variable_collected_in_another_thread_is_released_in_the_tk_thread(
    tk_thread: TkThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file request dialog's variable, freed by the asyncio thread, once hung CI inside Tcl."""
    released_in: list[int] = []
    tkinter_release = tkinter.Variable.__del__

    def recording_release(variable: tkinter.Variable) -> None:
        released_in.append(threading.get_ident())
        if threading.get_ident() == tk_ident:  # elsewhere it would call into Tcl from the wrong thread
            tkinter_release(variable)

    monkeypatch.setattr(tkinter.Variable, "__del__", recording_release)
    tk_ident = (await tk_thread.acall(lambda root: threading.get_ident()))
    # Handed out on purpose, as a callback kept by asyncio would keep it.
    variables = await tk_thread.acall(lambda root: [StringVar(root, "x"), BooleanVar(root, True), IntVar(root, 3)])
    names = [str(variable) for variable in variables]
    del variables
    gc.collect()
    await wait_until(tk_thread, lambda root: len(released_in) == 3)
    assert released_in == [tk_ident] * 3
    exists = await tk_thread.acall(lambda root: [root.getboolean(root.tk.call("info", "exists", n)) for n in names])
    assert exists == [False] * 3, "the Tcl variables are gone"
    assert isinstance(await tk_thread.acall(_tk_state, []), str), "and Tk still answers"
