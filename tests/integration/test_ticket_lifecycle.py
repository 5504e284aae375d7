"""The ticket lifecycle through a real broker: statuses, assignment, comments, SLA flags, session reports."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.support.accounts import PASSWORD, make_user
from tests.support.api import age_sla_timers, create_ticket, end_session, join, start_session
from tests.support.broker import BrokerProcess
from tests.support.database import BrokerDatabases
from tests.support.in_process import AppBroker

pytestmark = pytest.mark.both_stacks


@pytest.fixture(scope="module")
def broker_env(broker_db: BrokerDatabases) -> dict[str, str]:
    """On SQLite, then on PostgreSQL."""
    return {"DESKHAND_SLA_SWEEP_SECONDS": "0.2", **broker_db.env()}


@pytest.fixture(scope="module")
def broker(in_process_broker: AppBroker) -> AppBroker:
    """The rules of tickets need no server: the app in this process (the domain tier)."""
    return in_process_broker


@pytest.fixture(scope="module")
def tech(broker: BrokerProcess) -> dict[str, str]:
    make_user(broker, "tina")
    make_user(broker, "tom")
    return {"Authorization": f"Bearer {broker.login('tina', PASSWORD)}"}


def patch(broker: BrokerProcess, headers: dict[str, str], ticket_id: int, **body: Any) -> Any:
    return broker.http.patch(f"/tickets/{ticket_id}", json=body, headers=headers)


def kinds(broker: BrokerProcess, ticket_id: int) -> list[str]:
    return [k for (k,) in broker.sql("SELECT kind FROM audit_events WHERE ticket_id = ? ORDER BY id", ticket_id)]


def test_a_ticket_moves_along_its_lifecycle_and_refuses_a_shortcut(broker, admin) -> None:
    ticket = create_ticket(broker, admin, priority="high", category="Network")
    assert ticket["status"] == "new" and ticket["category"] == "Network"
    assert ticket["allowed_statuses"] == ["open", "pending", "resolved", "closed"]
    assert ticket["sla"]["first_response"]["state"] == "running"
    assert ticket["sla"]["first_response"]["target_s"] == 3600  # the default for high

    pending = patch(broker, admin, ticket["id"], status="pending").json()
    assert pending["sla"]["first_response"]["state"] == "paused"
    assert pending["sla"]["resolution"]["due_at"] is None

    resolved = patch(broker, admin, ticket["id"], status="resolved").json()
    assert resolved["status"] == "resolved" and resolved["resolved_at"] is not None
    assert resolved["sla"]["resolution"]["state"] == "met"
    assert resolved["allowed_statuses"] == ["closed", "reopened"]

    refused = patch(broker, admin, ticket["id"], status="pending")
    assert refused.status_code == 409
    assert refused.json()["message"] == "a resolved ticket cannot become pending; it can become closed, reopened"

    reopened = patch(broker, admin, ticket["id"], status="reopened").json()
    assert reopened["reopen_count"] == 1 and reopened["sla"]["resolution"]["state"] == "running"
    closed = patch(broker, admin, ticket["id"], status="closed").json()
    assert closed["status"] == "closed"
    assert kinds(broker, ticket["id"]).count("ticket.status_changed") == 4


def test_a_public_reply_is_the_first_response_and_a_note_is_not(broker, admin) -> None:
    ticket = create_ticket(broker, admin)
    note = broker.http.post(f"/tickets/{ticket['id']}/comments", json={"body": "checked the logs"}, headers=admin)
    assert note.status_code == 201 and note.json()["visibility"] == "internal" and note.json()["kind"] == "note"
    shown = broker.http.get(f"/tickets/{ticket['id']}", headers=admin).json()
    assert shown["first_response_at"] is None and shown["status"] == "new"

    reply = broker.http.post(f"/tickets/{ticket['id']}/comments",
                             json={"body": "On it, Ann.", "visibility": "public"}, headers=admin)
    assert reply.status_code == 201 and reply.json()["kind"] == "reply"
    shown = broker.http.get(f"/tickets/{ticket['id']}", headers=admin).json()
    assert shown["first_response_at"] is not None and shown["status"] == "open"
    assert shown["sla"]["first_response"]["state"] == "met"
    assert [c["body"] for c in shown["comments"]] == ["checked the logs", "On it, Ann."]
    assert shown["comments"][1]["author_user"]["username"] == "admin"


def test_technicians_take_tickets_and_only_assigners_hand_them_out(broker, admin, tech) -> None:
    ticket = create_ticket(broker, admin)
    mine = patch(broker, tech, ticket["id"], assignee="tina")
    assert mine.status_code == 200, mine.text
    assert mine.json()["assignee"]["username"] == "tina" and mine.json()["status"] == "open"

    to_tom = patch(broker, tech, ticket["id"], assignee="tom")
    assert to_tom.status_code == 403 and "tickets.assign" in to_tom.json()["message"]
    to_team = patch(broker, tech, ticket["id"], team="nobody-team")
    assert to_team.status_code == 422 and "there is no team 'nobody-team'" in to_team.json()["message"]

    broker.http.post("/teams", json={"name": "field", "description": ""}, headers=admin).raise_for_status()
    handed = patch(broker, admin, ticket["id"], assignee="tom", team="field").json()
    assert handed["assignee"]["username"] == "tom" and handed["team"]["name"] == "field"
    assert patch(broker, admin, ticket["id"], assignee="ghost").status_code == 422
    assert "ticket.assigned" in kinds(broker, ticket["id"])

    listed = broker.http.get("/tickets", params={"team": "field"}, headers=admin).json()
    assert [t["id"] for t in listed] == [ticket["id"]]
    unassigned = broker.http.get("/tickets", params={"assignee": "none"}, headers=admin).json()
    assert ticket["id"] not in [t["id"] for t in unassigned]
    mine_list = broker.http.get("/tickets", params={"assignee": "me"}, headers=tech).json()
    assert ticket["id"] not in [t["id"] for t in mine_list]


def test_lists_filter_by_status_priority_text_and_external_reference(broker, admin) -> None:
    a = create_ticket(broker, admin, subject="Laptop fan noise 7731", priority="low")
    b = create_ticket(broker, admin, subject="Fan 7731 too", priority="urgent",
                      external={"system": "jira", "key": "HELP-7731"})
    assert b["external"] == {"system": "jira", "key": "HELP-7731"}
    found = broker.http.get("/tickets", params={"q": "7731", "priority": "low,urgent"}, headers=admin).json()
    assert {t["id"] for t in found} == {a["id"], b["id"]}
    by_ref = broker.http.get("/tickets", params={"external_system": "jira", "external_key": "HELP-7731"},
                             headers=admin).json()
    assert [t["id"] for t in by_ref] == [b["id"]]
    taken = broker.http.post("/tickets", json={"subject": "dup", "requester_name": "A", "requester_email": "a@b.cd",
                                               "external": {"system": "jira", "key": "HELP-7731"}}, headers=admin)
    assert taken.status_code == 409 and f"ticket {b['id']}" in taken.json()["message"]
    # A wildcard in the search text is text, not a pattern.
    assert broker.http.get("/tickets", params={"q": "%"}, headers=admin).json() == []


@pytest.mark.parametrize(("body", "fragment"), [
    ({}, "nothing to change"),
    ({"subject": None}, "subject cannot be null"),
    ({"status": "done"}, "status"),
    ({"priority": "asap"}, "priority"),
    ({"category": "x" * 65}, "category"),
    ({"external": {"system": "Jira!", "key": "1"}}, "system"),
    ({"mood": "happy"}, "mood"),
])
def test_bad_changes_are_refused_and_change_nothing(broker, admin, body, fragment) -> None:
    ticket = create_ticket(broker, admin)
    response = broker.http.patch(f"/tickets/{ticket['id']}", json=body, headers=admin)
    assert response.status_code == 422 and fragment in response.json()["message"], response.text
    assert broker.http.get(f"/tickets/{ticket['id']}", headers=admin).json()["updated_at"] == ticket["updated_at"]


@pytest.mark.parametrize(("params", "fragment"), [
    ({"status": "open,done"}, "unknown status 'done'"),
    ({"priority": "soon"}, "unknown priority 'soon'"),
    ({"sla": "late"}, "sla"),
    ({"order": "random"}, "order"),
    ({"team": "no-such-team"}, "there is no team"),
])
def test_bad_list_queries_are_refused_with_the_reason(broker, admin, params, fragment) -> None:
    response = broker.http.get("/tickets", params=params, headers=admin)
    assert response.status_code == 422 and fragment in response.json()["message"], response.text


def test_blank_comments_are_refused(broker, admin) -> None:
    ticket = create_ticket(broker, admin)
    for body in ({"body": "   "}, {"body": ""}, {"body": "x", "visibility": "secret"}, {"text": "x"}):
        assert broker.http.post(f"/tickets/{ticket['id']}/comments", json=body, headers=admin).status_code == 422
    assert broker.sql("SELECT count(*) FROM ticket_comments WHERE ticket_id = ?", ticket["id"]) == [(0,)]


def test_a_running_timer_that_runs_out_is_flagged_and_audited_once(broker, admin) -> None:
    ticket = create_ticket(broker, admin, priority="urgent", subject="Server room hot")
    age_sla_timers(broker, ticket["id"], hours=1)  # urgent: 15 min to respond
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "ticket.sla_breached" not in kinds(broker, ticket["id"]):
        time.sleep(0.1)
    assert kinds(broker, ticket["id"]).count("ticket.sla_breached") == 1
    time.sleep(0.5)  # more sweeps: still one event
    assert kinds(broker, ticket["id"]).count("ticket.sla_breached") == 1
    shown = broker.http.get(f"/tickets/{ticket['id']}", headers=admin).json()
    assert shown["sla"]["breached"] and shown["sla"]["first_response"]["state"] == "breached"
    breached = broker.http.get("/tickets", params={"sla": "breached"}, headers=admin).json()
    assert ticket["id"] in [t["id"] for t in breached]
    on_track = broker.http.get("/tickets", params={"sla": "on_track"}, headers=admin).json()
    assert ticket["id"] not in [t["id"] for t in on_track]
    # Answering late keeps the breach on record.
    patch(broker, admin, ticket["id"], status="resolved")
    assert broker.http.get(f"/tickets/{ticket['id']}", headers=admin).json()["sla"]["breached"]


def test_sla_targets_are_read_by_all_and_set_by_policy_managers(broker, admin, tech) -> None:
    shown = broker.http.get("/sla/targets", headers=tech).json()
    assert [t["priority"] for t in shown["targets"]] == ["low", "normal", "high", "urgent"]
    assert shown["business_hours"] == "mon-fri 09:00-17:00"
    body = {"targets": [{"priority": "low", "first_response_minutes": 120, "resolution_minutes": 600,
                         "business_hours": True}]}
    assert broker.http.put("/sla/targets", json=body, headers=tech).status_code == 403
    changed = broker.http.put("/sla/targets", json=body, headers=admin).json()
    assert changed["targets"][0] == {"priority": "low", "first_response_minutes": 120, "resolution_minutes": 600,
                                     "business_hours": True}
    ticket = create_ticket(broker, admin, priority="low")
    assert ticket["sla"]["business_hours"] and ticket["sla"]["first_response"]["target_s"] == 7200
    for bad, fragment in [
        ({"targets": [{"priority": "low", "first_response_minutes": 60, "resolution_minutes": 30}]}, "shorter"),
        ({"targets": [{"priority": "low", "first_response_minutes": 0, "resolution_minutes": 30}]}, "first_response"),
        ({"targets": [{"priority": "low", "first_response_minutes": 1, "resolution_minutes": 2}] * 2}, "once"),
        ({"targets": []}, "targets"),
    ]:
        response = broker.http.put("/sla/targets", json=bad, headers=admin)
        assert response.status_code == 422 and fragment in response.json()["message"], response.text


def test_a_session_is_the_first_response_and_leaves_its_report_on_the_ticket(broker, admin) -> None:
    ticket = create_ticket(broker, admin)
    started = start_session(broker, admin, ticket["id"])
    assert join(broker, started["code"]).status_code == 200
    shown = broker.http.get(f"/tickets/{ticket['id']}", headers=admin).json()
    assert shown["first_response_at"] is not None and shown["status"] == "open"
    assert end_session(broker, admin, started["session"]["id"], "printer driver reinstalled").status_code == 200
    shown = broker.http.get(f"/tickets/{ticket['id']}", headers=admin).json()
    (report,) = [c for c in shown["comments"] if c["kind"] == "session_report"]
    assert report["visibility"] == "internal" and report["session_id"] == started["session"]["id"]
    assert "Ended by the technician: printer driver reinstalled" in report["body"]
    assert "Computer: test-pc (Linux 6), user ann" in report["body"]
    # A session that never connected leaves no report.
    unused = start_session(broker, admin, ticket["id"])
    end_session(broker, admin, unused["session"]["id"])
    comments = broker.http.get(f"/tickets/{ticket['id']}", headers=admin).json()["comments"]
    assert [c["kind"] for c in comments].count("session_report") == 1


def test_a_technician_takes_from_their_team_queue_but_not_from_a_colleague(broker, admin, tech) -> None:
    broker.http.post("/teams", json={"name": "desk", "description": ""}, headers=admin).raise_for_status()
    broker.http.put("/teams/desk/members/tina", headers=admin)
    queued = create_ticket(broker, admin, team="desk")
    taken = patch(broker, tech, queued["id"], assignee="tina")
    assert taken.status_code == 200, taken.text
    assert taken.json()["assignee"]["username"] == "tina" and taken.json()["team"]["name"] == "desk"

    toms = create_ticket(broker, admin, assignee="tom")
    grabbed = patch(broker, tech, toms["id"], assignee="tina")
    assert grabbed.status_code == 403 and "tickets.assign" in grabbed.json()["message"]
    assert broker.http.get(f"/tickets/{toms['id']}", headers=admin).json()["assignee"]["username"] == "tom"
