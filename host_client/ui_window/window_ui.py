"""The asyncio half of the host window: :class:`WindowUI`, the :class:`~host_client.ui.HostUI` the
session calls from its loop. It never touches Tk; it hands work to the
:class:`~host_client.tk_thread.TkThread`, where :class:`~host_client.ui_window.shell.Window` and
its screens live, and the user's answers come back with ``loop.call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tkinter
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from protocol.codes import JoinTarget
from protocol.permissions import Permission, ordered
from protocol.requests import HelpRequestCreate, SurveyAnswer
from protocol.waits import wait_until_set

from ..tk_thread import TkStopped, TkThread
from ..ui import UserActions
from .code_prompt import show_code, show_queue_position
from .consent import show_consent
from .layout import Answer
from .shell import Window
from .survey import show_survey

log = logging.getLogger(__name__)

CLOSE_DELAY = 1.5
"""Seconds the end-of-session summary stays on screen before the window goes."""

TECHNICIAN_GONE = "Technician disconnected — waiting"
"""The status line while the technician is away."""


class WindowUI:
    """:class:`~host_client.ui.HostUI` in a Tk window run by ``tk_thread``.

    ``close()`` stops ``tk_thread`` (the session is over), which also ends a
    :class:`~host_client.clipboard.TkClipboard` sharing it.
    """

    def __init__(self, tk_thread: TkThread, *, close_delay: float = CLOSE_DELAY) -> None:
        """Show nothing yet: the window appears with the first prompt or message."""
        self._tk = tk_thread
        self._close_delay = close_delay
        self._loop: asyncio.AbstractEventLoop | None = None
        self._actions: UserActions | None = None
        self._pending: set[asyncio.Future[Any]] = set()
        self._dismissed: asyncio.Event | None = None
        self._withdraw: asyncio.Event | None = None  # set when the user withdraws a waiting help request
        self._file_requests = asyncio.Lock()  # one file request dialog at a time, first come first shown
        self._closing = False
        self._offered: list[Permission] = []
        self._consented: frozenset[Permission] = frozenset()
        self._granted: frozenset[Permission] | None = None  # None: no grant reported yet
        self._window: Window | None = None  # touched in the Tk thread only
        tk_thread.on_stop(self._forget_window)

    # --- HostUI: prompts ----------------------------------------------------------------

    async def ask_code(self, *, link_needed: bool = False) -> JoinTarget | HelpRequestCreate | None:
        """A valid code (``JoinTarget("123456789")``) or join link (with its broker), or the help
        request filled in after "No code? Ask for help", or None on Escape or close."""
        return await self._ask(show_code, link_needed)

    async def ask_consent(
        self, technician: str, offered: list[Permission], preselected: frozenset[Permission]
    ) -> frozenset[Permission] | None:
        """The ticked permissions on "Allow selected", or None on "Decline", Escape or close."""
        self._offered = ordered(offered)
        chosen = await self._ask(show_consent, technician, self._offered, frozenset(preselected))
        if chosen is not None:
            self._consented = chosen
        return chosen

    async def ask_file_request(self, technician: str, suggested_path: str, note: str) -> Path | None:
        """The file the user sends (an existing regular file), or None on "Decline", Escape or close.

        Requests that arrive while one is shown wait for it, in order.
        """
        if self._closing:
            return None
        async with self._file_requests:
            if self._closing:
                return None
            chosen: Path | None = await self._ask(
                Window.show_file_request, technician, suggested_path, note, withdraw=Window.withdraw_file_request
            )
            return chosen

    async def ask_survey(self) -> SurveyAnswer | None:
        """A rating from 1 to 5 and an optional comment on "Send", or None on "Skip", Escape or close."""
        if self._closing:
            return None
        answered: SurveyAnswer | None = await self._ask(show_survey)
        return answered

    # --- HostUI: the session ------------------------------------------------------------

    def waiting_in_queue(self, position: int) -> None:
        """"Waiting for a technician" with the place in the queue."""
        self._post(show_queue_position, position)

    async def withdrawn(self) -> None:
        """Return when the user presses "Withdraw request", Escape or the close button while waiting."""
        self._remember_loop()
        self._withdraw = asyncio.Event()
        await self._withdraw.wait()

    def attach(self, actions: UserActions) -> None:
        """Send what the user does to ``actions``, in the loop this is called from."""
        self._remember_loop()
        self._actions = actions

    def session_started(self, technician: str, session_id: str, ticket_id: int) -> None:
        """Switch to the session view."""
        # Until the session reports the grant, what was offered is what was granted.
        granted = frozenset(self._offered) if self._granted is None else self._granted
        self._post(
            Window.show_session, technician, session_id, ticket_id, self._offered, granted, self._consented
        )

    def permissions_changed(self, granted: frozenset[Permission], consented: frozenset[Permission]) -> None:
        """Tick exactly the consented permissions and mark those the grant lacks."""
        self._granted, self._consented = granted, consented
        self._post(Window.show_permissions, granted, consented)

    def technician_present(self, present: bool) -> None:
        """Say in the status line whether the technician is connected."""
        self._post(Window.set_status, "Technician connected" if present else TECHNICIAN_GONE)

    def chat_received(self, text: str) -> None:
        """Add a "Technician: ..." line to the chat log."""
        self._post(Window.add_chat, "Technician", text)

    def notice(self, text: str) -> None:
        """Show ``text`` in the status line."""
        self._post(Window.set_status, text)

    def transfer_progress(self, transfer_id: str, name: str, outgoing: bool, done: int, total: int, rate: float) -> None:
        """Add or update the transfer's row: arrow and name, progress bar, sizes, rate, time left, Cancel."""
        self._post(Window.show_transfer, transfer_id, name, outgoing, done, total, rate)

    def transfer_finished(
        self, transfer_id: str, name: str, outgoing: bool, ok: bool, detail: str, summary: str = ""
    ) -> None:
        """The row says where the file was saved (or that it was sent) and how fast, or why it failed; Cancel goes."""
        self._post(Window.end_transfer, transfer_id, name, outgoing, ok, detail, summary)

    async def close(self, summary: str) -> None:
        """Show ``summary`` for :data:`CLOSE_DELAY` seconds (less if the user closes it), then go."""
        self._closing = True  # file requests still queued are declined
        self._settle_pending(None)
        self._dismissed = asyncio.Event()
        with contextlib.suppress(TkStopped):
            await self._tk.acall(self._in_window, Window.finish, summary)
            await wait_until_set(self._dismissed, self._close_delay)
        await asyncio.to_thread(self._tk.stop)

    # --- asyncio side -------------------------------------------------------------------

    def _remember_loop(self) -> asyncio.AbstractEventLoop:
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError("WindowUI must be used from the session's running asyncio loop") from None
        return self._loop

    async def _ask(self, show: Callable[..., None], *args: Any,
                   withdraw: Callable[[Window, Answer], None] | None = None) -> Any:
        """Show a prompt and wait for its answer (None when the window goes).

        ``withdraw(window, answer)`` takes the prompt away when the caller is
        cancelled while waiting.
        """
        loop = self._remember_loop()
        answered: asyncio.Future[Any] = loop.create_future()
        self._pending.add(answered)

        def answer(value: Any) -> None:  # in the Tk thread; one future per prompt, so a late
            _settle_from_thread(loop, answered, value)  # answer cannot settle the next one

        try:
            await self._tk.acall(self._in_window, show, *args, answer)
            return await answered
        except TkStopped:
            return None
        except asyncio.CancelledError:
            if withdraw is not None:
                self._post(withdraw, answer)  # queued after ``show``, so it finds the prompt
            raise
        finally:
            self._pending.discard(answered)

    def _settle_pending(self, value: Any) -> None:
        # Also called from the Tk thread: list() copies the set in one step.
        if self._loop is not None:
            for pending in list(self._pending):
                _settle_from_thread(self._loop, pending, value)

    def _post(self, method: Callable[..., None], *args: Any) -> None:
        """Run ``method(window, *args)`` in the Tk thread without waiting."""
        try:
            future = self._tk.call(self._in_window, method, *args)
        except TkStopped:
            log.debug("window closed; %s not shown", method.__name__)
            return
        future.add_done_callback(_log_failure)

    # --- called from the Tk thread ------------------------------------------------------

    def _in_window(self, root: tkinter.Tk, method: Callable[..., Any], *args: Any) -> Any:
        if self._window is None:
            self._window = Window(root, self)
        return method(self._window, *args)

    def _forget_window(self, root: tkinter.Tk) -> None:
        # A TkThread stop hook: widgets must be dropped in the Tk thread.
        if self._window is not None:
            self._window.top.destroy()
            self._window = None
        self._settle_pending(None)

    def _deliver(self, action: str, *args: Any) -> bool:
        """Call ``actions.<action>(*args)`` in the asyncio loop; False when no session is attached."""
        loop, actions = self._loop, self._actions
        if loop is None or actions is None:
            return False
        try:
            loop.call_soon_threadsafe(_perform, actions, action, args)
        except RuntimeError:  # the loop is closed: the program is ending
            return False
        return True

    def _user_withdrew(self) -> None:
        loop, withdraw = self._loop, self._withdraw
        if loop is not None and withdraw is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(withdraw.set)

    def _user_dismissed(self) -> None:
        loop, dismissed = self._loop, self._dismissed
        if loop is not None and dismissed is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(dismissed.set)


def _perform(actions: UserActions, action: str, args: tuple[Any, ...]) -> None:
    getattr(actions, action)(*args)


def _settle_from_thread(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], value: Any) -> None:
    def settle() -> None:
        if not future.done():
            future.set_result(value)

    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
        loop.call_soon_threadsafe(settle)


def _log_failure(future: Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("updating the window failed", exc_info=future.exception())
