"""What every screen of the host window shares: its title, size, colours, how a prompt is answered,
and how a screen is frozen."""

from __future__ import annotations

import tkinter
from collections.abc import Callable, Iterable
from tkinter import ttk
from typing import Any

TITLE = "Deskhand remote support"
"""The window's title (what ``xdotool search --name`` finds)."""

WIDTH, HEIGHT = 360, 460
MARGIN = 16
"""Pixels between the window and the screen's top-right corner."""
TEXT_WIDTH = WIDTH - 40
"""Where a screen's text wraps."""

ERROR_COLOUR = "#c00000"
DONE_COLOUR = "#1a7f37"

Answer = Callable[[Any], None]
"""Settles a prompt with a value; safe to call from the Tk thread."""


def disable_tree(widget: tkinter.Misc) -> None:
    """Disable every input inside ``widget`` (the chat log is read-only already)."""
    children: Iterable[tkinter.Misc] = widget.winfo_children()
    for child in children:
        if isinstance(child, ttk.Widget) and not isinstance(child, (ttk.Frame, ttk.Label, ttk.Scrollbar)):
            child.state(["disabled"])
        disable_tree(child)
