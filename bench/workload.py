"""The screen-streaming benchmark's scripted desktop: typing, scrolling, a moving window, stillness.

Run as ``python -m bench.workload`` with ``DISPLAY`` set (Xvfb has no window
manager, so every window is an override-redirect toplevel placed by hand). It
draws, on the whole screen:

* a desktop background (a solid colour, a row of "icons" and a task bar),
* an *editor* window: :data:`EDITOR_LINES` lines of real Python source (this
  machine's ``argparse.py``) in a monospace font, dark on light, with a caret,
* a smaller *notes* window with prose, in front of the editor's right edge,
* the latency marker (:func:`bench.stream_marks.marker_box`) on top of everything.

It reads one command per line on stdin and answers one line (``ok ...`` or
``error <why>``):

``mark``
    paint the next marker colour; answers ``ok <index> <monotonic> <wall>``, the times taken
    after a round trip to the X server (the change is in the framebuffer then)
``phase NAME SECONDS``
    run one phase (NAME: typing, scrolling, moving, static) for SECONDS and answer
    ``ok {json}``: ``{"phase", "start", "end", "start_wall", "end_wall", "ticks",
    "marks": [[index, monotonic, wall], ...]}``. *typing* inserts ~12 characters
    a second at the editor's caret; *scrolling* scrolls the editor one line per
    tick at ~60 ticks a second (bouncing between the ends); *moving* moves the
    notes window ~10 px per tick at ~60 ticks a second (bouncing in a box clear of
    the marker); *static* changes nothing. Every phase but *static* also paints a
    mark every 250 ms +- 50 ms, so latency is measured under each kind of load.
    Mark numbers continue across phases and ``mark`` commands.
``reset``
    put the text, the editor's view and caret, and the notes window back where
    they started (every pipeline sees the same screens); answers ``ok``
``quit``
    exit

The process prints ``ready <width> <height>`` once everything is mapped.
:class:`WorkloadProcess` drives it from the benchmark.
"""

from __future__ import annotations

import argparse as _argparse_module  # its source is the editor's text
import inspect
import json
import random
import sys
import time
import tkinter as tk
from collections.abc import Mapping
from dataclasses import dataclass

from bench.stream_marks import Mark, marker_box, marker_colour
from tests.support.line_child import LineChild, serve_lines

PHASES = ("typing", "scrolling", "moving", "static")
TYPING_RATE = 12.0
"""Characters per second in the typing phase (a fast human)."""
TICK_RATE = 60.0
"""Ticks per second in the scrolling and moving phases."""
MOVE_STEP = 10
"""Pixels the notes window moves per tick."""
MARK_INTERVAL = 0.25
MARK_JITTER = 0.05
"""Marks come every MARK_INTERVAL +- MARK_JITTER seconds (uniform), never in step with the ticks."""
EDITOR_LINES = 600
"""Lines of source text in the editor."""
MAX_PHASE_SECONDS = 3600.0

EDITOR_BOX = (60, 40, 1180, 960)
"""The editor window's (left, top, right, bottom)."""
NOTES_SIZE = (520, 360)
NOTES_START = (1100, 120)
NOTES_AREA = (0, 0, 1840, 1000)
"""The box the moving notes window stays in: clear of the marker, whatever the screen."""
TYPED = (
    "# The quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs. "
    "value = compute(alpha, beta) * 2 + offset  # check this before the release\n"
)
NOTES_TEXT = (
    "Meeting notes\n\n"
    "- The printer on the second floor jams on duplex jobs.\n"
    "- Ask Ann to send the error code shown on its panel.\n"
    "- Spreadsheet macros are blocked by the new policy; the finance team\n"
    "  needs an exception before the quarter closes.\n"
    "- VPN drops every 20 minutes at home: try the wired connection first,\n"
    "  then collect the client log from the tray icon.\n\n"
    "Next call: Thursday 10:30, bring the laptop's serial number."
)


def editor_text() -> str:
    """The editor's text: the first :data:`EDITOR_LINES` lines of ``argparse.py``, repeated if short."""
    lines = inspect.getsource(_argparse_module).splitlines()
    while len(lines) < EDITOR_LINES:
        lines = lines + lines
    return "\n".join(lines[:EDITOR_LINES]) + "\n"


def _hex(colour: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour)


@dataclass
class PhaseResult:
    """What one phase did, as the workload reports it."""

    phase: str
    start: float
    end: float
    start_wall: float
    end_wall: float
    ticks: int
    marks: list[Mark]

    @classmethod
    def from_json(cls, text: str) -> PhaseResult:
        data = json.loads(text)
        return cls(
            phase=data["phase"], start=data["start"], end=data["end"], start_wall=data["start_wall"],
            end_wall=data["end_wall"], ticks=data["ticks"], marks=[Mark(int(i), m, w) for i, m, w in data["marks"]],
        )


class Workload:
    """The Tk side: the desktop, its windows, and what each phase does to them."""

    def __init__(self) -> None:
        self.root = tk.Tk()
        self.width, self.height = self.root.winfo_screenwidth(), self.root.winfo_screenheight()
        self.root.overrideredirect(True)
        self.root.geometry(f"{self.width}x{self.height}+0+0")
        self._desktop()
        self.root.update()  # map the desktop first: without a window manager, later maps stack above it
        self.text = editor_text()
        self.editor = self._editor()
        self.notes = self._notes()
        self.root.update()
        self.notes.lift()  # in front of the editor, whatever order the two were mapped in
        self.marker = self._marker()
        self.mark_index = 0
        self._typed = 0
        self._scroll_direction = 1
        self._move = [MOVE_STEP, MOVE_STEP // 2]
        self._rng = random.Random(9)  # the same jitter sequence for every run
        self.reset()

    # --- building the screen ----------------------------------------------------------

    def _desktop(self) -> None:
        canvas = tk.Canvas(self.root, width=self.width, height=self.height, highlightthickness=0, bd=0,
                           background="#2f5d7c")
        canvas.pack()
        for i in range(6):
            y = 60 + i * 110
            canvas.create_rectangle(self.width - 120, y, self.width - 64, y + 56, fill="#d9d2c5", outline="#1d3b4f")
            canvas.create_text(self.width - 92, y + 72, text=f"file{i + 1}.txt", fill="white",
                               font=("DejaVu Sans", 9))
        canvas.create_rectangle(0, self.height - 36, self.width, self.height, fill="#20262e", outline="")
        canvas.create_text(60, self.height - 18, text="Start", fill="white", font=("DejaVu Sans", 11, "bold"))

    def _window(self, left: int, top: int, width: int, height: int, title: str) -> tuple[tk.Toplevel, tk.Frame]:
        window = tk.Toplevel(self.root)
        window.overrideredirect(True)
        window.geometry(f"{width}x{height}+{left}+{top}")
        bar = tk.Label(window, text=title, anchor="w", padx=8, background="#3c4a5c", foreground="white",
                       font=("DejaVu Sans", 10, "bold"))
        bar.pack(fill="x")
        body = tk.Frame(window, background="#f4f4f0")
        body.pack(fill="both", expand=True)
        return window, body

    def _editor(self) -> tk.Text:
        left, top, right, bottom = EDITOR_BOX
        _window, body = self._window(left, top, right - left, bottom - top, "argparse.py - Editor")
        text = tk.Text(body, font=("DejaVu Sans Mono", 11), background="#fbfbf8", foreground="#1e1e1e",
                       insertbackground="#000000", insertofftime=0, wrap="none", bd=0, padx=6,
                       highlightthickness=0)
        text.pack(fill="both", expand=True)
        return text

    def _notes(self) -> tk.Toplevel:
        window, body = self._window(*NOTES_START, *NOTES_SIZE, "Notes")
        tk.Label(body, text=NOTES_TEXT, justify="left", anchor="nw", background="#fff8dc", foreground="#222222",
                 font=("DejaVu Sans", 11), padx=10, pady=10).pack(fill="both", expand=True)
        return window

    def _marker(self) -> tk.Toplevel:
        left, top, right, bottom = marker_box(self.width, self.height)
        marker = tk.Toplevel(self.root, background=_hex(marker_colour(0)))
        marker.overrideredirect(True)
        marker.geometry(f"{right - left}x{bottom - top}+{left}+{top}")
        self.root.update()
        marker.lift()  # mapped last and raised: above every other window
        return marker

    # --- commands ---------------------------------------------------------------------

    def settle(self) -> tuple[float, float]:
        """Flush drawing to the X server and wait for it (a round trip); return (monotonic, wall)."""
        self.root.update()
        self.root.winfo_pointerxy()
        return time.monotonic(), time.time()

    def mark(self) -> Mark:
        """Paint the next marker colour; when it is in the framebuffer."""
        index = self.mark_index
        self.mark_index += 1
        self.marker.configure(background=_hex(marker_colour(index)))
        painted, wall = self.settle()
        return Mark(index, painted, wall)

    def reset(self) -> None:
        self.editor.delete("1.0", "end")
        self.editor.insert("1.0", self.text)
        self.editor.mark_set("insert", "12.0")
        self.editor.yview_moveto(0.0)
        self.editor.focus_force()
        self.notes.geometry(f"+{NOTES_START[0]}+{NOTES_START[1]}")
        self._typed = 0
        self._scroll_direction = 1
        self._move = [MOVE_STEP, MOVE_STEP // 2]
        self.marker.lift()
        self.settle()

    def _type(self) -> None:
        self.editor.insert("insert", TYPED[self._typed % len(TYPED)])
        self.editor.see("insert")
        self._typed += 1

    def _scroll(self) -> None:
        first, last = self.editor.yview()
        if (self._scroll_direction > 0 and last >= 1.0) or (self._scroll_direction < 0 and first <= 0.0):
            self._scroll_direction = -self._scroll_direction
        self.editor.yview_scroll(self._scroll_direction, "units")

    def _move_notes(self) -> None:
        x, y = self.notes.winfo_x(), self.notes.winfo_y()
        left, top, right, bottom = NOTES_AREA
        for axis, (pos, low, high) in enumerate(((x, left, right - NOTES_SIZE[0]), (y, top, bottom - NOTES_SIZE[1]))):
            if not low <= pos + self._move[axis] <= high:
                self._move[axis] = -self._move[axis]
        self.notes.geometry(f"+{x + self._move[0]}+{y + self._move[1]}")

    def phase(self, name: str, seconds: float) -> dict[str, object]:
        """Run phase ``name`` for ``seconds``; the report described in the module docstring."""
        action = {"typing": self._type, "scrolling": self._scroll, "moving": self._move_notes, "static": None}[name]
        rate = TYPING_RATE if name == "typing" else TICK_RATE
        marks: list[Mark] = []
        ticks = 0
        start, start_wall = self.settle()
        end_at = start + seconds
        next_tick = start + 1 / rate
        next_mark = start + self._mark_gap() if action is not None else float("inf")
        while True:
            now = time.monotonic()
            if now >= end_at:
                break
            if action is None:
                time.sleep(min(0.5, end_at - now))
                continue
            wait = min(next_tick, next_mark, end_at) - now
            if wait > 0:
                time.sleep(wait)
                continue
            if now >= next_tick:
                action()
                ticks += 1
                self.root.update()
                # Skip ticks missed while the X server was busy rather than burst to catch up.
                next_tick = max(next_tick + 1 / rate, now)
            if time.monotonic() >= next_mark:
                marks.append(self.mark())
                next_mark += self._mark_gap()
        end, end_wall = self.settle()
        return {
            "phase": name, "start": start, "end": end, "start_wall": start_wall, "end_wall": end_wall,
            "ticks": ticks, "marks": [[m.index, m.painted, m.painted_wall] for m in marks],
        }

    def _mark_gap(self) -> float:
        return MARK_INTERVAL + self._rng.uniform(-MARK_JITTER, MARK_JITTER)


def parse_phase(argument: str) -> tuple[str, float]:
    """``NAME SECONDS`` of a ``phase`` command, checked."""
    parts = argument.split()
    if len(parts) != 2:
        raise ValueError(f"phase needs NAME SECONDS, got {argument!r}")
    name, seconds_text = parts
    if name not in PHASES:
        raise ValueError(f"phase {name!r} is not one of {', '.join(PHASES)}")
    try:
        seconds = float(seconds_text)
    except ValueError:
        raise ValueError(f"phase seconds {seconds_text!r} is not a number") from None
    if not 0 < seconds <= MAX_PHASE_SECONDS:
        raise ValueError(f"phase seconds must be above 0 and at most {MAX_PHASE_SECONDS:g}, not {seconds_text}")
    return name, seconds


class WorkloadProcess(LineChild):
    """Drives a workload in a child process on the display given in ``env``. Blocking: call from a thread."""

    def __init__(self, env: Mapping[str, str], timeout: float = 30.0) -> None:
        super().__init__("bench.workload", env, timeout)
        self.width, self.height = (int(v) for v in self.ready_args)

    def mark(self) -> Mark:
        index, painted, wall = self.command("mark").split()
        return Mark(int(index), float(painted), float(wall))

    def phase(self, name: str, seconds: float) -> PhaseResult:
        if name not in PHASES:
            raise ValueError(f"phase {name!r} is not one of {', '.join(PHASES)}")
        return PhaseResult.from_json(self.command(f"phase {name} {seconds:g}"))

    def reset(self) -> None:
        self.command("reset")


def main() -> int:
    workload = Workload()

    def mark(_: str) -> str:
        done = workload.mark()
        return f"{done.index} {done.painted:.6f} {done.painted_wall:.6f}"

    def reset(_: str) -> str:
        workload.reset()
        return ""

    serve_lines(
        f"{workload.width} {workload.height}",
        {"mark": mark, "phase": lambda argument: json.dumps(workload.phase(*parse_phase(argument))), "reset": reset},
    )
    workload.root.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
