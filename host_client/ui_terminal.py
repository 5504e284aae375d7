"""The end user's side in a terminal: prompts on stdout, answers and commands on stdin.

After consent, each line typed is a command or a chat message:

``r``  revoke control (the technician can still see the screen)
``p``  change permissions (asks again, one line each)
``e``  end the session
``h``  show these commands
anything else is sent to the technician as chat.

End of input (a closed stdin) stops reading but never ends the session: an
unattended host started with ``--consent`` and no terminal keeps serving.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import TextIO

from protocol.codes import CodeFormatError, normalize_code
from protocol.permissions import Permission, describe, ordered

from .ui import UserActions

HELP = "Commands: r = revoke control, p = change permissions, e = end the session, h = help; other text is chat."


class TerminalUI:
    """:class:`~host_client.ui.HostUI` over a text stream pair."""

    def __init__(self, stdin: TextIO | None = None, stdout: TextIO | None = None) -> None:
        self._in = stdin or sys.stdin
        self._out = stdout or sys.stdout
        self._lines: asyncio.Queue[str | None] | None = None
        self._reader: threading.Thread | None = None
        self._actions: UserActions | None = None
        self._commands: asyncio.Task[None] | None = None
        self._technician = "the technician"
        self._offered: list[Permission] = []
        self._consented: frozenset[Permission] = frozenset()

    # --- reading ----------------------------------------------------------------------

    def _start_reader(self) -> asyncio.Queue[str | None]:
        if self._lines is None:
            loop = asyncio.get_running_loop()
            lines: asyncio.Queue[str | None] = asyncio.Queue()
            self._lines = lines

            def read() -> None:
                for line in self._in:
                    loop.call_soon_threadsafe(lines.put_nowait, line.rstrip("\r\n"))
                loop.call_soon_threadsafe(lines.put_nowait, None)

            self._reader = threading.Thread(target=read, name="terminal-input", daemon=True)
            self._reader.start()
        return self._lines

    async def _ask(self, prompt: str) -> str | None:
        self._say(prompt, end="")
        return await self._start_reader().get()

    def _say(self, text: str, end: str = "\n") -> None:
        print(text, end=end, file=self._out, flush=True)

    # --- HostUI -----------------------------------------------------------------------

    async def ask_code(self) -> str | None:
        while True:
            answer = await self._ask("Support code (9 digits from your technician): ")
            if answer is None:
                return None
            try:
                return normalize_code(answer)
            except CodeFormatError as exc:
                self._say(f"  {exc}")

    async def ask_consent(
        self, technician: str, offered: list[Permission], preselected: frozenset[Permission]
    ) -> frozenset[Permission] | None:
        self._technician, self._offered = technician, ordered(offered)
        self._say(f"{technician} asks for access to this computer. Answer y or n for each:")
        allowed = set()
        for permission in self._offered:
            default = "Y/n" if permission in preselected else "y/N"
            answer = await self._ask(f"  Allow {technician} to {permission.question}? [{default}] ")
            if answer is None:
                self._say("")
                return None
            answer = answer.strip().lower()
            if answer in ("y", "yes") or (answer == "" and permission in preselected):
                allowed.add(permission)
        return frozenset(allowed)

    def attach(self, actions: UserActions) -> None:
        self._actions = actions

    def session_started(self, technician: str, session_id: str, ticket_id: int) -> None:
        self._technician = technician
        self._say(f"Connected with {technician} (ticket {ticket_id}). {HELP}")
        if self._commands is None:
            self._commands = asyncio.ensure_future(self._command_loop())

    def permissions_changed(self, granted: frozenset[Permission], consented: frozenset[Permission]) -> None:
        self._consented = consented
        self._say(f"[deskhand] {self._technician} may now: {describe(granted & consented)}")

    def technician_present(self, present: bool) -> None:
        self._say(
            f"[deskhand] {self._technician} is connected"
            if present
            else f"[deskhand] {self._technician} disconnected; waiting"
        )

    def chat_received(self, text: str) -> None:
        self._say(f"{self._technician}: {text}")

    def notice(self, text: str) -> None:
        self._say(f"[deskhand] {text}")

    async def close(self, summary: str) -> None:
        # The summary itself is printed by the command line, whatever the UI.
        if self._commands is not None:
            self._commands.cancel()

    # --- commands ---------------------------------------------------------------------

    async def _command_loop(self) -> None:
        lines = self._start_reader()
        # Prompts (the 'p' command) read from the same queue, from inside this loop,
        # so a line is never claimed by two readers.
        while True:
            line = await lines.get()
            if line is None:
                return
            await self._command(line.strip())

    async def _command(self, line: str) -> None:
        actions = self._actions
        if not line or actions is None:
            return
        if line == "h":
            self._say(HELP)
        elif line == "r":
            actions.change_consent(self._consented - {Permission.control})
            self._say("[deskhand] control revoked")
        elif line == "p":
            chosen = await self.ask_consent(self._technician, self._offered, self._consented)
            if chosen is not None:
                actions.change_consent(chosen)
        elif line == "e":
            actions.end_session()
        else:
            actions.send_chat(line)
