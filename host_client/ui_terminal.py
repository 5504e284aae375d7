"""The end user's side in a terminal: prompts on stdout, answers and commands on stdin.

After consent, each line typed is a command or a chat message:

``r``  revoke control (the technician can still see the screen)
``p``  change permissions (asks again, one line each)
``e``  end the session
``h``  show these commands
anything else is sent to the technician as chat.

While a question is on screen (consent, a file request), the next line answers
it. End of input (a closed stdin) stops reading but never ends the session: an
unattended host started with ``--consent`` and no terminal keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

from pydantic import ValidationError

from peer.background import BackgroundTasks
from peer.transfer_rate import size_text
from protocol.codes import CodeFormatError, JoinTarget, parse_join_target
from protocol.permissions import Permission, describe, ordered
from protocol.requests import RATING_MAX, RATING_MIN, SURVEY_COMMENT_MAX, HelpRequestCreate, SurveyAnswer
from protocol.terminal_text import one_line

from .help_request import FORM_LABELS, describe_problems, help_request_body
from .ui import LINK_NEEDED, UserActions

HELP = "Commands: r = revoke control, p = change permissions, e = end the session, h = help; other text is chat."
PROGRESS_EVERY = 1.0
"""Seconds between progress lines for one transfer."""

log = logging.getLogger(__name__)


class TerminalUI:
    """:class:`~host_client.ui.HostUI` over a text stream pair."""

    def __init__(self, stdin: TextIO | None = None, stdout: TextIO | None = None) -> None:
        self._in = stdin or sys.stdin
        self._out = stdout or sys.stdout
        self._tasks = BackgroundTasks("terminal", log)
        """The line dispatcher and the commands it runs; cancelled and awaited on :meth:`close`."""
        self._dispatcher: asyncio.Task[None] | None = None
        self._pending: asyncio.Future[str | None] | None = None
        self._prompt_lock: asyncio.Lock | None = None
        self._eof = False
        self._commands_on = False
        self._actions: UserActions | None = None
        self._technician = "the technician"
        self._offered: list[Permission] = []
        self._consented: frozenset[Permission] = frozenset()
        self._last_progress: dict[str, tuple[float, int]] = {}

    # --- reading ------------------------------------------------------------------------

    def _start(self) -> None:
        if self._dispatcher is not None:
            return
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._prompt_lock = asyncio.Lock()

        def read() -> None:
            # The loop may be gone when a last line or the end of input arrives (the program is ending).
            with contextlib.suppress(RuntimeError):
                for line in self._in:
                    loop.call_soon_threadsafe(lines.put_nowait, line.rstrip("\r\n"))
                loop.call_soon_threadsafe(lines.put_nowait, None)

        threading.Thread(target=read, name="terminal-input", daemon=True).start()
        self._dispatcher = self._tasks.start(self._dispatch(lines), "line dispatcher")

    async def _dispatch(self, lines: asyncio.Queue[str | None]) -> None:
        """Each line answers the open question, or else is a command (run on its own)."""
        while True:
            line = await lines.get()
            if line is None:
                self._eof = True
                if self._pending is not None and not self._pending.done():
                    self._pending.set_result(None)
                return
            if self._pending is not None and not self._pending.done():
                self._pending.set_result(line)
            elif self._commands_on:
                self._tasks.start(self._command(line.strip()), "command")

    async def _ask(self, prompt: str) -> str | None:
        """Show ``prompt`` and return the next line (None at end of input). Hold the prompt lock."""
        if self._eof:
            return None
        self._say(prompt, end="")
        self._pending = asyncio.get_running_loop().create_future()
        try:
            return await self._pending
        finally:
            self._pending = None

    def _lock(self) -> asyncio.Lock:
        self._start()
        assert self._prompt_lock is not None
        return self._prompt_lock

    def _say(self, text: str, end: str = "\n") -> None:
        """Print one line (or a prompt), made printable: what the technician sent (chat, names,
        file names, notes) can neither start a line of its own nor act on the terminal."""
        print(one_line(text), end=end, file=self._out, flush=True)

    # --- HostUI -------------------------------------------------------------------------

    async def ask_code(self, *, link_needed: bool = False) -> JoinTarget | HelpRequestCreate | None:
        prompt = ("Paste the link your technician sent: " if link_needed else
                  "Support code (9 digits from your technician, or the link they sent; just Enter if you have none): ")
        async with self._lock():
            while True:
                answer = await self._ask(prompt)
                if answer is None:
                    return None
                if not answer.strip():
                    if link_needed:  # asking the help desk needs its address too
                        self._say(f"  {LINK_NEEDED}")
                        continue
                    return await self._ask_help()
                try:
                    target = parse_join_target(answer)
                except CodeFormatError as exc:
                    self._say(f"  {exc}")
                    continue
                if link_needed and target.broker is None:
                    self._say(f"  {LINK_NEEDED}")
                    continue
                return target

    async def _ask_help(self) -> HelpRequestCreate | None:
        """No code: what the user needs help with, for the help desk's queue. Hold the prompt lock."""
        self._say("No code: ask the help desk instead, and wait until a technician picks you up.")
        while True:
            answers = []
            for prompt in ("  Your name: ", "  What is wrong, in one line: ", "  Your email (optional): "):
                answer = await self._ask(prompt)
                if answer is None:
                    return None
                answers.append(answer.strip())
            name, summary, email = answers
            try:
                return help_request_body(name=name, summary=summary, email=email or None)
            except ValidationError as exc:
                self._say("  " + describe_problems(exc, FORM_LABELS) + ". Again, please:")

    async def ask_consent(
        self, technician: str, offered: list[Permission], preselected: frozenset[Permission]
    ) -> frozenset[Permission] | None:
        async with self._lock():
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

    async def ask_file_request(self, technician: str, suggested_path: str, note: str) -> Path | None:
        async with self._lock():
            self._say(f"{technician} asks for a file" + (f": {note}" if note else "") + ".")
            while True:
                default = f" [{suggested_path}]" if suggested_path else ""
                answer = await self._ask(f"  Path of the file to send{default} (n = decline): ")
                if answer is None or answer.strip().lower() in ("n", "no"):
                    return None
                chosen = Path(answer.strip() or suggested_path).expanduser()
                if chosen.is_file():
                    return chosen
                self._say(f"  {chosen} is not a file")

    async def ask_survey(self) -> SurveyAnswer | None:
        async with self._lock():
            self._say("The session has ended.")
            while True:
                answer = await self._ask(
                    f"How satisfied are you with this help? {RATING_MIN}-{RATING_MAX} (Enter to skip): "
                )
                if answer is None or not answer.strip():
                    return None
                if answer.strip() in {str(n) for n in range(RATING_MIN, RATING_MAX + 1)}:
                    rating = int(answer.strip())
                    break
                self._say(f"  Type a number from {RATING_MIN} (very unhappy) to {RATING_MAX} (very happy), or just Enter.")
            while True:
                comment = await self._ask("Anything you would like to add? (Enter to skip): ")
                try:
                    return SurveyAnswer(rating=rating, comment=(comment or "").strip())
                except ValidationError:
                    self._say(f"  At most {SURVEY_COMMENT_MAX} characters of plain text, please.")

    def waiting_in_queue(self, position: int) -> None:
        self._say(f"Waiting in the queue (position {position})…")

    async def withdrawn(self) -> None:
        await asyncio.Event().wait()  # in a terminal, Ctrl-C withdraws (the command line's signal handler)

    def attach(self, actions: UserActions) -> None:
        self._actions = actions

    def session_started(self, technician: str, session_id: str, ticket_id: int) -> None:
        self._technician = technician
        self._say(f"Session with {technician} (ticket {ticket_id}). {HELP}")  # "connected" once media flows
        self._start()
        self._commands_on = True

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

    def transfer_progress(self, transfer_id: str, name: str, outgoing: bool, done: int, total: int, rate: float) -> None:
        now = time.monotonic()
        last_at, last_percent = self._last_progress.get(transfer_id, (-1e9, -1))
        percent = 100 if total == 0 else done * 100 // total
        if percent == last_percent or (done < total and now - last_at < PROGRESS_EVERY):
            return
        self._last_progress[transfer_id] = (now, percent)
        speed = f" at {size_text(rate)}/s" if rate > 0 else ""  # no rate before the first bytes moved
        left = f", {(total - done) / rate:.0f} s left" if rate > 0 and done < total else ""
        arrow = "sending" if outgoing else "receiving"
        self._say(f"[deskhand] {arrow} {name}: {percent}% of {size_text(total)}{speed}{left}")

    def transfer_finished(
        self, transfer_id: str, name: str, outgoing: bool, ok: bool, detail: str, summary: str = ""
    ) -> None:
        self._last_progress.pop(transfer_id, None)
        if ok:
            how = f" ({summary})" if summary else ""
            self._say(f"[deskhand] {'sent' if outgoing else 'received'} {name}: {detail}{how}")
        else:
            self._say(f"[deskhand] {name} was not {'sent' if outgoing else 'received'}: {detail}")

    async def close(self, summary: str) -> None:
        # The summary itself is printed by the command line, whatever the UI.
        self._commands_on = False
        await self._tasks.close()

    # --- commands -----------------------------------------------------------------------

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
