"""The window itself: the toplevel, the status line, which screen is shown, and what Return, Escape
and the close button do. Created, used and dropped in the Tk thread only.

The screens (``code_prompt``, ``consent``, ``session_screen``, ``survey``) each build their
body with :meth:`Window.new_body`; the file request dialog (``file_request``) is shown in front
of whichever screen is up. What the session screen shows (permissions, chat, transfers) is kept
here, so that it can be (re)built at any time from what the session reported meanwhile.
"""

from __future__ import annotations

import tkinter
from collections.abc import Callable
from tkinter import ttk
from typing import TYPE_CHECKING, Any

from protocol.permissions import Permission

from ..tk_variables import StringVar
from .file_request import FileRequestDialog
from .layout import DONE_COLOUR, ERROR_COLOUR, HEIGHT, MARGIN, TITLE, WIDTH, Answer, disable_tree
from .session_screen import SessionScreen
from .transfer_rows import Transfer, cancelling

if TYPE_CHECKING:
    from .window_ui import WindowUI


class Window:
    """The widgets; created, used and dropped in the Tk thread only."""

    def __init__(self, root: tkinter.Tk, owner: WindowUI) -> None:
        self.owner = owner
        self.top = tkinter.Toplevel(root)
        self.top.title(TITLE)
        # Negative x: measured from the right edge, so the window sits top-right.
        self.top.geometry(f"{WIDTH}x{HEIGHT}-{MARGIN}+{MARGIN}")
        self.top.minsize(300, 360)
        self.top.protocol("WM_DELETE_WINDOW", lambda: self.key("close"))
        # Bound on the toplevel: every widget inside has the toplevel in its bindtags.
        # What the keys do is up to the screen, or to the file request dialog while one is shown.
        for sequence in ("<Return>", "<KP_Enter>"):
            self.top.bind(sequence, lambda _event: self.key("return"))
        self.top.bind("<Escape>", lambda _event: self.key("escape"))
        style = ttk.Style(self.top)
        style.configure("Heading.TLabel", font="TkHeadingFont")
        style.configure("Error.TLabel", foreground=ERROR_COLOUR)
        style.configure("Done.TLabel", foreground=DONE_COLOUR)
        style.configure("Stop.TButton", font="TkHeadingFont", foreground=ERROR_COLOUR)
        style.configure("Transfer.Horizontal.TProgressbar", thickness=6)
        style.configure("Row.TButton", padding=(6, 0))
        self.status = StringVar(self.top)
        ttk.Label(self.top, textvariable=self.status, wraplength=WIDTH - 24, padding=(12, 6)).pack(
            side="bottom", fill="x"
        )
        self.body = ttk.Frame(self.top)
        self._screen_keys: dict[str, Callable[[], None] | None] = {}
        self.dialog: FileRequestDialog | None = None
        """The file request dialog, shown instead of the screen while the user answers it."""
        self.session: SessionScreen | None = None
        """The session screen, while it is the one shown."""
        # What the session screen shows; kept while other screens are up.
        self.technician = "the technician"
        self.offered: list[Permission] = []
        self.granted: frozenset[Permission] = frozenset()
        self.consented: frozenset[Permission] = frozenset()
        self.transfers: dict[str, Transfer] = {}
        self.chat_backlog: list[str] = []

    # --- switching screens ------------------------------------------------------------------

    def new_body(self, *, on_return: Callable[[], None] | None, on_escape: Callable[[], None] | None,
                 on_close: Callable[[], None]) -> ttk.Frame:
        """Replace the screen; Return, Escape and the close button now do what this screen says.

        While a file request dialog is shown, the new screen waits behind it.
        """
        self.body.destroy()
        self.session = None
        self.body = ttk.Frame(self.top, padding=12)
        if self.dialog is None:
            self.body.pack(side="top", fill="both", expand=True)
        self._screen_keys = {"return": self.return_key(on_return), "escape": on_escape, "close": on_close}
        return self.body

    def key(self, which: str) -> None:
        """Return, Escape or the close button: the dialog's handler if one is shown, else the screen's."""
        keys = self._screen_keys if self.dialog is None else self.dialog.keys
        handler = keys.get(which)
        if handler is not None:
            handler()

    def return_key(self, default: Callable[[], None] | None) -> Callable[[], None] | None:
        """Return presses the focused button if a button has the focus, else does ``default``."""
        if default is None:
            return None

        def press() -> None:
            focused = self.focused()
            if isinstance(focused, ttk.Button):
                focused.invoke()
            else:
                default()

        return press

    def show_waiting(self, text: str) -> None:
        """A screen that only says what is going on (the answer is on its way)."""
        body = self.new_body(on_return=None, on_escape=None, on_close=lambda: None)
        ttk.Label(body, text=text, style="Heading.TLabel").pack(anchor="w")

    def give_up(self, answer: Answer) -> None:
        """The user declined the prompt (Escape, Cancel, the close button)."""
        self.show_waiting("Closing…")
        answer(None)

    def finish(self, summary: str) -> None:
        """The session is over: freeze the screen and show ``summary``; Return, Escape or close dismiss it."""
        dialog = self.dialog
        if dialog is not None:
            dialog.close()
            dialog.answer(None)
        disable_tree(self.body)
        dismiss = self.owner._user_dismissed
        self._screen_keys = {"return": dismiss, "escape": dismiss, "close": dismiss}
        self.set_status(summary)

    # --- the session screen's data (reported at any time) -----------------------------------

    def show_session(self, technician: str, session_id: str, ticket_id: int, offered: list[Permission],
                     granted: frozenset[Permission], consented: frozenset[Permission]) -> None:
        """The session screen: who, what they may do, Stop control, End session, transfers, chat."""
        self.technician, self.offered = technician, list(offered)
        self.session = SessionScreen(self, technician, session_id, ticket_id)
        self.show_permissions(granted, consented)
        for line in self.chat_backlog:
            self.session.append_chat(line)
        self.chat_backlog.clear()
        for transfer_id, transfer in self.transfers.items():
            self.session.show_transfer(transfer_id, transfer)

    def show_permissions(self, granted: frozenset[Permission], consented: frozenset[Permission]) -> None:
        """Tick exactly ``consented``; say which ones the grant lacks; enable what applies."""
        self.granted, self.consented = granted, consented
        if self.session is not None:  # else show_session shows the latest state
            self.session.show_permissions(self.offered, granted, consented)

    def show_transfer(self, transfer_id: str, name: str, outgoing: bool, done: int, total: int, rate: float) -> None:
        """Create or update the transfer's row (widgets are updated in place, never rebuilt)."""
        transfer = self.transfers.get(transfer_id)
        if transfer is None:
            transfer = self.transfers[transfer_id] = Transfer(name, outgoing)
        transfer.name, transfer.outgoing = name, outgoing
        transfer.done, transfer.total, transfer.rate = done, total, rate
        transfer.ended = None  # progress after an end: resumed
        if self.session is not None:
            self.session.show_transfer(transfer_id, transfer)

    def end_transfer(self, transfer_id: str, name: str, outgoing: bool, ok: bool, detail: str, summary: str) -> None:
        """The row keeps its place and shows the result; its Cancel button goes."""
        transfer = self.transfers.get(transfer_id)
        if transfer is None:
            transfer = self.transfers[transfer_id] = Transfer(name, outgoing)
        if self.status.get() == cancelling(transfer.name):
            self.set_status("")  # the row now says how it ended
        transfer.name, transfer.outgoing, transfer.ended = name, outgoing, (ok, detail, summary)
        if ok:
            transfer.done = transfer.total
        if self.session is not None:
            self.session.show_transfer(transfer_id, transfer)
            self.session.reveal_transfer(transfer_id)  # show how it ended

    def add_chat(self, who: str, text: str) -> None:
        """Append ``who: text`` to the chat log (kept until the session screen exists)."""
        line = f"{who}: {text}"
        if self.session is None:
            self.chat_backlog.append(line)
        else:
            self.session.append_chat(line)

    # --- the file request dialog ------------------------------------------------------------

    def show_file_request(self, technician: str, suggested_path: str, note: str, answer: Answer) -> None:
        """The dialog in front of the screen (see :class:`~host_client.ui_window.file_request.FileRequestDialog`)."""
        earlier = self.dialog
        if earlier is not None:  # WindowUI shows one at a time; never leave one unanswered
            earlier.close()
            earlier.answer(None)
        self.dialog = FileRequestDialog(self, technician, suggested_path, note, answer)

    def withdraw_file_request(self, answer: Answer) -> None:
        """Take the dialog away if it is still the one ``answer`` belongs to (its asker was cancelled)."""
        if self.dialog is not None and self.dialog.answer is answer:
            self.dialog.close()

    # --- for every screen -------------------------------------------------------------------

    def set_status(self, text: str) -> None:
        """Show ``text`` in the status line."""
        self.status.set(text)

    def tell(self, action: str, *args: Any) -> bool:
        """Hand what the user did to the session; False (and a word in the status line) without one."""
        if self.owner._deliver(action, *args):
            return True
        self.set_status("Not connected to a session yet; try again in a moment.")
        return False

    def focused(self) -> tkinter.Misc | None:
        try:
            return self.top.focus_get()
        except KeyError:  # focus in a Tk-internal widget tkinter has no object for
            return None

    def take_focus(self, widget: tkinter.Misc) -> None:
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

