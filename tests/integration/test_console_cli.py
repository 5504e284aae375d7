"""``deskhand-console`` against a real broker: the scripting path and its errors."""

from __future__ import annotations

import json
import socket
import stat

import pytest

from tests.support.console import ConsoleRunner, console_runner


@pytest.fixture
def run(broker, tmp_path) -> ConsoleRunner:
    return console_runner(broker.base_url, tmp_path / "c.json")


def test_login_keeps_a_private_token_and_the_session_commands_work(run, broker, tmp_path) -> None:
    login = run("login", "-u", "admin", "--password-stdin", stdin=broker.admin_password + "\n")
    assert login.returncode == 0, login.stderr
    assert stat.S_IMODE((tmp_path / "c.json").stat().st_mode) == 0o600

    ticket = json.loads(run("--json", "ticket", "create", "--subject", "Mail", "--requester-name", "Ann",
                            "--requester-email", "ann@example.com", "--priority", "urgent").stdout)
    started = run("session", "start", "--ticket", str(ticket["id"]))
    assert started.returncode == 0
    assert "Code: " in started.stdout and "deskhand-host join" in started.stdout
    session_id = started.stdout.split("Session: ")[1].split()[0]
    shown = run("session", "show", session_id)
    assert "waiting" in shown.stdout
    assert run("session", "end", session_id, "--reason", "not needed").returncode == 0
    listing = run("ticket", "list")
    assert "Mail" in listing.stdout and "urgent" in listing.stdout
    assert run("logout").returncode == 0
    assert not (tmp_path / "c.json").exists()


def test_errors_are_one_clear_line_with_a_nonzero_exit(run, broker) -> None:
    wrong = run("login", "-u", "admin", "--password-stdin", stdin="wrong\n")
    assert wrong.returncode == 1 and "wrong username or password" in wrong.stderr

    unsigned = run("ticket", "list")
    assert unsigned.returncode == 1 and "sign in first" in unsigned.stderr

    bad_email = run("ticket", "create", "--subject", "x", "--requester-name", "A", "--requester-email", "nope")
    assert bad_email.returncode == 2 and "--requester-email" in bad_email.stderr

    bad_id = run("session", "show", "42")
    assert bad_id.returncode == 2 and "not a session id" in bad_id.stderr

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free_port = s.getsockname()[1]
    unreachable = run("--broker", f"http://127.0.0.1:{free_port}", "whoami", DESKHAND_TOKEN="dhu_x")
    assert unreachable.returncode == 1 and "cannot reach the broker" in unreachable.stderr


def test_a_token_from_the_environment_is_used(run, broker) -> None:
    me = run("--json", "whoami", DESKHAND_TOKEN=broker.login())
    assert me.returncode == 0 and json.loads(me.stdout)["username"] == "admin"
    stale = run("whoami", DESKHAND_TOKEN="dhu_revoked")
    assert stale.returncode == 1 and "sign in again" in stale.stderr
