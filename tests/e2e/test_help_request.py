"""Asking for help without a code, on a real X server: queue, pick-up, video, end, survey.

The host is ``deskhand-host request`` in its own process; the technician is the
Python console client (and the console CLI for the queue). Media flows over
WebRTC on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

from tech_console.client import TechConsole
from tests.support.api import HOST_BODY, bearer

pytestmark = pytest.mark.slow

HOST = [sys.executable, "-m", "host_client.cli"]
CONSOLE = [sys.executable, "-m", "tech_console.cli"]


class HostProcess:
    """``deskhand-host request …`` with its stdout read line by line in the background."""

    def __init__(self, broker_url: str, env: dict[str, str], *args: str, ui: str = "terminal") -> None:
        self.process = subprocess.Popen(
            [*HOST, "request", "--broker", broker_url, "--ui", ui, *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **env},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for_line(self, text: str, timeout: float = 30) -> str:
        """The next line of stdout containing ``text`` (lines before it are kept in ``seen``)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"the host printed no {text!r} within {timeout:g} s; it printed {self.seen}") from None
            self.seen.append(line)
            if text in line:
                return line

    def finish(self, timeout: float = 30) -> tuple[int, str]:
        """Wait for the exit; the return code and stderr."""
        try:
            self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        assert self.process.stderr is not None
        return self.process.returncode, self.process.stderr.read()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def loopback_broker(start_broker):
    return start_broker(DESKHAND_ICE_LOOPBACK="true")


def test_a_request_waits_in_the_queue_is_picked_up_streams_and_its_survey_lands_on_the_ticket(
    xvfb, loopback_broker
) -> None:
    broker = loopback_broker
    # Someone asked before: this host starts second in the queue.
    ahead = broker.http.post("/requests", json={"name": "Earlier", "summary": "First in line", **HOST_BODY}).json()
    host = HostProcess(
        broker.base_url, xvfb.env, "--name", "Ann Host", "--summary", "My screen flickers",
        "--details", "Since this morning", "--consent", "view,chat",
        "--survey-rating", "4", "--survey-comment", "Fixed in minutes",
    )
    try:
        asked = host.wait_for_line("Asked for help: ticket")
        ticket_id = int(asked.split("ticket ")[1].split(".")[0])
        host.wait_for_line("Waiting in the queue (position 2)")
        broker.http.delete(ahead["poll_path"].removeprefix("/api/v1"), headers=bearer(ahead["request_token"]))
        host.wait_for_line("Waiting in the queue (position 1)", timeout=10)

        async def technician() -> None:
            async with TechConsole(broker.base_url) as console:
                await console.login("admin", broker.admin_password)
                waiting = await console.list_requests()
                mine = next(r for r in waiting if r.ticket_id == ticket_id)
                assert (mine.position, mine.requester_name, mine.subject) == (1, "Ann Host", "My screen flickers")
                picked = await console.pick_up(mine.id)
                session_id = picked.session.id
                view = console.view(session_id)
                try:
                    await view.start()
                    # Two decoded frames: the picture arrived and the stream goes on. (A still
                    # screen sends a frame every few seconds: waiting for ten took 45 s.)
                    await view.wait_until(lambda: view.frames_received >= 2, 60, "two frames")
                    consented = await console.wait_for_consent(session_id, 30)
                    assert [p.value for p in consented.consent or []] == ["view", "chat"]
                finally:
                    await view.close()
                await console.end_session(session_id, "Refresh rate fixed")
                # The survey is answered before the host prints its summary and exits.
                host.wait_for_line("Thank you: your rating 4/5 was recorded.")
                host.wait_for_line("ended by the technician: Refresh rate fixed")
                ticket = await console.get_ticket(ticket_id)
                assert [(s.rating, s.comment) for s in ticket.surveys] == [(4, "Fixed in minutes")]
                assert any(c.kind.value == "survey" and "4/5" in c.body for c in ticket.comments)
                assert ticket.requester_name == "Ann Host" and ticket.created_by is None
                assert [s.id for s in ticket.sessions] == [session_id]

        asyncio.run(technician())
        code, err = host.finish()
        assert code == 0, err
    finally:
        host.kill()


def test_ctrl_c_while_waiting_withdraws_the_request(xvfb, loopback_broker, tmp_path) -> None:
    broker = loopback_broker
    host = HostProcess(broker.base_url, xvfb.env, "--name", "Bo", "--summary", "Mouse stuck", "--no-survey")
    try:
        host.wait_for_line("Waiting in the queue (position 1)")
        host.process.send_signal(signal.SIGINT)
        code, err = host.finish()
        assert code == 1 and "help request withdrawn" in err, err
    finally:
        host.kill()
    assert broker.sql("SELECT state FROM help_requests") == [("cancelled",)]
    env = {**os.environ, "DESKHAND_BROKER": broker.base_url, "DESKHAND_CONSOLE_CREDENTIALS": str(tmp_path / "c.json")}
    login = subprocess.run([*CONSOLE, "login", "--username", "admin", "--password-stdin"],
                           input=broker.admin_password + "\n", capture_output=True, text=True, env=env, timeout=60)
    assert login.returncode == 0, login.stderr
    listing = subprocess.run([*CONSOLE, "requests"], capture_output=True, text=True, env=env, timeout=60)
    assert listing.returncode == 0 and listing.stdout.strip() == "Nobody is waiting.", listing


def test_the_console_cli_lists_the_queue_and_picks_up(loopback_broker, tmp_path) -> None:
    broker = loopback_broker
    created = broker.http.post("/requests", json={"name": "Cy", "summary": "VPN down", **HOST_BODY}).json()
    env = {**os.environ, "DESKHAND_BROKER": broker.base_url, "DESKHAND_CONSOLE_CREDENTIALS": str(tmp_path / "c.json")}

    def console(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CONSOLE, *args], input=stdin, capture_output=True, text=True, env=env, timeout=60)

    assert console("login", "--username", "admin", "--password-stdin", stdin=broker.admin_password + "\n").returncode == 0
    listing = console("requests")
    assert listing.returncode == 0, listing.stderr
    assert created["request_id"] in listing.stdout and "Cy on test-pc: VPN down" in listing.stdout
    picked = console("pickup", created["request_id"])
    assert picked.returncode == 0, picked.stderr
    assert "Session: " in picked.stdout and "ann on test-pc" in picked.stdout
    again = console("pickup", created["request_id"])
    assert again.returncode == 1 and "already picked this request up" in again.stderr
    bad = console("pickup", "not-a-uuid")
    assert bad.returncode == 2


def test_in_the_window_the_survey_is_asked_and_ctrl_c_skips_it(xvfb, loopback_broker) -> None:
    broker = loopback_broker
    host = HostProcess(broker.base_url, xvfb.env, "--name", "Di", "--summary", "Slow", "--consent", "view", ui="window")
    try:
        host.wait_for_line("Asked for help: ticket")

        async def technician() -> str:
            async with TechConsole(broker.base_url) as console:
                await console.login("admin", broker.admin_password)
                deadline = time.monotonic() + 30
                while not (waiting := await console.list_requests()):
                    assert time.monotonic() < deadline, "the request never reached the queue"
                    await asyncio.sleep(0.2)
                session_id = (await console.pick_up(waiting[0].id)).session.id
                await console.wait_for_consent(session_id, 30)
                await console.end_session(session_id, "done")
                return session_id

        session_id = asyncio.run(technician())
        # The window now asks the survey question and waits; Ctrl-C skips it and the host exits.
        time.sleep(3.0)  # longer than the window's goodbye (CLOSE_DELAY): only the question keeps it
        assert host.process.poll() is None, "the host must wait for the survey answer"
        host.process.send_signal(signal.SIGINT)
        code, err = host.finish(timeout=20)
        assert code == 0, err
        host.wait_for_line(f"Session {session_id} ended by the technician: done")
    finally:
        host.kill()
    assert broker.sql("SELECT count(*) FROM session_surveys") == [(0,)]
