"""The end user's side in a small Tk window at the top-right of the screen.

One window, its screens in turn: the support code (or a help request and the
place in the queue), the consent prompt, then the session (who is connected,
what they may do, Stop control, End session, file transfers, chat), and after
the end the survey. A status line at the bottom shows notices at any time. When
the technician asks for a file, a dialog takes the screen's place until the user
sends a file or declines; further requests wait their turn. Everything works
from the keyboard: Tab moves, space ticks, Return does the obvious thing, Escape declines.

Two halves, one per thread:

* :class:`~host_client.ui_window.window_ui.WindowUI` is the :class:`~host_client.ui.HostUI`
  the session calls from its asyncio thread. It never touches Tk; it hands work to the
  :class:`~host_client.tk_thread.TkThread`.
* :class:`~host_client.ui_window.shell.Window` owns the widgets and lives only in the Tk
  thread: the toplevel, the status line, which screen is shown and what Return, Escape
  and the close button do. Each screen is a module: ``code_prompt`` (the code, asking for
  help, waiting in the queue), ``consent``, ``session_screen`` (permissions, chat and
  ``transfer_rows``), ``file_request`` (the dialog) and ``survey``. What the user does
  goes back to the asyncio loop with ``loop.call_soon_threadsafe``.
"""

from .layout import TITLE
from .transfer_rows import progress_text
from .window_ui import TECHNICIAN_GONE, WindowUI

__all__ = ["TECHNICIAN_GONE", "TITLE", "WindowUI", "progress_text"]
