"""The session screen's file transfers: one row each (arrow and name, progress bar, detail, Cancel), in a
scrolling area between the buttons and the chat. Tk thread only, except :func:`progress_text`."""

from __future__ import annotations

import math
import tkinter
from collections.abc import Callable
from dataclasses import dataclass
from tkinter import ttk

from peer.transfer_rate import size_text

TRANSFER_ROWS_SHOWN = 1
"""Transfer rows visible at once; more scroll (row by row), so that the chat log keeps
a few lines at 360x460 even with every permission listed."""

INCOMING, OUTGOING = "⬇", "⬆"
"""Before a transfer's name: a file coming to this computer, or going to the technician."""

SCROLL_TAG = "DeskhandTransfers"
"""A bind tag: the mouse wheel over any part of a transfer row scrolls the rows."""


def cancelling(name: str) -> str:
    """The status line while a transfer is being cancelled."""
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


@dataclass
class Transfer:
    """What a transfer row shows, kept as data so the session screen can (re)build it."""

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


class TransferRow:
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

    def show(self, transfer: Transfer) -> None:
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


class TransferArea:
    """The rows, in a scrolling area placed before ``before`` (the chat); made with the first row."""

    def __init__(self, top: tkinter.Toplevel, body: ttk.Frame, before: tkinter.Misc,
                 on_cancel: Callable[[str], None]) -> None:
        self._top = top
        self._on_cancel = on_cancel
        self.rows: dict[str, TransferRow] = {}
        self._scroll_to_end = False
        section = ttk.Frame(body)
        section.pack(fill="x", pady=(0, 4), before=before)
        background = ttk.Style(top).lookup("TFrame", "background") or None
        canvas = self._canvas = tkinter.Canvas(section, height=1, highlightthickness=0, borderwidth=0,
                                               background=background, takefocus=False)
        self._scroll = ttk.Scrollbar(section, orient="vertical", command=canvas.yview)
        canvas.configure(yscrollcommand=self._scroll.set)
        canvas.pack(side="left", fill="x", expand=True)
        rows = self._list = ttk.Frame(canvas)
        item = canvas.create_window(0, 0, window=rows, anchor="nw")
        canvas.bind("<Configure>", lambda event: canvas.itemconfigure(item, width=event.width))
        rows.bind("<Configure>", lambda _event: self._resized())
        for sequence, step in (("<Button-4>", -1), ("<Button-5>", 1)):
            top.bind_class(SCROLL_TAG, sequence, lambda _event, step=step: self._scroll_by(step))
        top.bind_class(SCROLL_TAG, "<MouseWheel>", lambda event: self._scroll_by(-1 if event.delta > 0 else 1))
        _scrolls(canvas)

    def show(self, transfer_id: str, transfer: Transfer) -> None:
        """Add the transfer's row (scrolled into view) or bring it up to date."""
        row = self.rows.get(transfer_id)
        if row is None:
            row = self.rows[transfer_id] = TransferRow(self._list, lambda: self._on_cancel(transfer_id))
            row.frame.pack(fill="x")
            self._scroll_to_end = True
        row.show(transfer)

    def reveal(self, transfer_id: str) -> None:
        """Scroll to the transfer's row (it just ended: show how)."""
        row = self.rows.get(transfer_id)
        if row is not None and self._list.winfo_height() > 1:
            self._canvas.yview_moveto(row.frame.winfo_y() / self._list.winfo_height())

    def _resized(self) -> None:
        """Fit the area to :data:`TRANSFER_ROWS_SHOWN` rows; a scroll bar when there are more."""
        if not self.rows:
            return
        canvas, scroll, rows = self._canvas, self._scroll, self._list
        height = rows.winfo_reqheight()
        row_height = max(row.frame.winfo_reqheight() for row in self.rows.values())
        limit = row_height * TRANSFER_ROWS_SHOWN
        canvas.configure(scrollregion=(0, 0, rows.winfo_reqwidth(), height), height=min(height, limit),
                         yscrollincrement=row_height)
        if height > limit:
            if not scroll.winfo_ismapped():
                scroll.pack(side="right", fill="y", before=canvas)
        elif scroll.winfo_ismapped():
            scroll.pack_forget()
        if self._scroll_to_end:  # the newest row is the last one: show it
            self._scroll_to_end = False
            canvas.yview_moveto(1.0)

    def _scroll_by(self, step: int) -> None:
        self._canvas.yview_scroll(step, "units")


def _scrolls(widget: tkinter.Misc) -> None:
    """Let the mouse wheel over ``widget`` scroll the transfer rows."""
    widget.bindtags((*widget.bindtags(), SCROLL_TAG))
