"""The whole path on a real X server: a ticket, a code, a host, the video, the end.

Everything is real and separate: the broker, the host client and the console CLI
run as their own processes, the screen is an Xvfb at 1920x1080 painted by a Tk
window, and media flows over WebRTC on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image

from tests.support.screen_painter import PainterProcess, pattern_cell_centres

pytestmark = pytest.mark.slow

HOST = [sys.executable, "-m", "host_client.cli"]
UNATTENDED = ["--ui", "terminal", "--consent", "view"]
"""The user's answer given in advance: these tests are about pairing and video, not consent."""
CONSOLE = [sys.executable, "-m", "tech_console.cli"]


class ConsoleCLI:
    """Runs ``deskhand-console`` as a technician would, with its own credentials file."""

    def __init__(self, broker_url: str, workdir: Path) -> None:
        self.env = {
            **os.environ,
            "DESKHAND_BROKER": broker_url,
            "DESKHAND_CONSOLE_CREDENTIALS": str(workdir / "console.json"),
        }

    def run(self, *args: str, stdin: str | None = None, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CONSOLE, *args], input=stdin, capture_output=True, text=True, env=self.env, timeout=timeout
        )

    def json(self, *args: str) -> dict:
        result = self.run("--json", *args)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


@pytest.fixture
def loopback_broker(start_broker):
    return start_broker(DESKHAND_ICE_LOOPBACK="true")


@pytest.fixture
def painter(xvfb):
    p = PainterProcess(xvfb.env)
    yield p
    p.close()


@pytest.fixture
def console(loopback_broker, tmp_path) -> ConsoleCLI:
    cli = ConsoleCLI(loopback_broker.base_url, tmp_path)
    login = cli.run("login", "--username", "admin", "--password-stdin", stdin=loopback_broker.admin_password + "\n")
    assert login.returncode == 0, login.stderr
    return cli


@contextmanager
def running_host(code: str, broker_url: str, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """``deskhand-host join`` in its own process, killed if the test leaves it running."""
    host = subprocess.Popen(
        [*HOST, "join", code, "--broker", broker_url, *UNATTENDED],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **env},
    )
    try:
        yield host
    finally:
        if host.poll() is None:
            host.kill()
            host.communicate()


def open_ticket_and_session(console: ConsoleCLI) -> tuple[int, str, str]:
    ticket = console.json(
        "ticket", "create", "--subject", "Screen looks wrong",
        "--requester-name", "Ann Smith", "--requester-email", "ann@example.com",
    )
    started = console.json("session", "start", "--ticket", str(ticket["id"]))
    assert len(started["code"]) == 9 and started["code_display"].count(" ") == 2
    return ticket["id"], started["session"]["id"], started["code_display"]


def test_technician_sees_the_pattern_and_the_ticket_keeps_the_ended_session(
    xvfb, loopback_broker, console, painter, tmp_path
) -> None:
    painter.pattern()
    ticket_id, session_id, code = open_ticket_and_session(console)
    # The user types the code with dashes instead of spaces.
    with running_host(code.replace(" ", "-"), loopback_broker.base_url, xvfb.env) as host:
        png = tmp_path / "remote.png"
        shot = console.json("snapshot", session_id, "--out", str(png), "--timeout", "60")
        assert (shot["width"], shot["height"]) == (1920, 1080)

        image = Image.open(png).convert("RGB")
        assert image.size == (1920, 1080)
        for x, y, expected in pattern_cell_centres(1920, 1080):
            actual = image.getpixel((x, y))
            assert all(abs(a - e) <= 24 for a, e in zip(actual, expected, strict=True)), (x, y, actual, expected)

        ended = console.json("session", "end", session_id, "--reason", "Display driver reinstalled")
        assert ended["state"] == "ended"
        out, err = host.communicate(timeout=30)
    assert host.returncode == 0, err
    assert "ended by the technician: Display driver reinstalled" in out

    ticket = console.json("ticket", "show", str(ticket_id))
    assert len(ticket["sessions"]) == 1
    session = ticket["sessions"][0]
    assert session["id"] == session_id
    assert session["state"] == "ended" and session["ended_by"] == "technician"
    assert session["end_reason"] == "Display driver reinstalled"
    assert session["host"]["machine_name"]
    assert session["connected_at"] is not None and session["ended_at"] is not None
    assert session["created_at"] <= session["connected_at"] <= session["ended_at"]


def test_ctrl_c_on_the_host_ends_the_session_for_both_sides(xvfb, loopback_broker, console, painter) -> None:
    _ticket_id, session_id, code = open_ticket_and_session(console)
    with running_host(code, loopback_broker.base_url, xvfb.env) as host:
        assert host.stdout is not None
        joined = host.stdout.readline()
        assert joined.startswith(f"Joined session {session_id}"), joined
        host.send_signal(signal.SIGINT)
        out, err = host.communicate(timeout=30)
    assert host.returncode == 0, err
    assert "ended by the user" in out
    session = console.json("session", "show", session_id)
    assert session["state"] == "ended" and session["ended_by"] == "host"


@pytest.mark.parametrize(
    ("code", "exit_code", "message"),
    [
        ("12345", 2, "has 9 digits, this one has 5"),
        ("12a 456 789", 2, "only digits"),
        ("000 000 000", 1, "no session has this code"),
    ],
)
def test_host_refuses_bad_codes_with_a_clear_message(xvfb, loopback_broker, code, exit_code, message) -> None:
    result = subprocess.run(
        [*HOST, "join", code, "--broker", loopback_broker.base_url, *UNATTENDED],
        capture_output=True, text=True, env={**os.environ, **xvfb.env}, timeout=60,
    )
    assert result.returncode == exit_code
    assert message in result.stderr


def test_host_reports_a_used_code_and_leaves_the_first_host_connected(xvfb, loopback_broker, console) -> None:
    _ticket_id, session_id, code = open_ticket_and_session(console)
    with running_host(code, loopback_broker.base_url, xvfb.env) as first:
        assert first.stdout is not None
        assert first.stdout.readline().startswith("Joined session")
        second = subprocess.run(
            [*HOST, "join", code, "--broker", loopback_broker.base_url, *UNATTENDED],
            capture_output=True, text=True, env={**os.environ, **xvfb.env}, timeout=60,
        )
        assert second.returncode == 1
        assert "already used" in second.stderr
        assert console.json("session", "show", session_id)["state"] == "connected"
        console.json("session", "end", session_id)
        first.communicate(timeout=30)
        assert first.returncode == 0
