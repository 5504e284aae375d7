"""The host's clipboard text, for the technician's clipboard permission.

:class:`TkClipboard` reads and sets the X ``CLIPBOARD`` selection through Tk.
On X11 a clipboard has no storage of its own: the program that set it keeps
answering other programs' requests for it, so the text stays available only
while the :class:`~host_client.tk_thread.TkThread` runs (or until a clipboard
manager takes it over). :class:`NoClipboard` stands in on machines without a
display.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from protocol.channel import MAX_CLIPBOARD_CHARS

from .tk_thread import TkThread

if TYPE_CHECKING:
    import tkinter

log = logging.getLogger(__name__)


def check_clipboard_size(text: str) -> None:
    """Raise :class:`ValueError` when ``text`` is longer than the protocol lets a clipboard be."""
    if len(text) > MAX_CLIPBOARD_CHARS:
        raise ValueError(
            f"clipboard text has {len(text)} characters; at most {MAX_CLIPBOARD_CHARS} can be set"
        )


class TkClipboard:
    """:class:`~host_client.ui.Clipboard` over Tk's clipboard, in ``tk_thread``.

    Both methods raise :class:`~host_client.tk_thread.TkStopped` once the
    thread has stopped (the window closed at the end of the session).
    """

    def __init__(self, tk_thread: TkThread) -> None:
        """Use ``tk_thread`` (usually the window's) for every clipboard access."""
        self._tk = tk_thread

    async def read(self) -> str | None:
        """The clipboard text, or None when the clipboard is empty or holds no text."""
        return await self._tk.acall(_read)

    async def write(self, text: str) -> None:
        """Own the clipboard with ``text``; :class:`ValueError` when it is too long."""
        check_clipboard_size(text)
        await self._tk.acall(_write, text)


def _read(root: tkinter.Tk) -> str | None:
    import tkinter

    try:
        # Tk asks the owner for UTF8_STRING first, so non-ASCII text survives.
        return root.clipboard_get()
    except tkinter.TclError:  # nobody owns CLIPBOARD, or the owner offers no text
        return None


def _write(root: tkinter.Tk, text: str) -> None:
    root.clipboard_clear()
    root.clipboard_append(text)


class NoClipboard:
    """:class:`~host_client.ui.Clipboard` for a machine without a display: always empty."""

    def __init__(self, reason: str = "no display") -> None:
        """``reason`` says why there is no clipboard, once, in the log."""
        self._reason = reason
        self._warned = False

    async def read(self) -> str | None:
        """Always None: there is no clipboard to read."""
        return None

    async def write(self, text: str) -> None:
        """Check the size like a real clipboard would, then drop the text (logged once)."""
        check_clipboard_size(text)
        if not self._warned:
            self._warned = True
            log.warning("clipboard text from the technician is dropped: %s", self._reason)
