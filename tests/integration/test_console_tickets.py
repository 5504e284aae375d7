"""``deskhand-console ticket|sla`` against a real broker: lists, changes, comments, taking, SLA targets, bad input."""

from __future__ import annotations

import json
import socket
import subprocess
from typing import Any

import pytest

from tests.support.accounts import PASSWORD, make_user
from tests.support.api import age_sla_timers, create_ticket, end_session, join, start_session
from tests.support.broker import BrokerProcess
from tests.support.console import ConsoleRunner, console_runner
from tests.support.polling import wait_until


@pytest.fixture(scope="module")
def broker_env() -> dict[str, str]:
    return {"DESKHAND_SLA_SWEEP_SECONDS": "0.2"}


@pytest.fixture(scope="module")
def tokens(broker: BrokerProcess) -> dict[str, str]:
    """Login tokens of the admin and of two technicians."""
    make_user(broker, "tina")
    make_user(broker, "tom")
    return {"admin": broker.login(), "tina": broker.login("tina", PASSWORD), "tom": broker.login("tom", PASSWORD)}


@pytest.fixture
def run(broker, tmp_path) -> ConsoleRunner:
    return console_runner(broker.base_url, tmp_path / "c.json")


@pytest.fixture
def as_admin(run, tokens) -> ConsoleRunner:
    return lambda *args, **kw: run(*args, DESKHAND_TOKEN=tokens["admin"], **kw)


@pytest.fixture
def as_tina(run, tokens) -> ConsoleRunner:
    return lambda *args, **kw: run(*args, DESKHAND_TOKEN=tokens["tina"], **kw)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def ids(result: subprocess.CompletedProcess[str]) -> list[int]:
    return [t["id"] for t in json.loads(ok(result))]


def headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def kinds(broker: BrokerProcess, ticket_id: int) -> list[str]:
    return [str(k) for (k,) in broker.sql("SELECT kind FROM audit_events WHERE ticket_id = ? ORDER BY id", ticket_id)]


def row(table: str, ticket_id: int) -> list[str]:
    """The cells of a ticket's row in ``ticket list`` (the subject last, whole)."""
    (line,) = [line for line in table.splitlines() if line.split()[0] == str(ticket_id)]
    return line.split()


def test_lists_filter_order_and_show_each_tickets_sla(broker, tokens, as_admin, as_tina) -> None:
    admin = headers(tokens["admin"])
    running = create_ticket(broker, admin, subject="Fan 5501 noisy", priority="normal")
    waiting = create_ticket(broker, admin, subject="VPN 5501", priority="low", category="Network")
    broker.http.patch(f"/tickets/{waiting['id']}", json={"status": "pending"}, headers=admin).raise_for_status()
    late = create_ticket(broker, admin, subject="Server 5501 down", priority="urgent", assignee="tina")
    risky = create_ticket(broker, admin, subject="Mail 5501 slow", priority="high")
    done = create_ticket(broker, admin, subject="Printer 5501", priority="normal")
    broker.http.patch(f"/tickets/{done['id']}", json={"status": "resolved"}, headers=admin).raise_for_status()
    # Aged in this order, the sweep that flags the breach has recomputed the at-risk ticket too.
    age_sla_timers(broker, risky["id"], hours=50 / 60)  # high: 60 min to respond, 10 left
    age_sla_timers(broker, late["id"], hours=1)  # urgent: 15 min to respond
    wait_until(lambda: "ticket.sla_breached" in kinds(broker, late["id"]), "the SLA sweep to flag the breach")

    everything = as_admin("tickets", "list", "--search", "5501")
    table = ok(everything)
    assert table.splitlines()[0].split() == ["ID", "STATUS", "PRIORITY", "SLA", "(UTC)", "ASSIGNED", "SESSIONS", "SUBJECT"]
    assert row(table, late["id"])[:5] == [str(late["id"]), "open", "urgent", "breached", "tina"]
    at_risk = row(table, risky["id"])[3:8]
    assert at_risk[:2] == ["at", "risk"] and at_risk[2] in ("9", "10") and at_risk[3:] == ["min", "left"]
    assert row(table, running["id"])[3] == "due"
    assert row(table, waiting["id"])[3] == "paused"
    assert row(table, done["id"])[3] == "met"

    assert ids(as_admin("--json", "tickets", "list", "--search", "5501", "--sla", "breached")) == [late["id"]]
    assert ids(as_admin("tickets", "list", "--search", "5501", "--sla", "at_risk", "--json")) == [risky["id"]]
    assert ids(as_admin("tickets", "list", "--search", "5501", "--status", "pending,resolved", "--json")) \
        == [done["id"], waiting["id"]]
    assert ids(as_admin("tickets", "list", "--search", "5501", "--priority", "low", "--category", "Network",
                        "--json")) == [waiting["id"]]
    assert ids(as_tina("tickets", "list", "--search", "5501", "--assignee", "me", "--json")) == [late["id"]]
    assert ids(as_admin("tickets", "list", "--search", "5501", "--assignee", "tina", "--json")) == [late["id"]]
    assert late["id"] not in ids(as_admin("tickets", "list", "--search", "5501", "--assignee", "none", "--json"))
    # Soonest breach first; tickets whose timers do not run (paused, met) last, oldest of them first.
    assert ids(as_admin("tickets", "list", "--search", "5501", "--order", "due", "--json")) \
        == [late["id"], risky["id"], running["id"], waiting["id"], done["id"]]
    assert ids(as_admin("tickets", "list", "--search", "5501", "--order", "oldest", "--limit", "2", "--offset", "1",
                        "--json")) == [waiting["id"], late["id"]]
    assert ok(as_admin("tickets", "list", "--search", "no-such-5501")) == "No tickets.\n"


def test_changes_go_through_and_a_refused_move_names_the_allowed_ones(broker, tokens, as_admin) -> None:
    admin = headers(tokens["admin"])
    ticket = create_ticket(broker, admin, subject="Laptop slow")
    broker.http.post("/teams", json={"name": "field", "description": ""}, headers=admin).raise_for_status()

    changed = json.loads(ok(as_admin(
        "tickets", "update", str(ticket["id"]), "--priority", "high", "--category", "Hardware",
        "--external", "jira:HELP-61", "--subject", "Laptop slow since update", "--assign", "tom", "--team", "field",
        "--json",
    )))
    assert changed["priority"] == "high" and changed["category"] == "Hardware"
    assert changed["external"] == {"system": "jira", "key": "HELP-61"}
    assert changed["subject"] == "Laptop slow since update"
    assert changed["assignee"]["username"] == "tom" and changed["team"]["name"] == "field"
    assert changed["status"] == "open"  # assigned: someone works it now

    # Only what is given changes: taking the team off keeps the technician and the reference.
    kept = json.loads(ok(as_admin("tickets", "update", str(ticket["id"]), "--no-team", "--json")))
    assert kept["team"] is None and kept["assignee"]["username"] == "tom" and kept["external"] is not None
    cleared = json.loads(ok(as_admin("tickets", "update", str(ticket["id"]), "--unassign", "--no-external", "--json")))
    assert cleared["assignee"] is None and cleared["external"] is None and cleared["category"] == "Hardware"

    resolved = as_admin("tickets", "update", str(ticket["id"]), "--status", "resolved")
    assert f"Ticket {ticket['id']} updated: resolved, high" in ok(resolved)
    refused = as_admin("tickets", "update", str(ticket["id"]), "--status", "pending")
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr == "deskhand-console: a resolved ticket cannot become pending; it can become closed, reopened\n"
    assert broker.sql("SELECT status FROM tickets WHERE id = ?", ticket["id"]) == [("resolved",)]

    trail = kinds(broker, ticket["id"])
    assert trail.count("ticket.updated") == 2 and trail.count("ticket.assigned") == 3
    assert trail.count("ticket.status_changed") == 2  # new -> open on assignment, open -> resolved

    missing = as_admin("tickets", "update", "999999", "--status", "open")
    assert missing.returncode == 1 and "ticket 999999" in missing.stderr
    taken = create_ticket(broker, admin, external={"system": "jira", "key": "HELP-62"})
    clash = as_admin("tickets", "update", str(ticket["id"]), "--external", "jira:HELP-62")
    assert clash.returncode == 1 and f"linked to ticket {taken['id']}" in clash.stderr


def test_new_tickets_take_category_assignment_and_reference(broker, as_admin, as_tina) -> None:
    opened = json.loads(ok(as_admin(
        "tickets", "new", "--subject", "Dock flickers", "--requester-name", "Ann", "--requester-email",
        "ann@example.com", "--priority", "high", "--category", "Hardware", "--assignee", "tina",
        "--external", "zendesk-eu:4711", "--json",
    )))
    assert opened["category"] == "Hardware" and opened["assignee"]["username"] == "tina"
    assert opened["external"] == {"system": "zendesk-eu", "key": "4711"} and opened["status"] == "open"
    # A technician without tickets.assign may open a ticket for themselves, not for someone else.
    own = as_tina("tickets", "new", "--subject", "Mine", "--requester-name", "Bo", "--requester-email",
                  "bo@example.com", "--assignee", "tina")
    assert own.returncode == 0 and "Ticket " in own.stdout and "tina" in own.stdout
    theirs = as_tina("tickets", "new", "--subject", "Tom's", "--requester-name", "Bo", "--requester-email",
                     "bo@example.com", "--assignee", "tom")
    assert theirs.returncode == 1 and "tickets.assign" in theirs.stderr


def test_comments_are_notes_or_public_replies_and_show_lists_them(broker, tokens, as_admin, as_tina) -> None:
    admin = headers(tokens["admin"])
    ticket = create_ticket(broker, admin, subject="Printer jams")
    note = as_tina("tickets", "comment", str(ticket["id"]), "Checked the tray: fine")
    assert ok(note).startswith("Internal note ") and f"added to ticket {ticket['id']}." in note.stdout
    shown = broker.http.get(f"/tickets/{ticket['id']}", headers=admin).json()
    assert shown["first_response_at"] is None and shown["status"] == "new"

    reply = json.loads(ok(as_tina("tickets", "comment", str(ticket["id"]), "-", "--public", "--json",
                                  stdin="Hello Ann,\nplease restart the printer.\n")))
    assert reply["visibility"] == "public" and reply["kind"] == "reply"
    assert reply["body"] == "Hello Ann,\nplease restart the printer."  # the last line's end is not part of it
    assert reply["author_user"]["username"] == "tina"
    shown = broker.http.get(f"/tickets/{ticket['id']}", headers=admin).json()
    assert shown["first_response_at"] is not None and shown["status"] == "open"
    assert kinds(broker, ticket["id"]).count("ticket.commented") == 2

    # A session with a survey, then the whole ticket as text.
    started = start_session(broker, admin, ticket["id"])
    host_token = join(broker, started["code"]).json()["host_token"]
    end_session(broker, admin, started["session"]["id"], "jam cleared").raise_for_status()
    broker.http.post(f"/sessions/{started['session']['id']}/survey", json={"rating": 4, "comment": "Quick"},
                     headers=headers(host_token)).raise_for_status()
    text = ok(as_admin("tickets", "show", str(ticket["id"])))
    assert f"Ticket {ticket['id']}: Printer jams" in text
    assert "status open (may become pending, resolved, closed), priority normal" in text
    assert "SLA (every hour counts): first response met" in text and "resolution running" in text
    assert "tina, internal note:\n      Checked the tray: fine" in text
    assert "tina, public reply:\n      Hello Ann,\n      please restart the printer." in text
    assert "internal session report:" in text and "jam cleared" in text
    assert f"survey of session {started['session']['id']}: 4/5 \"Quick\"" in text


def test_take_assigns_the_ticket_to_yourself(broker, tokens, as_tina) -> None:
    admin = headers(tokens["admin"])
    ticket = create_ticket(broker, admin, subject="Monitor dead")
    taken = as_tina("tickets", "take", str(ticket["id"]))
    assert ok(taken).startswith(f"Ticket {ticket['id']} is yours: open, normal, tina")
    assert broker.http.get(f"/tickets/{ticket['id']}", headers=admin).json()["assignee"]["username"] == "tina"
    assert kinds(broker, ticket["id"]).count("ticket.assigned") == 1
    again = as_tina("tickets", "take", str(ticket["id"]))
    assert again.returncode == 0 and kinds(broker, ticket["id"]).count("ticket.assigned") == 1  # no change, no event
    missing = as_tina("tickets", "take", "999999")
    assert missing.returncode == 1 and missing.stderr == "deskhand-console: ticket 999999 does not exist or is not visible to you\n"


def test_sla_targets_are_shown_to_all_and_set_by_policy_managers(broker, as_admin, as_tina) -> None:
    shown = ok(as_tina("sla", "show"))
    lines = shown.splitlines()
    assert lines[0].split() == ["PRIORITY", "FIRST", "RESPONSE", "RESOLUTION", "COUNTS"]
    assert lines[4].split() == ["urgent", "15", "min", "4", "h", "00", "min", "every", "hour"]
    assert lines[-1] == "Business hours: mon-fri 09:00-17:00 (UTC); a ticket is at risk after 80 % of a target."

    refused = as_tina("sla", "set", "low", "--first-response", "120", "--resolution", "600")
    assert refused.returncode == 1 and "policies.manage" in refused.stderr

    changed = as_admin("sla", "set", "low", "--first-response", "120", "--resolution", "2880", "--business-hours")
    assert ok(changed).splitlines()[1].split() == ["low", "2", "h", "00", "min", "2", "d", "0", "h", "business", "hours"]
    targets: list[dict[str, Any]] = json.loads(ok(as_admin("sla", "show", "--json")))["targets"]
    assert targets[0] == {"priority": "low", "first_response_minutes": 120, "resolution_minutes": 2880,
                          "business_hours": True}
    opened = json.loads(ok(as_admin("--json", "tickets", "new", "--subject", "Low one", "--requester-name", "A",
                                    "--requester-email", "a@example.com", "--priority", "low")))
    assert opened["sla"]["business_hours"] and opened["sla"]["first_response"]["target_s"] == 7200


def _unreachable_broker() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize(("args", "message"), [
    (["tickets", "list", "--status", "open,done"],
     "argument --status: unknown status 'done'; choose from new, open, pending, resolved, closed, reopened"),
    (["tickets", "list", "--sla", "late"], "argument --sla: unknown SLA state 'late'; choose from breached, at_risk"),
    (["tickets", "list", "--order", "random"], "argument --order: unknown order 'random'"),
    (["tickets", "list", "--assignee", "Tina!"], "'Tina!' is not a username"),
    (["tickets", "update", "1", "--status", "done"], "argument --status: unknown status 'done'"),
    (["tickets", "update", "1", "--external", "HELP-42"],
     "argument --external: 'HELP-42' is not SYSTEM:KEY: write the helpdesk's name, a colon and the ticket's key"),
    (["tickets", "update", "1", "--external", "Jira:HELP-42"], "the system of 'Jira:HELP-42': use lower-case"),
    (["tickets", "update", "1", "--assign", "tina", "--unassign"], "argument --unassign: not allowed with argument --assign"),
    (["tickets", "update", "1", "--team", "field", "--no-team"], "argument --no-team: not allowed with argument --team"),
    (["tickets", "update", "1"], "nothing to change: give --status, --priority, --assign/--unassign"),
    (["tickets", "update", "0", "--status", "open"], "ticket id must be between 1 and 4611686018427387903, not 0"),
    (["tickets", "update", "1", "--subject", " padded"], "subject ' padded': leading or trailing whitespace"),
    (["tickets", "comment", "1", "   "], "TEXT: the comment is blank"),
    (["tickets", "new", "--subject", "x", "--requester-name", "A", "--requester-email", "a@example.com",
      "--external", "jira"], "argument --external: 'jira' is not SYSTEM:KEY"),
    (["sla", "set", "asap", "--first-response", "1", "--resolution", "2"], "unknown priority 'asap'"),
    (["sla", "set", "low", "--first-response", "60", "--resolution", "30"],
     "--resolution (30 min) must not be shorter than --first-response (60 min)"),
    (["sla", "set", "low", "--first-response", "0", "--resolution", "30"], "minutes must be between 1 and 527040, not 0"),
])
def test_bad_arguments_are_refused_before_any_request(run, args, message) -> None:
    # The broker URL leads nowhere: a request would fail with "cannot reach the broker", exit 1.
    result = run("--broker", _unreachable_broker(), *args, DESKHAND_TOKEN="dhu_unused")
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "cannot reach" not in result.stderr
