"""The consent prompt: what the technician may do, one tick box per offered permission. Tk thread only."""

from __future__ import annotations

import tkinter
from tkinter import ttk
from typing import TYPE_CHECKING

from protocol.permissions import Permission

from ..tk_variables import BooleanVar
from .layout import TEXT_WIDTH, Answer

if TYPE_CHECKING:
    from .shell import Window


def show_consent(window: Window, technician: str, offered: list[Permission], preselected: frozenset[Permission],
                 answer: Answer) -> None:
    """One tick box per offered permission; answers the ticked set, or None."""
    ticks: dict[Permission, tkinter.BooleanVar] = {}

    def allow() -> None:
        chosen = frozenset(p for p, var in ticks.items() if var.get())
        window.show_waiting("Starting the session…")
        answer(chosen)

    body = window.new_body(on_return=allow, on_escape=lambda: window.give_up(answer),
                           on_close=lambda: window.give_up(answer))
    ttk.Label(body, text=f"Allow {technician} to:", style="Heading.TLabel", wraplength=TEXT_WIDTH).pack(
        anchor="w", pady=(0, 6)
    )
    first: ttk.Widget | None = None
    for permission in offered:
        ticks[permission] = BooleanVar(body, permission in preselected)
        box = ttk.Checkbutton(body, text=permission.question, variable=ticks[permission])
        box.pack(anchor="w", pady=1)
        first = first or box
    ttk.Label(body, text="Tab moves, space ticks, Return allows, Escape declines.",
              wraplength=TEXT_WIDTH).pack(anchor="w", pady=(10, 4))
    buttons = ttk.Frame(body)
    buttons.pack(anchor="w", pady=6)
    allow_button = ttk.Button(buttons, text="Allow selected", default="active", command=allow)
    allow_button.pack(side="left")
    ttk.Button(buttons, text="Decline", command=lambda: window.give_up(answer)).pack(side="left", padx=6)
    window.take_focus(first or allow_button)
