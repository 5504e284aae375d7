"""What the end user sees and does, behind one interface.

:class:`HostUI` is implemented by :class:`host_client.ui_terminal.TerminalUI`
(stdin/stdout) and :class:`host_client.ui_window.WindowUI` (a small Tk window).
The session calls a UI from its asyncio thread; a UI calls back through
:class:`UserActions`, always in the asyncio thread too (a UI that runs elsewhere,
like Tk, marshals with ``loop.call_soon_threadsafe``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from protocol.codes import JoinTarget
from protocol.permissions import Permission
from protocol.requests import HelpRequestCreate, SurveyAnswer


class UserActions(Protocol):
    """What the user can do during a session (implemented by the session)."""

    def change_consent(self, permissions: frozenset[Permission]) -> None:
        """Allow exactly these permissions from now on (narrow, revoke or restore)."""

    def end_session(self) -> None:
        """End the session for both sides."""

    def send_chat(self, text: str) -> None:
        """Send a chat line to the technician."""

    def cancel_transfer(self, transfer_id: str) -> None:
        """Stop a file transfer (either direction)."""


LINK_NEEDED = ("this app does not know your help desk's address yet: paste the whole link your technician "
               "sent (it ends in /join/#, then the code)")
"""Why a code alone is refused when no broker address is known (both UIs say it)."""


class HostUI(Protocol):
    """The end user's side of a session."""

    async def ask_code(self, *, link_needed: bool = False) -> JoinTarget | HelpRequestCreate | None:
        """Ask for the support code, or the join link (which names the broker too); or, when the
        user has none, what they need help with (a request for the queue, already checked); None
        when the user gives up. ``link_needed``: no broker address is known (none given to a
        downloaded host), so only the link will do; a code alone is refused with the words of
        :data:`LINK_NEEDED`."""

    async def ask_consent(
        self, technician: str, offered: list[Permission], preselected: frozenset[Permission]
    ) -> frozenset[Permission] | None:
        """Ask which of ``offered`` to allow, one line each; None when the user declines all and leaves."""

    def waiting_in_queue(self, position: int) -> None:
        """A help request waits for a technician: show the place in the queue (1 = next)."""

    async def withdrawn(self) -> None:
        """Return when the user withdraws the waiting help request (never, for a UI without a way to)."""

    def attach(self, actions: UserActions) -> None:
        """From now on, user actions go to ``actions``."""

    def session_started(self, technician: str, session_id: str, ticket_id: int) -> None: ...

    def permissions_changed(self, granted: frozenset[Permission], consented: frozenset[Permission]) -> None:
        """Show what the technician may do now (``granted ∩ consented``) and what was consented."""

    def technician_present(self, present: bool) -> None: ...

    def chat_received(self, text: str) -> None: ...

    def notice(self, text: str) -> None:
        """A one-line status for the user (a refused grant, a paused stream...)."""

    async def ask_file_request(self, technician: str, suggested_path: str, note: str) -> Path | None:
        """The technician asks for a file: let the user pick one (starting from
        ``suggested_path`` when given) or decline (None)."""

    def transfer_progress(self, transfer_id: str, name: str, outgoing: bool, done: int, total: int, rate: float) -> None:
        """Bytes moved so far (``rate`` in bytes per second, 0 while not known yet; at the end, the whole
        transfer's); called a few times a second at most, always at the start and at the end."""

    def transfer_finished(
        self, transfer_id: str, name: str, outgoing: bool, ok: bool, detail: str, summary: str = ""
    ) -> None:
        """A transfer ended: ``detail`` is where the file was saved, or why it failed; ``summary``
        how it went (``3.15 MB in 1.2 s, 2.63 MB/s``, :meth:`peer.transfer_rate.TransferRate.summary`),
        empty when not known."""

    async def ask_survey(self) -> SurveyAnswer | None:
        """The session ended: "How satisfied are you with this help?" (1-5) and an optional
        comment; None when the user skips it."""

    async def close(self, summary: str) -> None:
        """The session is over; show ``summary`` and release the UI."""


class Clipboard(Protocol):
    """The host's clipboard text (X selection, via Tk)."""

    async def read(self) -> str | None:
        """The current clipboard text, or None when there is none or it is not text."""

    async def write(self, text: str) -> None: ...
