"""The session screen: who is connected, what they may do (one tick box each), Stop control,
End session, the file transfers and the chat. Tk thread only."""

from __future__ import annotations

import tkinter
from tkinter import ttk
from typing import TYPE_CHECKING

from protocol.channel import MAX_CHAT_CHARS
from protocol.permissions import Permission, ordered

from ..tk_variables import BooleanVar
from .layout import TEXT_WIDTH, disable_tree
from .transfer_rows import Transfer, TransferArea, cancelling

if TYPE_CHECKING:
    from .shell import Window


class SessionScreen:
    """The session screen's widgets; the data it shows is the :class:`~host_client.ui_window.shell.Window`'s."""

    def __init__(self, window: Window, technician: str, session_id: str, ticket_id: int) -> None:
        self._window = window
        body = self._body = window.new_body(on_return=None, on_escape=None, on_close=self._end_session)
        ttk.Label(body, text=f"{technician} is connected to this computer", style="Heading.TLabel",
                  wraplength=TEXT_WIDTH).pack(anchor="w")
        ttk.Label(body, text=f"Session {session_id} · ticket #{ticket_id}").pack(anchor="w", pady=(0, 6))
        ttk.Label(body, text=f"{technician} may:").pack(anchor="w")
        self._permission_frame = ttk.Frame(body)
        self._permission_frame.pack(anchor="w", fill="x")
        self._ticks: dict[Permission, tuple[tkinter.BooleanVar, ttk.Checkbutton]] = {}
        buttons = ttk.Frame(body)
        buttons.pack(fill="x", pady=6)
        self._stop_button = ttk.Button(buttons, text="Stop control", style="Stop.TButton", command=self._stop_control)
        self._stop_button.pack(side="left")
        ttk.Button(buttons, text="End session", command=self._end_session).pack(side="right")
        self._transfers: TransferArea | None = None  # made with the first transfer
        self._build_chat(body)

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

    # --- what the session reports -------------------------------------------------------------

    def show_permissions(self, offered: list[Permission], granted: frozenset[Permission],
                         consented: frozenset[Permission]) -> None:
        """Tick exactly ``consented``; say which ones the grant lacks; enable what applies."""
        # Once shown, a box stays: unticked is how the user sees it was revoked.
        shown = ordered({*offered, *consented, *self._ticks})
        for permission in shown:
            if permission not in self._ticks:
                var = BooleanVar(self._permission_frame)
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

    def append_chat(self, line: str) -> None:
        self._chat_log.configure(state="normal")  # a disabled Text refuses inserts too
        self._chat_log.insert("end", line + "\n")
        self._chat_log.configure(state="disabled")
        self._chat_log.see("end")

    def show_transfer(self, transfer_id: str, transfer: Transfer) -> None:
        if self._transfers is None:
            self._transfers = TransferArea(self._window.top, self._body, self._chat_label, self._cancel_transfer)
        self._transfers.show(transfer_id, transfer)

    def reveal_transfer(self, transfer_id: str) -> None:
        if self._transfers is not None:
            self._transfers.reveal(transfer_id)

    # --- what the user does -------------------------------------------------------------------

    def _send_chat(self) -> None:
        entry = self._chat_entry
        if entry.instate(["disabled"]):
            return  # after the end, Return reaches the toplevel's binding and dismisses
        text = entry.get().strip()
        if not text:
            return
        if len(text) > MAX_CHAT_CHARS:
            self._window.set_status(f"A chat message can have at most {MAX_CHAT_CHARS} characters; this one has {len(text)}.")
            return
        if self._window.tell("send_chat", text):
            entry.delete(0, "end")
            self._window.add_chat("You", text)

    def _consent_toggled(self) -> None:
        self._change_consent(frozenset(p for p, (var, _box) in self._ticks.items() if var.get()))

    def _stop_control(self) -> None:
        if self._change_consent(self._window.consented - {Permission.control}):
            self._window.set_status(
                f"Control stopped: {self._window.technician} can no longer use your mouse and keyboard.")

    def _change_consent(self, consented: frozenset[Permission]) -> bool:
        if not self._window.tell("change_consent", consented):
            return False
        # Shown at once; the session confirms with permissions_changed.
        self._window.show_permissions(self._window.granted, consented)
        return True

    def _end_session(self) -> None:
        if self._window.tell("end_session"):
            disable_tree(self._body)
            self._window.set_status("Ending the session…")

    def _cancel_transfer(self, transfer_id: str) -> None:
        row = self._transfers.rows.get(transfer_id) if self._transfers is not None else None
        if self._window.tell("cancel_transfer", transfer_id) and row is not None and row.cancel is not None:
            row.cancel.state(["disabled"])  # once; the row says how it ended when the session reports it
            self._window.set_status(cancelling(self._window.transfers[transfer_id].name))


def _enable(widget: ttk.Widget, enabled: bool) -> None:
    widget.state(["!disabled"] if enabled else ["disabled"])
