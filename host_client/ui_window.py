"""The end user's side in a small Tk window at the top-right of the screen.

One window, three views in turn: the support code, the consent prompt, then the
session (who is connected, what they may do, Stop control, End session, file
transfers, chat). A status line at the bottom shows notices at any time. When the
technician asks for a file, a dialog takes the view's place until the user sends
a file or declines; further requests wait their turn. Everything works from the
keyboard: Tab moves, space ticks, Return does the obvious thing, Escape declines.

Two halves, one per thread:

* :class:`WindowUI` is the :class:`~host_client.ui.HostUI` the session calls from
  its asyncio thread. It never touches Tk; it hands work to the
  :class:`~host_client.tk_thread.TkThread`.
* :class:`_Window` owns the widgets and lives only in the Tk thread. What the
  user does goes back to the asyncio loop with ``loop.call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import stat
import tkinter
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from tkinter import filedialog, ttk
from typing import Any

from pydantic import ValidationError

from peer.transfer_rate import size_text
from protocol.channel import MAX_CHAT_CHARS
from protocol.codes import CodeFormatError, normalize_code
from protocol.permissions import Permission, ordered
from protocol.requests import RATING_MAX, RATING_MIN, SURVEY_COMMENT_MAX, HelpRequestCreate, SurveyAnswer

from .help_request import FORM_LABELS, describe_problems, help_request_body
from .tk_thread import TkStopped, TkThread
from .ui import UserActions

log = logging.getLogger(__name__)

TITLE = "Deskhand remote support"
"""The window's title (what ``xdotool search --name`` finds)."""

WIDTH, HEIGHT = 360, 460
MARGIN = 16
"""Pixels between the window and the screen's top-right corner."""

CLOSE_DELAY = 1.5
"""Seconds the end-of-session summary stays on screen before the window goes."""

ERROR_COLOUR = "#c00000"
DONE_COLOUR = "#1a7f37"
TECHNICIAN_GONE = "Technician disconnected — waiting"
"""The status line while the technician is away."""

TRANSFER_ROWS_SHOWN = 1
"""Transfer rows visible at once; more scroll (row by row), so that the chat log keeps
a few lines at 360x460 even with every permission listed."""

MAX_NOTE_CHARS = 300
"""How much of the technician's note a file request shows."""

INCOMING, OUTGOING = "⬇", "⬆"
"""Before a transfer's name: a file coming to this computer, or going to the technician."""

SCROLL_TAG = "DeskhandTransfers"
"""A bind tag: the mouse wheel over any part of a transfer row scrolls the rows."""

Answer = Callable[[Any], None]
"""Settles a prompt with a value; safe to call from the Tk thread."""


class WindowUI:
    """:class:`~host_client.ui.HostUI` in a Tk window run by ``tk_thread``.

    ``close()`` stops ``tk_thread`` (the session is over), which also ends a
    :class:`~host_client.clipboard.TkClipboard` sharing it.
    """

    def __init__(self, tk_thread: TkThread, *, close_delay: float = CLOSE_DELAY) -> None:
        """Show nothing yet: the window appears with the first prompt or message."""
        self._tk = tk_thread
        self._close_delay = close_delay
        self._loop: asyncio.AbstractEventLoop | None = None
        self._actions: UserActions | None = None
        self._pending: set[asyncio.Future[Any]] = set()
        self._dismissed: asyncio.Event | None = None
        self._withdraw: asyncio.Event | None = None  # set when the user withdraws a waiting help request
        self._file_requests = asyncio.Lock()  # one file request dialog at a time, first come first shown
        self._closing = False
        self._offered: list[Permission] = []
        self._consented: frozenset[Permission] = frozenset()
        self._granted: frozenset[Permission] | None = None  # None: no grant reported yet
        self._window: _Window | None = None  # touched in the Tk thread only
        tk_thread.on_stop(self._forget_window)

    # --- HostUI: prompts ----------------------------------------------------------------

    async def ask_code(self) -> str | HelpRequestCreate | None:
        """The nine digits of a valid code (``"123456789"``), or the help request filled in
        after "No code? Ask for help", or None on Escape or close."""
        return await self._ask(_Window.show_code)

    async def ask_consent(
        self, technician: str, offered: list[Permission], preselected: frozenset[Permission]
    ) -> frozenset[Permission] | None:
        """The ticked permissions on "Allow selected", or None on "Decline", Escape or close."""
        self._offered = ordered(offered)
        chosen = await self._ask(_Window.show_consent, technician, self._offered, frozenset(preselected))
        if chosen is not None:
            self._consented = chosen
        return chosen

    async def ask_file_request(self, technician: str, suggested_path: str, note: str) -> Path | None:
        """The file the user sends (an existing regular file), or None on "Decline", Escape or close.

        Requests that arrive while one is shown wait for it, in order.
        """
        if self._closing:
            return None
        async with self._file_requests:
            if self._closing:
                return None
            chosen: Path | None = await self._ask(
                _Window.show_file_request, technician, suggested_path, note, withdraw=_Window.withdraw_file_request
            )
            return chosen

    async def ask_survey(self) -> SurveyAnswer | None:
        """A rating from 1 to 5 and an optional comment on "Send", or None on "Skip", Escape or close."""
        if self._closing:
            return None
        answered: SurveyAnswer | None = await self._ask(_Window.show_survey)
        return answered

    # --- HostUI: the session ------------------------------------------------------------

    def waiting_in_queue(self, position: int) -> None:
        """"Waiting for a technician" with the place in the queue."""
        self._post(_Window.show_queue_position, position)

    async def withdrawn(self) -> None:
        """Return when the user presses "Withdraw request", Escape or the close button while waiting."""
        self._remember_loop()
        self._withdraw = asyncio.Event()
        await self._withdraw.wait()

    def attach(self, actions: UserActions) -> None:
        """Send what the user does to ``actions``, in the loop this is called from."""
        self._remember_loop()
        self._actions = actions

    def session_started(self, technician: str, session_id: str, ticket_id: int) -> None:
        """Switch to the session view."""
        # Until the session reports the grant, what was offered is what was granted.
        granted = frozenset(self._offered) if self._granted is None else self._granted
        self._post(
            _Window.show_session, technician, session_id, ticket_id, self._offered, granted, self._consented
        )

    def permissions_changed(self, granted: frozenset[Permission], consented: frozenset[Permission]) -> None:
        """Tick exactly the consented permissions and mark those the grant lacks."""
        self._granted, self._consented = granted, consented
        self._post(_Window.show_permissions, granted, consented)

    def technician_present(self, present: bool) -> None:
        """Say in the status line whether the technician is connected."""
        self._post(_Window.set_status, "Technician connected" if present else TECHNICIAN_GONE)

    def chat_received(self, text: str) -> None:
        """Add a "Technician: ..." line to the chat log."""
        self._post(_Window.add_chat, "Technician", text)

    def notice(self, text: str) -> None:
        """Show ``text`` in the status line."""
        self._post(_Window.set_status, text)

    def transfer_progress(self, transfer_id: str, name: str, outgoing: bool, done: int, total: int, rate: float) -> None:
        """Add or update the transfer's row: arrow and name, progress bar, sizes, rate, time left, Cancel."""
        self._post(_Window.show_transfer, transfer_id, name, outgoing, done, total, rate)

    def transfer_finished(
        self, transfer_id: str, name: str, outgoing: bool, ok: bool, detail: str, summary: str = ""
    ) -> None:
        """The row says where the file was saved (or that it was sent) and how fast, or why it failed; Cancel goes."""
        self._post(_Window.end_transfer, transfer_id, name, outgoing, ok, detail, summary)

    async def close(self, summary: str) -> None:
        """Show ``summary`` for :data:`CLOSE_DELAY` seconds (less if the user closes it), then go."""
        self._closing = True  # file requests still queued are declined
        self._settle_pending(None)
        self._dismissed = asyncio.Event()
        with contextlib.suppress(TkStopped):
            await self._tk.acall(self._in_window, _Window.finish, summary)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dismissed.wait(), self._close_delay)
        await asyncio.to_thread(self._tk.stop)

    # --- asyncio side -------------------------------------------------------------------

    def _remember_loop(self) -> asyncio.AbstractEventLoop:
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError("WindowUI must be used from the session's running asyncio loop") from None
        return self._loop

    async def _ask(self, show: Callable[..., None], *args: Any,
                   withdraw: Callable[[_Window, Answer], None] | None = None) -> Any:
        """Show a prompt and wait for its answer (None when the window goes).

        ``withdraw(window, answer)`` takes the prompt away when the caller is
        cancelled while waiting.
        """
        loop = self._remember_loop()
        answered: asyncio.Future[Any] = loop.create_future()
        self._pending.add(answered)

        def answer(value: Any) -> None:  # in the Tk thread; one future per prompt, so a late
            _settle_from_thread(loop, answered, value)  # answer cannot settle the next one

        try:
            await self._tk.acall(self._in_window, show, *args, answer)
            return await answered
        except TkStopped:
            return None
        except asyncio.CancelledError:
            if withdraw is not None:
                self._post(withdraw, answer)  # queued after ``show``, so it finds the prompt
            raise
        finally:
            self._pending.discard(answered)

    def _settle_pending(self, value: Any) -> None:
        # Also called from the Tk thread: list() copies the set in one step.
        if self._loop is not None:
            for pending in list(self._pending):
                _settle_from_thread(self._loop, pending, value)

    def _post(self, method: Callable[..., None], *args: Any) -> None:
        """Run ``method(window, *args)`` in the Tk thread without waiting."""
        try:
            future = self._tk.call(self._in_window, method, *args)
        except TkStopped:
            log.debug("window closed; %s not shown", method.__name__)
            return
        future.add_done_callback(_log_failure)

    # --- called from the Tk thread ------------------------------------------------------

    def _in_window(self, root: tkinter.Tk, method: Callable[..., Any], *args: Any) -> Any:
        if self._window is None:
            self._window = _Window(root, self)
        return method(self._window, *args)

    def _forget_window(self, root: tkinter.Tk) -> None:
        # A TkThread stop hook: widgets must be dropped in the Tk thread.
        if self._window is not None:
            self._window.top.destroy()
            self._window = None
        self._settle_pending(None)

    def _deliver(self, action: str, *args: Any) -> bool:
        """Call ``actions.<action>(*args)`` in the asyncio loop; False when no session is attached."""
        loop, actions = self._loop, self._actions
        if loop is None or actions is None:
            return False
        try:
            loop.call_soon_threadsafe(_perform, actions, action, args)
        except RuntimeError:  # the loop is closed: the program is ending
            return False
        return True

    def _user_withdrew(self) -> None:
        loop, withdraw = self._loop, self._withdraw
        if loop is not None and withdraw is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(withdraw.set)

    def _user_dismissed(self) -> None:
        loop, dismissed = self._loop, self._dismissed
        if loop is not None and dismissed is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(dismissed.set)


def _perform(actions: UserActions, action: str, args: tuple[Any, ...]) -> None:
    getattr(actions, action)(*args)


def _settle_from_thread(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], value: Any) -> None:
    def settle() -> None:
        if not future.done():
            future.set_result(value)

    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
        loop.call_soon_threadsafe(settle)


def _log_failure(future: Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("updating the window failed", exc_info=future.exception())


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _cancelling(name: str) -> str:
    return f"Cancelling {name}…"


def _duration(seconds: float) -> str:
    """Whole seconds, rounded up: "2 s", "4 min 10 s", "1 h 5 min"."""
    whole = max(1, math.ceil(seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


def progress_text(done: int, total: int, rate: float) -> str:
    """A transfer row's detail line, e.g. ``12.3 MB of 256 MB · 140 MB/s · 2 s left``.

    While the rate is unknown (0) there is no rate nor time left: ``12.3 MB of 256 MB · —``.
    """
    text = f"{size_text(done)} of {size_text(total)}"
    if rate <= 0:
        return text if done >= total else f"{text} · —"
    text += f" · {size_text(rate)}/s"
    return text if done >= total else f"{text} · {_duration((total - done) / rate)} left"


def _not_sendable(path: Path) -> str | None:
    """Why ``path`` cannot be sent (a sentence), or None for a readable regular file."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return "There is no file at this path."
    except PermissionError:
        return "Deskhand may not look there (permission denied)."
    except OSError as exc:
        return f"This path cannot be used: {exc.strerror or exc}."
    if stat.S_ISDIR(info.st_mode):
        return "This is a folder: choose a file inside it."
    if not stat.S_ISREG(info.st_mode):
        return "This is not a regular file."
    if not os.access(path, os.R_OK):
        return "Deskhand cannot read this file (permission denied)."
    return None


def _browse_start(*texts: str) -> Path:
    """The folder a file browser opens in: that of the first path given whose folder exists, else home."""
    for text in texts:
        if not text.strip():
            continue
        path = Path(text.strip()).expanduser()
        with contextlib.suppress(OSError):
            folder = path if path.is_dir() else path.parent
            if path.is_absolute() and folder.is_dir():
                return folder
    return Path.home()


@dataclass
class _Transfer:
    """What a transfer row shows, kept as data so the session view can (re)build it."""

    name: str
    outgoing: bool
    done: int = 0
    total: int = 0
    rate: float = 0.0
    ended: tuple[bool, str, str] | None = None  # (ok, detail, summary) once finished

    @property
    def title(self) -> str:
        return f"{OUTGOING if self.outgoing else INCOMING} {self.name}"

    @property
    def fraction(self) -> float:
        return 1.0 if self.total <= 0 else min(1.0, self.done / self.total)

    @property
    def detail(self) -> str:
        if self.ended is None:
            return progress_text(self.done, self.total, self.rate)
        ok, detail, summary = self.ended
        if not ok:
            return f"✗ {detail}"
        # Outgoing transfers report where the file went, not a path ("sent to the technician").
        text = f"✓ {detail}" if self.outgoing else f"✓ saved to {detail}"
        return f"{text} · {summary}" if summary else text


class _TransferRow:
    """One transfer's widgets: title and Cancel, progress bar, detail line (Tk thread only)."""

    def __init__(self, parent: ttk.Frame, on_cancel: Callable[[], None]) -> None:
        self.frame = ttk.Frame(parent, padding=(0, 0, 0, 4))
        self.frame.columnconfigure(0, weight=1)
        self.title = ttk.Label(self.frame, name="title")
        self.title.grid(row=0, column=0, sticky="w")
        self.bar = ttk.Progressbar(self.frame, name="progress", mode="determinate", maximum=1.0,
                                   style="Transfer.Horizontal.TProgressbar")
        self.bar.grid(row=1, column=0, columnspan=2, sticky="ew")
        self.detail = ttk.Label(self.frame, name="detail")
        self.detail.grid(row=2, column=0, columnspan=2, sticky="w")
        for widget in (self.frame, self.title, self.bar, self.detail):
            _scrolls(widget)
        self._on_cancel = on_cancel
        self.cancel: ttk.Button | None = None
        self._shown: tuple[str, float, str, str] | None = None
        self._add_cancel()
        # The same height with or without Cancel, so that rows scroll one at a time.
        self.frame.rowconfigure(0, minsize=self.cancel.winfo_reqheight() if self.cancel else 0)

    def show(self, transfer: _Transfer) -> None:
        """Bring the widgets up to date, touching only what changed (called a few times a second)."""
        style = "TLabel" if transfer.ended is None else "Done.TLabel" if transfer.ended[0] else "Error.TLabel"
        shown = (transfer.title, transfer.fraction, transfer.detail, style)
        if shown == self._shown:
            return
        previous = self._shown or ("", -1.0, "", "")
        self._shown = shown
        if shown[0] != previous[0]:
            self.title.configure(text=shown[0])
        if shown[1] != previous[1]:
            self.bar.configure(value=shown[1])
        if shown[2:] != previous[2:]:
            self.detail.configure(text=shown[2], style=style)
        if transfer.ended is None:
            self._add_cancel()
        elif self.cancel is not None:
            self.cancel.destroy()
            self.cancel = None

    def _add_cancel(self) -> None:
        if self.cancel is None:
            self.cancel = ttk.Button(self.frame, name="cancel", text="Cancel", style="Row.TButton",
                                     command=self._cancel)
            self.cancel.grid(row=0, column=1, sticky="e")
            _scrolls(self.cancel)

    def _cancel(self) -> None:
        if self.cancel is not None and not self.cancel.instate(["disabled"]):
            self._on_cancel()


class _Window:
    """The widgets; created, used and dropped in the Tk thread only."""

    def __init__(self, root: tkinter.Tk, owner: WindowUI) -> None:
        self.owner = owner
        self.top = tkinter.Toplevel(root)
        self.top.title(TITLE)
        # Negative x: measured from the right edge, so the window sits top-right.
        self.top.geometry(f"{WIDTH}x{HEIGHT}-{MARGIN}+{MARGIN}")
        self.top.minsize(300, 360)
        self.top.protocol("WM_DELETE_WINDOW", self._close_button)
        # Bound on the toplevel: every widget inside has the toplevel in its bindtags.
        # What the keys do is up to the view, or to the file request dialog while one is shown.
        for sequence in ("<Return>", "<KP_Enter>"):
            self.top.bind(sequence, lambda _event: self._key("return"))
        self.top.bind("<Escape>", lambda _event: self._key("escape"))
        style = ttk.Style(self.top)
        style.configure("Heading.TLabel", font="TkHeadingFont")
        style.configure("Error.TLabel", foreground=ERROR_COLOUR)
        style.configure("Done.TLabel", foreground=DONE_COLOUR)
        style.configure("Stop.TButton", font="TkHeadingFont", foreground=ERROR_COLOUR)
        style.configure("Transfer.Horizontal.TProgressbar", thickness=6)
        style.configure("Row.TButton", padding=(6, 0))
        self.status = tkinter.StringVar(self.top)
        ttk.Label(self.top, textvariable=self.status, wraplength=WIDTH - 24, padding=(12, 6)).pack(
            side="bottom", fill="x"
        )
        self.body = ttk.Frame(self.top)
        self._view_keys: dict[str, Callable[[], None] | None] = {}
        # The file request dialog, shown instead of the view while the user answers it.
        self._dialog: ttk.Frame | None = None
        self._dialog_keys: dict[str, Callable[[], None] | None] = {}
        self._dialog_answer: Answer | None = None
        self._dialog_refocus: tkinter.Misc | None = None
        self._browsing = False
        # Session view state (set by show_session).
        self._technician = "the technician"
        self._offered: list[Permission] = []
        self._granted: frozenset[Permission] = frozenset()
        self._consented: frozenset[Permission] = frozenset()
        self._permission_frame: ttk.Frame | None = None
        self._ticks: dict[Permission, tuple[tkinter.BooleanVar, ttk.Checkbutton]] = {}
        self._stop_button: ttk.Button | None = None
        self._chat_log: tkinter.Text | None = None
        self._chat_entry: ttk.Entry | None = None
        self._chat_send: ttk.Button | None = None
        self._chat_label: ttk.Label | None = None
        self._chat_backlog: list[str] = []
        # File transfers: the data outlives views; the rows exist in the session view only.
        self._transfers: dict[str, _Transfer] = {}
        self._rows: dict[str, _TransferRow] = {}
        self._transfer_section: ttk.Frame | None = None
        self._transfer_canvas: tkinter.Canvas | None = None
        self._transfer_scroll: ttk.Scrollbar | None = None
        self._transfer_list: ttk.Frame | None = None
        self._scroll_transfers_to_end = False

    # --- views --------------------------------------------------------------------------

    def _new_body(self, *, on_return: Callable[[], None] | None, on_escape: Callable[[], None] | None,
                  on_close: Callable[[], None]) -> ttk.Frame:
        """Replace the view; Return, Escape and the close button now do what this view says.

        While a file request dialog is shown, the new view waits behind it.
        """
        self.body.destroy()
        self._permission_frame = self._stop_button = self._chat_log = None
        self._chat_entry = self._chat_send = self._chat_label = None
        self._transfer_section = self._transfer_canvas = self._transfer_scroll = self._transfer_list = None
        self._ticks, self._rows = {}, {}
        self.body = ttk.Frame(self.top, padding=12)
        if self._dialog is None:
            self.body.pack(side="top", fill="both", expand=True)
        self._view_keys = {"return": self._return_key(on_return), "escape": on_escape, "close": on_close}
        return self.body

    def _key(self, which: str) -> None:
        """Return, Escape or the close button: the dialog's handler if one is shown, else the view's."""
        keys = self._view_keys if self._dialog is None else self._dialog_keys
        handler = keys.get(which)
        if handler is not None:
            handler()

    def _return_key(self, default: Callable[[], None] | None) -> Callable[[], None] | None:
        """Return presses the focused button if a button has the focus, else does ``default``."""
        if default is None:
            return None

        def press() -> None:
            try:
                focused = self.top.focus_get()
            except KeyError:  # focus in a Tk-internal widget tkinter has no object for
                focused = None
            if isinstance(focused, ttk.Button):
                focused.invoke()
            else:
                default()

        return press

    def show_code(self, answer: Answer) -> None:
        """The support code prompt; answers the nine digits, or None."""

        def submit() -> None:
            try:
                digits = normalize_code(entry.get())
            except CodeFormatError as exc:
                error.set(_sentence(str(exc)) + ".")
                # Selected, so that typing again replaces the wrong code.
                entry.selection_range(0, "end")
                entry.icursor("end")
                entry.focus_set()
                return
            self._show_waiting("Joining the session…")
            answer(digits)

        body = self._new_body(on_return=submit, on_escape=lambda: self._give_up(answer),
                              on_close=lambda: self._give_up(answer))
        error = tkinter.StringVar(body)
        ttk.Label(body, text="Support code", style="Heading.TLabel").pack(anchor="w")
        ttk.Label(body, text="Type the 9 digits your technician read to you, then press Return.",
                  wraplength=WIDTH - 40).pack(anchor="w", pady=(2, 8))
        entry = ttk.Entry(body, font=("Courier", 18), width=13)
        entry.pack(anchor="w")
        ttk.Label(body, textvariable=error, style="Error.TLabel", wraplength=WIDTH - 40).pack(anchor="w", pady=6)
        buttons = ttk.Frame(body)
        buttons.pack(anchor="w", pady=6)
        ttk.Button(buttons, text="Join", default="active", command=submit).pack(side="left")
        ttk.Button(buttons, text="Cancel", command=lambda: self._give_up(answer)).pack(side="left", padx=6)
        ttk.Button(body, text="No code? Ask for help", command=lambda: self.show_help_request(answer)).pack(
            anchor="w", pady=(12, 0))
        entry.bind("<Key>", lambda event: error.set("") if event.keysym not in ("Return", "KP_Enter") else None)
        self._take_focus(entry)

    def show_help_request(self, answer: Answer) -> None:
        """Ask for help without a code: name, what is wrong, email and details (optional);
        answers the checked request on "Ask for help", or goes back to the code prompt."""

        def submit() -> None:
            try:
                request = help_request_body(
                    name=fields["name"].get().strip(), summary=fields["summary"].get().strip(),
                    email=fields["email"].get().strip() or None, details=details.get("1.0", "end").strip(),
                )
            except ValidationError as exc:
                error.set(describe_problems(exc, FORM_LABELS) + ".")
                # The first refused field gets the keys, so the user types the fix right there.
                refused = str(exc.errors()[0]["loc"][0]) if exc.errors()[0]["loc"] else ""
                widget = fields.get(refused, details if refused == "details" else None)
                if widget is not None:
                    widget.focus_set()
                return
            self._show_waiting("Asking for help…")
            answer(request)

        body = self._new_body(on_return=submit, on_escape=lambda: self.show_code(answer),
                              on_close=lambda: self._give_up(answer))
        ttk.Label(body, text="Ask the help desk", style="Heading.TLabel").pack(anchor="w")
        ttk.Label(body, text="Your request waits in the help desk's queue until a technician picks it up.",
                  wraplength=WIDTH - 40).pack(anchor="w", pady=(2, 6))
        fields: dict[str, ttk.Entry] = {}
        for name, label in (("name", "Your name"), ("summary", "What is wrong (one line)"),
                            ("email", "Your email (optional)")):
            ttk.Label(body, text=label).pack(anchor="w")
            fields[name] = ttk.Entry(body, width=36)
            fields[name].pack(anchor="w", fill="x", pady=(0, 4))
        ttk.Label(body, text="Details (optional)").pack(anchor="w")
        details = tkinter.Text(body, height=3, width=36, wrap="word")
        details.pack(anchor="w", fill="x")
        error = tkinter.StringVar(body)
        ttk.Label(body, textvariable=error, style="Error.TLabel", wraplength=WIDTH - 40).pack(anchor="w", pady=4)
        buttons = ttk.Frame(body)
        buttons.pack(anchor="w", pady=4)
        ttk.Button(buttons, text="Ask for help", default="active", command=submit).pack(side="left")
        ttk.Button(buttons, text="Back", command=lambda: self.show_code(answer)).pack(side="left", padx=6)
        self._take_focus(fields["name"])

    def show_consent(self, technician: str, offered: list[Permission], preselected: frozenset[Permission],
                     answer: Answer) -> None:
        """One tick box per offered permission; answers the ticked set, or None."""
        ticks: dict[Permission, tkinter.BooleanVar] = {}

        def allow() -> None:
            chosen = frozenset(p for p, var in ticks.items() if var.get())
            self._show_waiting("Starting the session…")
            answer(chosen)

        body = self._new_body(on_return=allow, on_escape=lambda: self._give_up(answer),
                              on_close=lambda: self._give_up(answer))
        ttk.Label(body, text=f"Allow {technician} to:", style="Heading.TLabel", wraplength=WIDTH - 40).pack(
            anchor="w", pady=(0, 6)
        )
        first: ttk.Widget | None = None
        for permission in offered:
            ticks[permission] = tkinter.BooleanVar(body, permission in preselected)
            box = ttk.Checkbutton(body, text=permission.question, variable=ticks[permission])
            box.pack(anchor="w", pady=1)
            first = first or box
        ttk.Label(body, text="Tab moves, space ticks, Return allows, Escape declines.",
                  wraplength=WIDTH - 40).pack(anchor="w", pady=(10, 4))
        buttons = ttk.Frame(body)
        buttons.pack(anchor="w", pady=6)
        allow_button = ttk.Button(buttons, text="Allow selected", default="active", command=allow)
        allow_button.pack(side="left")
        ttk.Button(buttons, text="Decline", command=lambda: self._give_up(answer)).pack(side="left", padx=6)
        self._take_focus(first or allow_button)

    def show_survey(self, answer: Answer) -> None:
        """"How satisfied are you with this help?": one choice from 1 to 5, a comment box, Send and Skip."""
        labels = {RATING_MIN: "very unhappy", RATING_MAX: "very happy"}

        def send() -> None:
            if not rating.get():
                error.set(f"Choose {RATING_MIN} to {RATING_MAX}, or Skip.")
                return
            try:
                survey = SurveyAnswer(rating=rating.get(), comment=comment.get("1.0", "end").strip())
            except ValidationError:
                error.set(f"At most {SURVEY_COMMENT_MAX} characters of plain text, please.")
                return
            self._show_waiting("Thank you!")
            answer(survey)

        body = self._new_body(on_return=send, on_escape=lambda: self._give_up(answer),
                              on_close=lambda: self._give_up(answer))
        rating = tkinter.IntVar(body, 0)
        error = tkinter.StringVar(body)
        ttk.Label(body, text="How satisfied are you with this help?", style="Heading.TLabel",
                  wraplength=WIDTH - 40).pack(anchor="w", pady=(0, 6))
        first: ttk.Radiobutton | None = None
        for value in range(RATING_MIN, RATING_MAX + 1):
            text = f"{value} ({labels[value]})" if value in labels else str(value)
            choice = ttk.Radiobutton(body, text=text, value=value, variable=rating, command=lambda: error.set(""))
            choice.pack(anchor="w", pady=1)
            first = first or choice
        ttk.Label(body, text="Anything you would like to add? (optional)", wraplength=WIDTH - 40).pack(
            anchor="w", pady=(8, 2))
        comment = tkinter.Text(body, height=4, width=36, wrap="word")
        comment.pack(anchor="w", fill="x")
        ttk.Label(body, textvariable=error, style="Error.TLabel", wraplength=WIDTH - 40).pack(anchor="w", pady=4)
        buttons = ttk.Frame(body)
        buttons.pack(anchor="w", pady=6)
        ttk.Button(buttons, text="Send", default="active", command=send).pack(side="left")
        ttk.Button(buttons, text="Skip", command=lambda: self._give_up(answer)).pack(side="left", padx=6)
        assert first is not None
        self._take_focus(first)

    def show_session(self, technician: str, session_id: str, ticket_id: int, offered: list[Permission],
                     granted: frozenset[Permission], consented: frozenset[Permission]) -> None:
        """The session view: who, what they may do, Stop control, End session, chat."""
        self._technician, self._offered = technician, list(offered)
        body = self._new_body(on_return=None, on_escape=None, on_close=self._end_session)
        ttk.Label(body, text=f"{technician} is connected to this computer", style="Heading.TLabel",
                  wraplength=WIDTH - 40).pack(anchor="w")
        ttk.Label(body, text=f"Session {session_id} · ticket #{ticket_id}").pack(anchor="w", pady=(0, 6))
        ttk.Label(body, text=f"{technician} may:").pack(anchor="w")
        self._permission_frame = ttk.Frame(body)
        self._permission_frame.pack(anchor="w", fill="x")
        buttons = ttk.Frame(body)
        buttons.pack(fill="x", pady=6)
        self._stop_button = ttk.Button(buttons, text="Stop control", style="Stop.TButton", command=self._stop_control)
        self._stop_button.pack(side="left")
        ttk.Button(buttons, text="End session", command=self._end_session).pack(side="right")
        self._build_chat(body)
        self.show_permissions(granted, consented)
        for line in self._chat_backlog:
            self._append_chat_line(line)
        self._chat_backlog.clear()
        for transfer_id in self._transfers:
            self._show_row(transfer_id)

    def _build_chat(self, body: ttk.Frame) -> None:
        self._chat_label = ttk.Label(body, text="Chat")
        self._chat_label.pack(anchor="w")
        send_row = ttk.Frame(body)
        send_row.pack(side="bottom", fill="x", pady=(4, 0))
        self._chat_entry = ttk.Entry(send_row)
        self._chat_entry.pack(side="left", fill="x", expand=True)
        self._chat_entry.bind("<Return>", lambda _event: self._send_chat())
        self._chat_entry.bind("<KP_Enter>", lambda _event: self._send_chat())
        self._chat_send = ttk.Button(send_row, text="Send", command=self._send_chat)
        self._chat_send.pack(side="left", padx=(4, 0))
        log_frame = ttk.Frame(body)
        log_frame.pack(fill="both", expand=True)
        scroll = ttk.Scrollbar(log_frame, orient="vertical")
        self._chat_log = tkinter.Text(log_frame, height=5, wrap="word", state="disabled", font="TkDefaultFont",
                                      yscrollcommand=scroll.set, takefocus=False)
        scroll.configure(command=self._chat_log.yview)
        scroll.pack(side="right", fill="y")
        self._chat_log.pack(side="left", fill="both", expand=True)

    def show_permissions(self, granted: frozenset[Permission], consented: frozenset[Permission]) -> None:
        """Tick exactly ``consented``; say which ones the grant lacks; enable what applies."""
        self._granted, self._consented = granted, consented
        if self._permission_frame is None:
            return  # not in the session view yet; show_session shows the latest state
        # Once shown, a box stays: unticked is how the user sees it was revoked.
        shown = ordered({*self._offered, *consented, *self._ticks})
        for permission in shown:
            if permission not in self._ticks:
                var = tkinter.BooleanVar(self._permission_frame)
                box = ttk.Checkbutton(self._permission_frame, variable=var, command=self._consent_toggled)
                self._ticks[permission] = (var, box)
        for permission in shown:  # repacked so that late additions keep the usual order
            var, box = self._ticks[permission]
            var.set(permission in consented)
            # On its own line: the longest question plus a note is wider than the window.
            note = "" if permission in granted else "\n(not allowed for this technician)"
            box.configure(text=permission.question + note)
            box.pack_forget()
            box.pack(anchor="w")
        effective = granted & consented
        _enable(self._stop_button, Permission.control in consented)
        _enable(self._chat_entry, Permission.chat in effective)
        _enable(self._chat_send, Permission.chat in effective)

    def show_queue_position(self, position: int) -> None:
        """The help request waits: the place in the queue, and "Withdraw request" (also Escape or close)."""
        withdraw = self.owner._user_withdrew
        body = self._new_body(on_return=None, on_escape=withdraw, on_close=withdraw)
        ttk.Label(body, text="Waiting for a technician…", style="Heading.TLabel").pack(anchor="w")
        place = "You are next." if position == 1 else f"You are number {position} in the queue."
        ttk.Label(body, text=place + " The technician will ask what they may do before anything happens.",
                  wraplength=WIDTH - 40).pack(anchor="w", pady=(6, 10))
        ttk.Button(body, text="Withdraw request", command=withdraw).pack(anchor="w")

    def _show_waiting(self, text: str) -> None:
        body = self._new_body(on_return=None, on_escape=None, on_close=lambda: None)
        ttk.Label(body, text=text, style="Heading.TLabel").pack(anchor="w")

    def finish(self, summary: str) -> None:
        """The session is over: freeze the view and show ``summary``; Return, Escape or close dismiss it."""
        answer = self._dialog_answer
        self._close_file_request()
        if answer is not None:
            answer(None)
        _disable_tree(self.body)
        dismiss = self.owner._user_dismissed
        self._view_keys = {"return": dismiss, "escape": dismiss, "close": dismiss}
        self.set_status(summary)

    # --- file requests ------------------------------------------------------------------

    def show_file_request(self, technician: str, suggested_path: str, note: str, answer: Answer) -> None:
        """A dialog in place of the view: the path to send (suggestion preselected), Browse…, Send, Decline.

        Answers an existing regular file's path on "Send" (Return), or None on
        "Decline", Escape or the close button; a path that is not a readable
        file gets an inline message and the dialog stays.
        """
        if self._dialog is not None:  # WindowUI shows one at a time; never leave one unanswered
            earlier = self._dialog_answer
            self._close_file_request()
            if earlier is not None:
                earlier(None)
        self._dialog_refocus = self._focused()
        self.body.pack_forget()
        dialog = self._dialog = ttk.Frame(self.top, padding=12)
        dialog.pack(side="top", fill="both", expand=True)
        self._dialog_answer = answer
        error = tkinter.StringVar(dialog)

        def send() -> None:
            text = entry.get().strip()
            path = Path(text).expanduser().absolute() if text else None
            problem = "Type the path of the file to send, or choose it with Browse…" if path is None else _not_sendable(path)
            if problem is not None:
                error.set(problem)
                entry.selection_range(0, "end")  # typing again replaces the path
                entry.icursor("end")
                entry.focus_set()
                return
            self._close_file_request()
            answer(path)

        def decline() -> None:
            self._close_file_request()
            answer(None)

        def still_shown() -> bool:
            return self._dialog is dialog and bool(dialog.winfo_exists())

        def browse() -> None:
            start = _browse_start(entry.get(), suggested_path)
            self._browsing = True
            try:
                # Modal: a nested event loop, in which the window keeps updating.
                chosen = filedialog.askopenfilename(parent=self.top, title="Choose the file to send",
                                                    initialdir=str(start))
            except tkinter.TclError as exc:
                if not still_shown():
                    return  # the window went while browsing (the Tk thread stopped)
                error.set(f"The file browser failed: {exc}. Type the path instead.")
                return
            finally:
                self._browsing = False
            if not still_shown():
                return  # answered or withdrawn meanwhile (the session ended, the window went)
            if isinstance(chosen, str) and chosen:
                entry.delete(0, "end")
                entry.insert(0, chosen)
                error.set("")
            entry.icursor("end")
            entry.focus_set()

        ttk.Label(dialog, text=f"{technician} asks for a file", style="Heading.TLabel",
                  wraplength=WIDTH - 40).pack(anchor="w")
        if note.strip():
            shown = note.strip() if len(note.strip()) <= MAX_NOTE_CHARS else note.strip()[:MAX_NOTE_CHARS] + "…"
            ttk.Label(dialog, text=shown, wraplength=WIDTH - 40).pack(anchor="w", pady=(4, 0))
        ttk.Label(dialog, text="File to send:").pack(anchor="w", pady=(10, 2))
        path_row = ttk.Frame(dialog)
        path_row.pack(fill="x")
        entry = ttk.Entry(path_row)
        entry.pack(side="left", fill="x", expand=True)
        entry.insert(0, suggested_path)
        entry.selection_range(0, "end")
        entry.icursor("end")
        ttk.Button(path_row, text="Browse…", command=browse).pack(side="left", padx=(4, 0))
        ttk.Label(dialog, textvariable=error, style="Error.TLabel", wraplength=WIDTH - 40).pack(anchor="w", pady=6)
        ttk.Label(dialog, text="Only the file you choose is sent. Return sends, Escape declines.",
                  wraplength=WIDTH - 40).pack(anchor="w", pady=(0, 4))
        buttons = ttk.Frame(dialog)
        buttons.pack(anchor="w", pady=6)
        ttk.Button(buttons, text="Send", default="active", command=send).pack(side="left")
        ttk.Button(buttons, text="Decline", command=decline).pack(side="left", padx=6)
        entry.bind("<Key>", lambda event: error.set("") if event.keysym not in ("Return", "KP_Enter") else None)
        self._dialog_keys = {"return": self._return_key(send), "escape": decline, "close": decline}
        self._take_focus(entry)

    def withdraw_file_request(self, answer: Answer) -> None:
        """Take the dialog away if it is still the one ``answer`` belongs to (its asker was cancelled)."""
        if self._dialog is not None and self._dialog_answer is answer:
            self._close_file_request()

    def _close_file_request(self) -> None:
        """Remove the dialog (and a file browser it opened) and show the view again."""
        if self._browsing:
            # Ends the browser's nested loop as its Cancel button would.
            with contextlib.suppress(tkinter.TclError):
                self.top.tk.call("set", "::tk::Priv(selectFilePath)", "")
        if self._dialog is None:
            return
        self._dialog.destroy()
        self._dialog, self._dialog_answer, self._dialog_keys = None, None, {}
        self.body.pack(side="top", fill="both", expand=True)
        refocus, self._dialog_refocus = self._dialog_refocus, None
        if refocus is not None:
            with contextlib.suppress(tkinter.TclError):
                if refocus.winfo_exists():
                    refocus.focus_set()

    def _focused(self) -> tkinter.Misc | None:
        try:
            return self.top.focus_get()
        except KeyError:  # focus in a Tk-internal widget tkinter has no object for
            return None

    # --- file transfers -----------------------------------------------------------------

    def show_transfer(self, transfer_id: str, name: str, outgoing: bool, done: int, total: int, rate: float) -> None:
        """Create or update the transfer's row (widgets are updated in place, never rebuilt)."""
        transfer = self._transfers.get(transfer_id)
        if transfer is None:
            transfer = self._transfers[transfer_id] = _Transfer(name, outgoing)
        transfer.name, transfer.outgoing = name, outgoing
        transfer.done, transfer.total, transfer.rate = done, total, rate
        transfer.ended = None  # progress after an end: resumed
        self._show_row(transfer_id)

    def end_transfer(self, transfer_id: str, name: str, outgoing: bool, ok: bool, detail: str, summary: str) -> None:
        """The row keeps its place and shows the result; its Cancel button goes."""
        transfer = self._transfers.get(transfer_id)
        if transfer is None:
            transfer = self._transfers[transfer_id] = _Transfer(name, outgoing)
        if self.status.get() == _cancelling(transfer.name):
            self.set_status("")  # the row now says how it ended
        transfer.name, transfer.outgoing, transfer.ended = name, outgoing, (ok, detail, summary)
        if ok:
            transfer.done = transfer.total
        self._show_row(transfer_id)
        row, canvas, rows = self._rows.get(transfer_id), self._transfer_canvas, self._transfer_list
        if row is not None and canvas is not None and rows is not None and rows.winfo_height() > 1:
            canvas.yview_moveto(row.frame.winfo_y() / rows.winfo_height())  # show how it ended

    def _show_row(self, transfer_id: str) -> None:
        if self._chat_label is None:
            return  # not in the session view; show_session builds the rows
        row = self._rows.get(transfer_id)
        if row is None:
            row = self._rows[transfer_id] = _TransferRow(self._transfer_rows(),
                                                         lambda: self._cancel_transfer(transfer_id))
            row.frame.pack(fill="x")
            self._scroll_transfers_to_end = True
        row.show(self._transfers[transfer_id])

    def _transfer_rows(self) -> ttk.Frame:
        """The frame rows go into, in a scrolling area between the buttons and the chat (made once per view)."""
        if self._transfer_list is not None:
            return self._transfer_list
        assert self._chat_label is not None
        section = self._transfer_section = ttk.Frame(self.body)
        section.pack(fill="x", pady=(0, 4), before=self._chat_label)
        background = ttk.Style(self.top).lookup("TFrame", "background") or None
        canvas = self._transfer_canvas = tkinter.Canvas(section, height=1, highlightthickness=0, borderwidth=0,
                                                         background=background, takefocus=False)
        self._transfer_scroll = ttk.Scrollbar(section, orient="vertical", command=canvas.yview)
        canvas.configure(yscrollcommand=self._transfer_scroll.set)
        canvas.pack(side="left", fill="x", expand=True)
        rows = self._transfer_list = ttk.Frame(canvas)
        item = canvas.create_window(0, 0, window=rows, anchor="nw")
        canvas.bind("<Configure>", lambda event: canvas.itemconfigure(item, width=event.width))
        rows.bind("<Configure>", lambda _event: self._transfer_rows_resized())
        for sequence, step in (("<Button-4>", -1), ("<Button-5>", 1)):
            self.top.bind_class(SCROLL_TAG, sequence, lambda _event, step=step: self._scroll_transfers(step))
        self.top.bind_class(SCROLL_TAG, "<MouseWheel>", lambda event: self._scroll_transfers(-1 if event.delta > 0 else 1))
        _scrolls(canvas)
        return rows

    def _transfer_rows_resized(self) -> None:
        """Fit the area to :data:`TRANSFER_ROWS_SHOWN` rows; a scroll bar when there are more."""
        canvas, scroll, rows = self._transfer_canvas, self._transfer_scroll, self._transfer_list
        if canvas is None or scroll is None or rows is None or not self._rows:
            return
        height = rows.winfo_reqheight()
        row_height = max(row.frame.winfo_reqheight() for row in self._rows.values())
        limit = row_height * TRANSFER_ROWS_SHOWN
        canvas.configure(scrollregion=(0, 0, rows.winfo_reqwidth(), height), height=min(height, limit),
                         yscrollincrement=row_height)
        if height > limit:
            if not scroll.winfo_ismapped():
                scroll.pack(side="right", fill="y", before=canvas)
        elif scroll.winfo_ismapped():
            scroll.pack_forget()
        if self._scroll_transfers_to_end:  # the newest row is the last one: show it
            self._scroll_transfers_to_end = False
            canvas.yview_moveto(1.0)

    def _scroll_transfers(self, step: int) -> None:
        if self._transfer_canvas is not None:
            self._transfer_canvas.yview_scroll(step, "units")

    def _cancel_transfer(self, transfer_id: str) -> None:
        row = self._rows.get(transfer_id)
        if self._tell("cancel_transfer", transfer_id) and row is not None and row.cancel is not None:
            row.cancel.state(["disabled"])  # once; the row says how it ended when the session reports it
            self.set_status(_cancelling(self._transfers[transfer_id].name))

    # --- status and chat ----------------------------------------------------------------

    def set_status(self, text: str) -> None:
        """Show ``text`` in the status line."""
        self.status.set(text)

    def add_chat(self, who: str, text: str) -> None:
        """Append ``who: text`` to the chat log (kept until the session view exists)."""
        line = f"{who}: {text}"
        if self._chat_log is None:
            self._chat_backlog.append(line)
        else:
            self._append_chat_line(line)

    def _append_chat_line(self, line: str) -> None:
        assert self._chat_log is not None
        self._chat_log.configure(state="normal")  # a disabled Text refuses inserts too
        self._chat_log.insert("end", line + "\n")
        self._chat_log.configure(state="disabled")
        self._chat_log.see("end")

    # --- user actions -------------------------------------------------------------------

    def _send_chat(self) -> None:
        entry = self._chat_entry
        if entry is None or entry.instate(["disabled"]):
            return  # after the end, Return reaches the toplevel's binding and dismisses
        text = entry.get().strip()
        if not text:
            return
        if len(text) > MAX_CHAT_CHARS:
            self.set_status(f"A chat message can have at most {MAX_CHAT_CHARS} characters; this one has {len(text)}.")
            return
        if self._tell("send_chat", text):
            entry.delete(0, "end")
            self.add_chat("You", text)

    def _consent_toggled(self) -> None:
        self._change_consent(frozenset(p for p, (var, _box) in self._ticks.items() if var.get()))

    def _stop_control(self) -> None:
        if self._change_consent(self._consented - {Permission.control}):
            self.set_status(f"Control stopped: {self._technician} can no longer use your mouse and keyboard.")

    def _change_consent(self, consented: frozenset[Permission]) -> bool:
        if not self._tell("change_consent", consented):
            return False
        # Shown at once; the session confirms with permissions_changed.
        self.show_permissions(self._granted, consented)
        return True

    def _end_session(self) -> None:
        if self._tell("end_session"):
            _disable_tree(self.body)
            self.set_status("Ending the session…")

    def _tell(self, action: str, *args: Any) -> bool:
        if self.owner._deliver(action, *args):
            return True
        self.set_status("Not connected to a session yet; try again in a moment.")
        return False

    def _give_up(self, answer: Answer) -> None:
        self._show_waiting("Closing…")
        answer(None)

    def _close_button(self) -> None:
        self._key("close")

    def _take_focus(self, widget: tkinter.Misc) -> None:
        """Give ``widget`` the keyboard, also taking X focus for the window (the user is asked something)."""
        widget.focus_set()
        if self.top.winfo_ismapped():
            widget.focus_force()
            return

        # focus -force on an unmapped window does nothing: do it once the window is
        # mapped. Children's <Map> events reach this binding too; only ours counts.
        def mapped(event: tkinter.Event) -> None:
            if event.widget is self.top:
                self.top.unbind("<Map>")
                widget.focus_force()

        self.top.bind("<Map>", mapped)


def _scrolls(widget: tkinter.Misc) -> None:
    """Let the mouse wheel over ``widget`` scroll the transfer rows."""
    widget.bindtags((*widget.bindtags(), SCROLL_TAG))


def _enable(widget: ttk.Widget | None, enabled: bool) -> None:
    if widget is not None:
        widget.state(["!disabled"] if enabled else ["disabled"])


def _disable_tree(widget: tkinter.Misc) -> None:
    """Disable every input inside ``widget`` (the chat log is read-only already)."""
    children: Iterable[tkinter.Misc] = widget.winfo_children()
    for child in children:
        if isinstance(child, ttk.Widget) and not isinstance(child, (ttk.Frame, ttk.Label, ttk.Scrollbar)):
            child.state(["disabled"])
        _disable_tree(child)
