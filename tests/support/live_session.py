"""A whole support session for tests and benchmarks: ticket, code, ``deskhand-host`` process, live view.

    async with live_session(broker, xvfb.env, "--consent", "view,control") as live:
        await live.view.wait_for_control(30)
        live.view.click(0.5, 0.5)
        live.user_types("r")          # the end user types in the host's terminal
    live.output                       # the host's stdout, once it has exited (live.errors: its stderr)

    resumed = resume_host(env, "--consent", "view")   # after killing live.host: it comes back
    host_exited(resumed, 90)   # once its session ended: its stdout, or a failure saying where it waited

The host runs with the terminal UI; its stdin is the user's keyboard. On exit
the session is ended (if the test did not) and the host is waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from protocol.api import TicketCreate
from protocol.cli import WAITS_SIGNAL
from tech_console.client import TechConsole
from tech_console.remote_view import FrameHook, RemoteView
from tests.support.broker import BrokerProcess
from tests.support.line_child import REPO

HOST_LOG_LINES = 80
"""Lines of the host's log shown with a failed test."""


@dataclass
class Live:
    """A session with a host process and the technician's view of it."""

    session_id: str
    code: str
    """The support code (for a host that asks for it: ``command``)."""
    host: subprocess.Popen[str]
    view: RemoteView
    console: TechConsole
    output: str = ""
    """The host's stdout, once the session is over."""
    errors: str = ""
    """The host's stderr (its log), once the session is over."""

    async def consented(self, timeout: float = 60) -> list[str]:
        """Wait until the broker has the host's consent (works without the live view); return it."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            session = await self.console.get_session(self.session_id)
            if session.consent is not None:
                return [p.value for p in session.consent]
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"the host gave no consent within {timeout:g} s")
            await asyncio.sleep(0.1)

    def user_types(self, line: str) -> None:
        """The end user types a line in the host's terminal."""
        assert self.host.stdin is not None
        self.host.stdin.write(line + "\n")
        self.host.stdin.flush()


@asynccontextmanager
async def live_session(
    broker: BrokerProcess,
    env: dict[str, str],
    *host_args: str,
    subject: str = "Remote control",
    on_frame: FrameHook | None = None,
    view: bool = True,
    login: tuple[str, str] | None = None,
    host_module: str = "host_client.cli",
    wrap: Sequence[str] = (),
    command: Callable[[str], Sequence[str]] | None = None,
    base_env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> AsyncIterator[Live]:
    """A started session with ``deskhand-host join CODE --ui terminal *host_args`` on display ``env``.

    ``view=False`` leaves the technician's live view closed (no WebRTC at all), for
    tests and benchmarks of the broker-relayed paths only. ``login`` is the
    technician's (username, password); the first admin by default. ``host_module``
    is what runs as ``python -m host_module`` (benchmarks start other hosts that take
    the same arguments, e.g. ``bench.naive_host``). ``wrap`` is an argv prefix the host
    runs behind, e.g. ``net.wrap("user")`` to put it in a network namespace.
    ``command(code)`` is the host's whole command line instead (the built single file,
    asking for the code in its window, say), and ``base_env`` the environment ``env`` is laid
    over instead of this process's (one without the virtualenv, say); ``cwd`` is where it
    runs (the repository by default).
    """
    async with TechConsole(broker.base_url) as console:
        await console.login(*(login or ("admin", broker.admin_password)))
        ticket = await console.create_ticket(
            TicketCreate(subject=subject, requester_name="Ann", requester_email="ann@example.com")
        )
        started = await console.start_session(ticket.id)
        argv = [*wrap, sys.executable, "-m", host_module, "join", started.code, "--broker", broker.base_url,
                "--ui", "terminal", *host_args] if command is None else [*wrap, *command(started.code)]
        host = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**(os.environ if base_env is None else base_env), **env},
            cwd=cwd or REPO,
        )
        remote = console.view(started.session.id, on_frame=on_frame)
        live = Live(started.session.id, started.code, host, remote, console)
        try:
            if view:
                await remote.start()
            yield live
        except BaseException as failure:
            # The test failed: end what is left without letting a failing clean-up
            # (a broker the test stopped) hide the test's own error.
            await remote.close()
            if host.poll() is None:
                with contextlib.suppress(Exception):
                    await console.end_session(started.session.id, "test failed")
                host.kill()
            live.output, live.errors = host.communicate()
            # The host's own account of what happened goes with the failure (a CI run keeps nothing else).
            failure.add_note("the host's log, last lines:\n" + "\n".join(live.errors.splitlines()[-HOST_LOG_LINES:]))
            raise
        await remote.close()
        if host.poll() is None:
            await console.end_session(started.session.id, "test over")
            try:
                await asyncio.to_thread(host.wait, 20)
            except subprocess.TimeoutExpired:
                host.kill()
        live.output, live.errors = host.communicate()


def resume_host(env: dict[str, str], *host_args: str) -> subprocess.Popen[str]:
    """``deskhand-host resume --ui terminal *host_args``: a host taking up the session it saved.

    Give ``env`` the ``XDG_STATE_HOME`` the session's host had, so that it finds its
    saved session (and recording spool) there. Its first line is ``Resumed session <id> ...``.
    """
    return subprocess.Popen(
        [sys.executable, "-m", "host_client.cli", "resume", "--ui", "terminal", *host_args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **env}, cwd=REPO,
    )


def host_exited(process: subprocess.Popen[str], timeout: float) -> str:
    """What a host wrote to stdout, once it has exited by itself within ``timeout`` seconds.

    One that does not is asked where it waits (``SIGUSR1``: :func:`protocol.cli.report_waits_on_signal`)
    and killed; the test fails with that report, which is all a CI run keeps of why it hung."""
    try:
        out, _err = process.communicate(timeout=timeout)
        return out
    except subprocess.TimeoutExpired:
        process.send_signal(WAITS_SIGNAL)
        time.sleep(2)
        process.kill()
        out, err = process.communicate()
        raise AssertionError(
            f"the host did not exit within {timeout:g} s.\nIts output:\n{out[-4000:]}\n"
            f"Its log and where it waited:\n{err[-30000:]}"
        ) from None
