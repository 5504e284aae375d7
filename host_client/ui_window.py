"""The end user's side in a small Tk window at the top-right of the screen.

One window, three views in turn: the support code, the consent prompt, then the
session (who is connected, what they may do, Stop control, End session, chat).
A status line at the bottom shows notices at any time. Everything works from the
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
import tkinter
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from tkinter import ttk
from typing import Any

from protocol.channel import MAX_CHAT_CHARS
from protocol.codes import CodeFormatError, normalize_code
from protocol.permissions import Permission, ordered

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
TECHNICIAN_GONE = "Technician disconnected — waiting"
"""The status line while the technician is away."""

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
        self._pending: asyncio.Future[Any] | None = None
        self._dismissed: asyncio.Event | None = None
        self._offered: list[Permission] = []
        self._consented: frozenset[Permission] = frozenset()
        self._granted: frozenset[Permission] | None = None  # None: no grant reported yet
        self._window: _Window | None = None  # touched in the Tk thread only
        tk_thread.on_stop(self._forget_window)

    # --- HostUI: prompts ----------------------------------------------------------------

    async def ask_code(self) -> str | None:
        """The nine digits of a valid code (``"123456789"``), or None on Escape or close."""
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

    # --- HostUI: the session ------------------------------------------------------------

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

    async def close(self, summary: str) -> None:
        """Show ``summary`` for :data:`CLOSE_DELAY` seconds (less if the user closes it), then go."""
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

    async def _ask(self, show: Callable[..., None], *args: Any) -> Any:
        """Show a prompt view and wait for its answer (None when the window goes)."""
        loop = self._remember_loop()
        answered: asyncio.Future[Any] = loop.create_future()
        self._pending = answered

        def answer(value: Any) -> None:  # in the Tk thread; one future per prompt, so a late
            _settle_from_thread(loop, answered, value)  # answer cannot settle the next one

        try:
            await self._tk.acall(self._in_window, show, *args, answer)
            return await answered
        except TkStopped:
            return None
        finally:
            self._pending = None

    def _settle_pending(self, value: Any) -> None:
        if self._pending is not None and self._loop is not None:
            _settle_from_thread(self._loop, self._pending, value)

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
        style = ttk.Style(self.top)
        style.configure("Heading.TLabel", font="TkHeadingFont")
        style.configure("Error.TLabel", foreground=ERROR_COLOUR)
        style.configure("Stop.TButton", font="TkHeadingFont", foreground=ERROR_COLOUR)
        self.status = tkinter.StringVar(self.top)
        ttk.Label(self.top, textvariable=self.status, wraplength=WIDTH - 24, padding=(12, 6)).pack(
            side="bottom", fill="x"
        )
        self.body = ttk.Frame(self.top)
        self._on_close: Callable[[], None] = lambda: None
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
        self._chat_backlog: list[str] = []

    # --- views --------------------------------------------------------------------------

    def _new_body(self, *, on_return: Callable[[], None] | None, on_escape: Callable[[], None] | None,
                  on_close: Callable[[], None]) -> ttk.Frame:
        """Replace the view; Return, Escape and the close button now do what this view says."""
        self.body.destroy()
        self._permission_frame = self._stop_button = self._chat_log = None
        self._chat_entry = self._chat_send = None
        self._ticks = {}
        self.body = ttk.Frame(self.top, padding=12)
        self.body.pack(side="top", fill="both", expand=True)
        for sequence, handler in (
            ("<Return>", self._return_key(on_return)),
            ("<KP_Enter>", self._return_key(on_return)),
            ("<Escape>", on_escape),
        ):
            # Bound on the toplevel: every widget inside has the toplevel in its bindtags.
            if handler is None:
                self.top.unbind(sequence)
            else:
                self.top.bind(sequence, lambda _event, handler=handler: handler())
        self._on_close = on_close
        return self.body

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
        entry.bind("<Key>", lambda event: error.set("") if event.keysym not in ("Return", "KP_Enter") else None)
        self._take_focus(entry)

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

    def _build_chat(self, body: ttk.Frame) -> None:
        ttk.Label(body, text="Chat").pack(anchor="w")
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

    def _show_waiting(self, text: str) -> None:
        body = self._new_body(on_return=None, on_escape=None, on_close=lambda: None)
        ttk.Label(body, text=text, style="Heading.TLabel").pack(anchor="w")

    def finish(self, summary: str) -> None:
        """The session is over: freeze the view and show ``summary``; Return, Escape or close dismiss it."""
        _disable_tree(self.body)
        dismiss = self.owner._user_dismissed
        for sequence in ("<Return>", "<KP_Enter>", "<Escape>"):
            self.top.bind(sequence, lambda _event: dismiss())
        self._on_close = dismiss
        self.set_status(summary)

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
        self._on_close()

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
