"""Tk variables that may be collected in any thread.

A ``tkinter.Variable`` unsets its Tcl variable in ``__del__``, a call into the
interpreter. Made in the Tk thread but collected in another one (the asyncio
thread dropping the last callback that held a dialog), that call ran while the
Tk thread sat in ``mainloop`` and hung the process inside Tcl. These variables
remember the thread that made them; collected anywhere else, they hand their
release to that thread (:func:`host_client.tk_thread.release_in_tk_thread`).
The window's screens use these instead of tkinter's own.
"""

from __future__ import annotations

import threading
import tkinter
from typing import Any

from .tk_thread import release_in_tk_thread


class _ReleasedInItsThread(tkinter.Variable):
    """A ``tkinter.Variable`` whose ``__del__`` runs in the thread that made it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._made_in = threading.get_ident()

    def __del__(self) -> None:
        made_in = getattr(self, "_made_in", None)  # absent when __init__ failed
        if made_in is None or made_in == threading.get_ident():
            super().__del__()
            return
        # The bound method keeps this object alive until the Tk thread runs it;
        # Python calls a finalizer once, so it is not called again when freed there.
        release_in_tk_thread(made_in, super().__del__)


class StringVar(_ReleasedInItsThread, tkinter.StringVar):
    """``tkinter.StringVar``, released in the Tk thread whichever thread collects it."""


class BooleanVar(_ReleasedInItsThread, tkinter.BooleanVar):
    """``tkinter.BooleanVar``, released in the Tk thread whichever thread collects it."""


class IntVar(_ReleasedInItsThread, tkinter.IntVar):
    """``tkinter.IntVar``, released in the Tk thread whichever thread collects it."""
