"""A full-screen Tk window that paints what it is told, for e2e tests and benchmarks.

Run as ``python -m tests.support.screen_painter`` with ``DISPLAY`` set. It reads
one command per line on stdin and answers one line on stdout:

``pattern``
    paint :data:`PATTERN` (a grid of solid colours); answers ``ok <t>``
``fill RRGGBB``
    fill the whole screen with one colour; answers ``ok <t>``
``text LINE|LINE|...``
    black monospace text on white, the lines from the top left; answers ``ok <t>``
``quit``
    exit

``<t>`` is ``time.monotonic()`` taken after a round trip to the X server, so
the change is in the framebuffer by then. ``CLOCK_MONOTONIC`` is shared by all
processes of a Linux machine, so a receiver in another process can subtract it
from its own arrival times.

The process prints ``ready <width> <height>`` once its window is mapped.
"""

from __future__ import annotations

import sys
import time
import tkinter as tk
from collections.abc import Mapping

from tests.support.line_child import LineChild, serve_lines

PATTERN_COLUMNS = 4
PATTERN_ROWS = 2
PATTERN: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200),
    (245, 130, 48), (145, 30, 180), (70, 240, 240), (240, 50, 230),
)
"""Row-major colours of the test pattern's cells (the first row, then the second)."""


def pattern_cell_centres(width: int, height: int) -> list[tuple[int, int, tuple[int, int, int]]]:
    """Each cell's centre pixel and the colour painted there."""
    cell_w, cell_h = width // PATTERN_COLUMNS, height // PATTERN_ROWS
    return [
        ((i % PATTERN_COLUMNS) * cell_w + cell_w // 2, (i // PATTERN_COLUMNS) * cell_h + cell_h // 2, colour)
        for i, colour in enumerate(PATTERN)
    ]


def _hex(colour: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour)


TEXT_FONT = ("DejaVu Sans Mono", 14)
"""An editor's font and size: what a technician must read."""


class Painter:
    def __init__(self) -> None:
        self.root = tk.Tk()
        self.width = self.root.winfo_screenwidth()
        self.height = self.root.winfo_screenheight()
        self.root.overrideredirect(True)
        self.root.geometry(f"{self.width}x{self.height}+0+0")
        self.canvas = tk.Canvas(self.root, width=self.width, height=self.height, highlightthickness=0, bd=0)
        self.canvas.pack()
        self.root.update()

    def settle(self) -> float:
        self.root.update()
        self.root.winfo_pointerxy()  # a round trip: the server has drawn everything before it
        return time.monotonic()

    def fill(self, colour: tuple[int, int, int]) -> float:
        self.canvas.delete("all")
        self.canvas.configure(background=_hex(colour))
        self.canvas.create_rectangle(0, 0, self.width, self.height, fill=_hex(colour), outline="")
        return self.settle()

    def text(self, lines: str) -> float:
        self.canvas.delete("all")
        self.canvas.configure(background="white")
        self.canvas.create_rectangle(0, 0, self.width, self.height, fill="white", outline="")
        self.canvas.create_text(8, 8, anchor="nw", text=lines.replace("|", "\n"), fill="black", font=TEXT_FONT)
        return self.settle()

    def pattern(self) -> float:
        self.canvas.delete("all")
        cell_w, cell_h = self.width // PATTERN_COLUMNS, self.height // PATTERN_ROWS
        for i, colour in enumerate(PATTERN):
            x, y = (i % PATTERN_COLUMNS) * cell_w, (i // PATTERN_COLUMNS) * cell_h
            self.canvas.create_rectangle(x, y, x + cell_w, y + cell_h, fill=_hex(colour), outline="")
        return self.settle()


def parse_colour(text: str) -> tuple[int, int, int]:
    text = text.strip().lstrip("#")
    if len(text) != 6:
        raise ValueError(f"colour {text!r} is not RRGGBB")
    return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)


class PainterProcess(LineChild):
    """Drives a painter in a child process on the display given in ``env``."""

    def __init__(self, env: Mapping[str, str], timeout: float = 20.0) -> None:
        super().__init__("tests.support.screen_painter", env, timeout)
        self.width, self.height = (int(v) for v in self.ready_args)

    def pattern(self) -> float:
        """Paint :data:`PATTERN`; returns the monotonic time it was on screen."""
        return float(self.command("pattern"))

    def text(self, lines: list[str]) -> float:
        """Black text on white, one entry a line (no ``|``); returns the monotonic time it was on screen."""
        return float(self.command("text " + "|".join(lines)))

    def fill(self, colour: tuple[int, int, int]) -> float:
        """Fill the screen; returns the monotonic time it was on screen."""
        return float(self.command("fill " + _hex(colour).lstrip("#")))


def main() -> int:
    painter = Painter()
    serve_lines(
        f"{painter.width} {painter.height}",
        {
            "pattern": lambda _: f"{painter.pattern():.6f}",
            "fill": lambda argument: f"{painter.fill(parse_colour(argument)):.6f}",
            "text": lambda argument: f"{painter.text(argument):.6f}",
        },
    )
    painter.root.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
