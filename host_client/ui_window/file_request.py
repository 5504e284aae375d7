"""The technician asks for a file: a dialog in front of the screen, with the path to send
(the suggestion preselected), Browse…, Send and Decline. Tk thread only."""

from __future__ import annotations

import contextlib
import os
import stat
import tkinter
from collections.abc import Callable
from pathlib import Path
from tkinter import filedialog, ttk
from typing import TYPE_CHECKING

from .layout import TEXT_WIDTH, Answer

if TYPE_CHECKING:
    from .shell import Window

MAX_NOTE_CHARS = 300
"""How much of the technician's note a file request shows."""


def not_sendable(path: Path) -> str | None:
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


def browse_start(*texts: str) -> Path:
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


class FileRequestDialog:
    """Shown in place of the window's screen until answered.

    Answers an existing regular file's path on "Send" (Return), or None on
    "Decline", Escape or the close button; a path that is not a readable
    file gets an inline message and the dialog stays.
    """

    def __init__(self, window: Window, technician: str, suggested_path: str, note: str, answer: Answer) -> None:
        self._window = window
        self.answer = answer
        self._refocus = window.focused()
        self._browsing = False
        window.body.pack_forget()
        dialog = self._frame = ttk.Frame(window.top, padding=12)
        dialog.pack(side="top", fill="both", expand=True)
        self._suggested_path = suggested_path
        ttk.Label(dialog, text=f"{technician} asks for a file", style="Heading.TLabel",
                  wraplength=TEXT_WIDTH).pack(anchor="w")
        if note.strip():
            shown = note.strip() if len(note.strip()) <= MAX_NOTE_CHARS else note.strip()[:MAX_NOTE_CHARS] + "…"
            ttk.Label(dialog, text=shown, wraplength=TEXT_WIDTH).pack(anchor="w", pady=(4, 0))
        ttk.Label(dialog, text="File to send:").pack(anchor="w", pady=(10, 2))
        path_row = ttk.Frame(dialog)
        path_row.pack(fill="x")
        entry = self._entry = ttk.Entry(path_row)
        entry.pack(side="left", fill="x", expand=True)
        entry.insert(0, suggested_path)
        entry.selection_range(0, "end")
        entry.icursor("end")
        ttk.Button(path_row, text="Browse…", command=self._browse).pack(side="left", padx=(4, 0))
        # A label set directly, not through a tkinter StringVar: the dialog can be garbage-collected on the
        # asyncio thread (its answer callback is referenced from there), and a Variable's __del__ then calls
        # into Tcl off the Tk thread while mainloop runs there, which hung the process (seen in CI).
        self._error = ttk.Label(dialog, text="", style="Error.TLabel", wraplength=TEXT_WIDTH)
        self._error.pack(anchor="w", pady=6)
        ttk.Label(dialog, text="Only the file you choose is sent. Return sends, Escape declines.",
                  wraplength=TEXT_WIDTH).pack(anchor="w", pady=(0, 4))
        buttons = ttk.Frame(dialog)
        buttons.pack(anchor="w", pady=6)
        ttk.Button(buttons, text="Send", default="active", command=self._send).pack(side="left")
        ttk.Button(buttons, text="Decline", command=self._decline).pack(side="left", padx=6)
        entry.bind("<Key>", lambda event: self._say("") if event.keysym not in ("Return", "KP_Enter") else None)
        self.keys: dict[str, Callable[[], None] | None] = {
            "return": window.return_key(self._send), "escape": self._decline, "close": self._decline,
        }
        """What Return, Escape and the close button do while the dialog is shown."""
        window.take_focus(entry)

    def close(self) -> None:
        """Remove the dialog (and a file browser it opened) and show the screen again."""
        if self._browsing:
            # Ends the browser's nested loop as its Cancel button would.
            with contextlib.suppress(tkinter.TclError):
                self._window.top.tk.call("set", "::tk::Priv(selectFilePath)", "")
        window = self._window
        if window.dialog is not self:
            return
        self._frame.destroy()
        window.dialog = None
        window.body.pack(side="top", fill="both", expand=True)
        refocus, self._refocus = self._refocus, None
        if refocus is not None:
            with contextlib.suppress(tkinter.TclError):
                if refocus.winfo_exists():
                    refocus.focus_set()

    def _say(self, problem: str) -> None:
        """Show what is wrong with the path (empty: nothing)."""
        self._error.configure(text=problem)

    def _send(self) -> None:
        entry = self._entry
        text = entry.get().strip()
        path = Path(text).expanduser().absolute() if text else None
        problem = "Type the path of the file to send, or choose it with Browse…" if path is None else not_sendable(path)
        if problem is not None:
            self._say(problem)
            entry.selection_range(0, "end")  # typing again replaces the path
            entry.icursor("end")
            entry.focus_set()
            return
        self.close()
        self.answer(path)

    def _decline(self) -> None:
        self.close()
        self.answer(None)

    def _still_shown(self) -> bool:
        return self._window.dialog is self and bool(self._frame.winfo_exists())

    def _browse(self) -> None:
        entry = self._entry
        start = browse_start(entry.get(), self._suggested_path)
        self._browsing = True
        try:
            # Modal: a nested event loop, in which the window keeps updating.
            chosen = filedialog.askopenfilename(parent=self._window.top, title="Choose the file to send",
                                                initialdir=str(start))
        except tkinter.TclError as exc:
            if not self._still_shown():
                return  # the window went while browsing (the Tk thread stopped)
            self._say(f"The file browser failed: {exc}. Type the path instead.")
            return
        finally:
            self._browsing = False
        if not self._still_shown():
            return  # answered or withdrawn meanwhile (the session ended, the window went)
        if isinstance(chosen, str) and chosen:
            entry.delete(0, "end")
            entry.insert(0, chosen)
            self._say("")
        entry.icursor("end")
        entry.focus_set()
