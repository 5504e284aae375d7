"""One Tk interpreter in one dedicated thread, usable from any other thread.

Tk is not thread-safe, and tkinter objects must also *die* in the thread that
made their interpreter: dropping the last reference to a widget or variable in
another thread aborts the process ("Tcl_AsyncDelete: async handler deleted by
the wrong thread"). So everything Tk lives in :class:`TkThread`'s thread:

* other threads hand it work with :meth:`TkThread.call` (a
  :class:`concurrent.futures.Future`) or :meth:`TkThread.acall` (awaitable);
  the Tk thread picks work up from a queue every :data:`POLL_MS` milliseconds
  while there is work about, every :data:`IDLE_POLL_MS` once it has been idle
  for a second (50 wake-ups a second cost an idle host ~1 % of a core);
* whoever keeps Tk objects between calls registers a hook with
  :meth:`TkThread.on_stop`, which runs in the Tk thread before the root is
  destroyed, so the objects are dropped there;
* results of :meth:`~TkThread.call` must be plain data, never Tk objects;
* a Tk variable may still end up collected elsewhere (a callback handed to
  asyncio keeps a dialog, and the dialog its variable): the variables of
  :mod:`host_client.tk_variables` then hand their release back here with
  :func:`release_in_tk_thread`, which :meth:`TkThread._poll` runs.

Usage::

    tk = TkThread.start(withdrawn=True)      # raises TkUnavailable without a display
    title = await tk.acall(lambda root: root.title())
    tk.stop()
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import gc
import logging
import os
import queue
import threading
import traceback
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import tkinter

log = logging.getLogger(__name__)

POLL_MS = 20
"""How often the Tk thread looks for work from other threads while busy, in milliseconds."""
IDLE_POLL_MS = 100
"""How often it looks once nothing came for :data:`IDLE_AFTER_POLLS` polls."""
IDLE_AFTER_POLLS = 50

START_TIMEOUT = 15.0
"""Seconds :meth:`TkThread.start` waits for Tk to open the display."""

STOP_TIMEOUT = 5.0
"""Seconds :meth:`TkThread.stop` waits for the Tk thread to finish."""

T = TypeVar("T")

_STOP = object()  # queue sentinel: leave the main loop

_releases: dict[int, queue.SimpleQueue[Callable[[], None]]] = {}
"""Per running Tk thread (by thread ident): releases of Tk objects collected in other threads."""
_releases_lock = threading.Lock()
_graveyard: list[Callable[[], None]] = []
"""Releases whose Tk thread had already ended: kept (never run, never freed) rather than freed in the wrong thread."""


def release_in_tk_thread(tk_thread_ident: int, release: Callable[[], None]) -> None:
    """Run ``release()`` in the Tk thread ``tk_thread_ident`` at its next poll.

    Called from a ``__del__`` in another thread. ``release`` keeps the object
    alive until then, so it is freed in the right thread. Once that thread has
    ended the object is kept for the rest of the process instead: its
    interpreter is gone and freeing it here could abort the process.
    """
    with _releases_lock:
        pending = _releases.get(tk_thread_ident)
        if pending is None:
            _graveyard.append(release)
        else:
            pending.put(release)


class TkUnavailable(RuntimeError):
    """Tk cannot run here (no tkinter, or no display); the message names the fix."""


class TkStopped(RuntimeError):
    """Work was handed to a :class:`TkThread` that has stopped."""


class TkThread:
    """A Tk root and its main loop in one daemon thread; see the module docstring."""

    def __init__(self) -> None:
        """Use :meth:`start`; a bare instance has no thread."""
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._stopping = False
        self._hooks: list[Callable[[tkinter.Tk], None]] = []
        self._thread: threading.Thread | None = None
        self._idle_polls = 0

    @classmethod
    def start(cls, *, withdrawn: bool, timeout: float = START_TIMEOUT) -> TkThread:
        """Start the thread, open the display and return once Tk is ready.

        ``withdrawn`` hides the root window (useful when the root only owns the
        clipboard and real windows are ``Toplevel`` children). Raises
        :class:`TkUnavailable` when tkinter is missing or the display cannot be opened.
        """
        try:
            import tkinter  # noqa: F401 - only to fail early with a useful message
        except ImportError as exc:
            raise TkUnavailable(
                f"tkinter is not available ({exc}): install it (apt-get install python3-tk) "
                "or use --ui terminal"
            ) from exc
        self = cls()
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, args=(withdrawn, ready), name="deskhand-tk", daemon=True)
        self._thread.start()
        try:
            ready.result(timeout)
        except concurrent.futures.TimeoutError:
            self.stop()
            raise TkUnavailable(
                f"Tk did not open the display {os.environ.get('DISPLAY', '')!r} within {timeout:g} s: "
                "check that the X server answers, or use --ui terminal"
            ) from None
        except Exception as exc:  # TclError: Tk could not open the display
            raise TkUnavailable(_display_advice(str(exc))) from exc
        _running.add(self)
        return self

    @property
    def running(self) -> bool:
        """True until :meth:`stop` is called or the Tk root goes away."""
        return not self._stopping and self._thread is not None and self._thread.is_alive()

    def in_tk_thread(self) -> bool:
        """True when called from this object's Tk thread."""
        return threading.current_thread() is self._thread

    def call(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        """Run ``fn(root, *args)`` in the Tk thread; the future holds its result or exception.

        ``fn`` must not return Tk objects (they would then die in the wrong
        thread). Raises :class:`TkStopped` once the thread is stopping.
        """
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:  # so nothing is queued after the teardown drained the queue
            if self._stopping:
                raise TkStopped("the Tk thread has stopped: the window is closed")
            self._queue.put((fn, args, future))
        return future

    async def acall(self, fn: Callable[..., T], *args: Any) -> T:
        """:meth:`call` for asyncio: await ``fn(root, *args)`` run in the Tk thread."""
        return await asyncio.wrap_future(self.call(fn, *args))

    def on_stop(self, hook: Callable[[tkinter.Tk], None]) -> None:
        """Run ``hook(root)`` in the Tk thread when it stops, before the root is destroyed.

        Drop every Tk object you keep (widgets, variables) in the hook.
        """
        with self._lock:
            self._hooks.append(hook)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Leave the main loop, run the :meth:`on_stop` hooks, destroy the root, join the thread.

        Idempotent. From the Tk thread itself it only asks the loop to end
        (a thread cannot join itself).
        """
        with self._lock:
            if not self._stopping:
                self._stopping = True
                self._queue.put(_STOP)
        _running.discard(self)
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return
        thread.join(timeout)
        if thread.is_alive():
            log.warning("the Tk thread did not finish within %g s", timeout)

    # --- the Tk thread ----------------------------------------------------------------

    def _run(self, withdrawn: bool, ready: concurrent.futures.Future[None]) -> None:
        import tkinter

        try:
            root = tkinter.Tk()
        except Exception as exc:  # noqa: BLE001 - whatever stops Tk starting goes to the waiting caller
            ready.set_exception(_without_frames(exc))
            return
        with _releases_lock:
            _releases[threading.get_ident()] = queue.SimpleQueue()
        try:
            root.report_callback_exception = _log_callback_exception
            if withdrawn:
                root.withdraw()
            root.after(POLL_MS, self._poll, root)
            ready.set_result(None)
            root.mainloop()
        finally:
            self._teardown(root)
            _run_releases(_releases_of_this_thread(remove=True))
            del root
            # Widgets form reference cycles (parent.children <-> child.master):
            # collect them here, in the thread that must free them.
            gc.collect()

    def _poll(self, root: tkinter.Tk) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            self._idle_polls = 0
            if item is _STOP:
                # The hooks run here rather than after the loop: a modal dialog (a file
                # browser) runs a nested loop that root.quit() does not end, but
                # destroying the window it belongs to does.
                self._run_hooks(root)
                root.quit()
                return  # not rescheduled: the loop is ending
            fn, args, future = item
            _execute(future, fn, root, *args)
        _run_releases(_releases_of_this_thread(remove=False))
        self._idle_polls += 1
        root.after(IDLE_POLL_MS if self._idle_polls > IDLE_AFTER_POLLS else POLL_MS, self._poll, root)

    def _teardown(self, root: tkinter.Tk) -> None:
        import tkinter

        with self._lock:
            self._stopping = True  # also when the root was destroyed by someone else
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            # An exception rather than cancel(): a cancelled future would surface in
            # an awaiting coroutine as if that coroutine itself had been cancelled.
            if item is not _STOP and item[2].set_running_or_notify_cancel():
                item[2].set_exception(TkStopped("the Tk thread stopped before running this"))
        self._run_hooks(root)  # those not run yet: the root may have gone without stop()
        try:
            # Give up the clipboard: destroying the root keeps the X connection (and a
            # claim nobody serves any more) for as long as this process lives.
            root.tk.call("selection", "clear", "-selection", "CLIPBOARD")
        except tkinter.TclError:
            pass
        try:
            root.destroy()
        except tkinter.TclError:
            pass  # already destroyed

    def _run_hooks(self, root: tkinter.Tk) -> None:
        with self._lock:
            hooks, self._hooks = self._hooks, []
        for hook in hooks:
            try:
                hook(root)
            except Exception:
                log.exception("a Tk stop hook failed")


def _releases_of_this_thread(*, remove: bool) -> list[Callable[[], None]]:
    with _releases_lock:
        pending = _releases.pop(threading.get_ident()) if remove else _releases[threading.get_ident()]
    releases = []
    while True:
        try:
            releases.append(pending.get_nowait())
        except queue.Empty:
            return releases


def _run_releases(releases: list[Callable[[], None]]) -> None:
    for release in releases:
        try:
            release()
        except Exception:
            log.exception("releasing a Tk object in the Tk thread failed")


def _execute(future: concurrent.futures.Future[Any], fn: Callable[..., Any], *args: Any) -> None:
    if not future.set_running_or_notify_cancel():
        return
    try:
        result = fn(*args)
    except BaseException as exc:  # noqa: BLE001 - the caller's future carries it, whatever it is
        future.set_exception(_without_frames(exc))
    else:
        future.set_result(result)


def _without_frames(exc: BaseException) -> BaseException:
    """``exc`` with its traceback kept as text only.

    A traceback keeps the frames of the Tk thread alive, with their Tk locals,
    in whichever thread holds the exception; that thread would then free them.
    """
    exc.add_note("Raised in the Tk thread:\n" + "".join(traceback.format_tb(exc.__traceback__)).rstrip())
    seen: set[int] = set()
    cursor: BaseException | None = exc
    while cursor is not None and id(cursor) not in seen:
        seen.add(id(cursor))
        cursor.__traceback__ = None
        cursor = cursor.__cause__ or cursor.__context__
    return exc


def _log_callback_exception(kind: type[BaseException], value: BaseException, tb: Any) -> None:
    # Tk's default prints to stderr, which a windowed program may not have.
    log.error("a window callback failed", exc_info=(kind, value, tb))


def _display_advice(tcl_message: str) -> str:
    display = os.environ.get("DISPLAY", "")
    if not display:
        return (
            f"cannot open a window: no display ({tcl_message}). Run from a desktop session, "
            "set DISPLAY (e.g. DISPLAY=:0), or use --ui terminal"
        )
    return (
        f"cannot open a window on display {display!r} ({tcl_message}): check that the X server "
        "is running and lets you in (XAUTHORITY), or use --ui terminal"
    )


_running: weakref.WeakSet[TkThread] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    # At interpreter exit module globals are cleared in the main thread; Tk
    # objects still referenced then would be freed there and abort the process.
    for tk_thread in list(_running):
        tk_thread.stop()
