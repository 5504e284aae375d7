"""Before a session: the support code prompt, asking the help desk without a code, and the
place in the queue while a help request waits. Tk thread only."""

from __future__ import annotations

import tkinter
from tkinter import ttk
from typing import TYPE_CHECKING

from pydantic import ValidationError

from protocol.codes import CodeFormatError, parse_join_target

from ..help_request import FORM_LABELS, describe_problems, help_request_body
from ..tk_variables import StringVar
from ..ui import LINK_NEEDED
from .layout import TEXT_WIDTH, Answer

if TYPE_CHECKING:
    from .shell import Window


def show_code(window: Window, link_needed: bool, answer: Answer) -> None:
    """The support code prompt; answers the code or join link given (a :class:`~protocol.codes.JoinTarget`),
    or None (or the help request, see :func:`show_help_request`). ``link_needed``: only a join link
    will do (no broker address is known)."""

    def refuse(why: str) -> None:
        error.set(_sentence(why) + ".")
        # Selected, so that typing again replaces the wrong code.
        entry.selection_range(0, "end")
        entry.icursor("end")
        entry.focus_set()

    def submit() -> None:
        try:
            target = parse_join_target(entry.get())
        except CodeFormatError as exc:
            refuse(str(exc))
            return
        if link_needed and target.broker is None:
            refuse(LINK_NEEDED)
            return
        window.show_waiting("Joining the session…")
        answer(target)

    body = window.new_body(on_return=submit, on_escape=lambda: window.give_up(answer),
                           on_close=lambda: window.give_up(answer))
    error = StringVar(body)
    ttk.Label(body, text="Support code", style="Heading.TLabel").pack(anchor="w")
    ask = ("Paste the link your technician sent you, then press Return." if link_needed else
           "Type the 9 digits your technician read to you, or paste the link they sent, then press Return.")
    ttk.Label(body, text=ask, wraplength=TEXT_WIDTH).pack(anchor="w", pady=(2, 8))
    entry = ttk.Entry(body, font=("Courier", 18), width=13)
    entry.pack(anchor="w")
    ttk.Label(body, textvariable=error, style="Error.TLabel", wraplength=TEXT_WIDTH).pack(anchor="w", pady=6)
    buttons = ttk.Frame(body)
    buttons.pack(anchor="w", pady=6)
    ttk.Button(buttons, text="Join", default="active", command=submit).pack(side="left")
    ttk.Button(buttons, text="Cancel", command=lambda: window.give_up(answer)).pack(side="left", padx=6)
    if not link_needed:  # asking the help desk needs its address too
        ttk.Button(body, text="No code? Ask for help", command=lambda: show_help_request(window, answer)).pack(
            anchor="w", pady=(12, 0))
    entry.bind("<Key>", lambda event: error.set("") if event.keysym not in ("Return", "KP_Enter") else None)
    window.take_focus(entry)


def show_help_request(window: Window, answer: Answer) -> None:
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
        window.show_waiting("Asking for help…")
        answer(request)

    body = window.new_body(on_return=submit, on_escape=lambda: show_code(window, False, answer),
                           on_close=lambda: window.give_up(answer))
    ttk.Label(body, text="Ask the help desk", style="Heading.TLabel").pack(anchor="w")
    ttk.Label(body, text="Your request waits in the help desk's queue until a technician picks it up.",
              wraplength=TEXT_WIDTH).pack(anchor="w", pady=(2, 6))
    fields: dict[str, ttk.Entry] = {}
    for name, label in (("name", "Your name"), ("summary", "What is wrong (one line)"),
                        ("email", "Your email (optional)")):
        ttk.Label(body, text=label).pack(anchor="w")
        fields[name] = ttk.Entry(body, width=36)
        fields[name].pack(anchor="w", fill="x", pady=(0, 4))
    ttk.Label(body, text="Details (optional)").pack(anchor="w")
    details = tkinter.Text(body, height=3, width=36, wrap="word")
    details.pack(anchor="w", fill="x")
    error = StringVar(body)
    ttk.Label(body, textvariable=error, style="Error.TLabel", wraplength=TEXT_WIDTH).pack(anchor="w", pady=4)
    buttons = ttk.Frame(body)
    buttons.pack(anchor="w", pady=4)
    ttk.Button(buttons, text="Ask for help", default="active", command=submit).pack(side="left")
    ttk.Button(buttons, text="Back", command=lambda: show_code(window, False, answer)).pack(side="left", padx=6)
    window.take_focus(fields["name"])


def show_queue_position(window: Window, position: int) -> None:
    """The help request waits: the place in the queue, and "Withdraw request" (also Escape or close)."""
    withdraw = window.owner._user_withdrew
    body = window.new_body(on_return=None, on_escape=withdraw, on_close=withdraw)
    ttk.Label(body, text="Waiting for a technician…", style="Heading.TLabel").pack(anchor="w")
    place = "You are next." if position == 1 else f"You are number {position} in the queue."
    ttk.Label(body, text=place + " The technician will ask what they may do before anything happens.",
              wraplength=TEXT_WIDTH).pack(anchor="w", pady=(6, 10))
    ttk.Button(body, text="Withdraw request", command=withdraw).pack(anchor="w")


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]
