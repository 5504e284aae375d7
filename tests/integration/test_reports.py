"""KPI reports from a real broker over a seeded database, checked against a hand computation
done here over the raw rows (plain SQL and Python, not ``broker.helpdesk.kpis``)."""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from bench.seed_helpdesk import seed_database
from tests.support.accounts import PASSWORD, make_user
from tests.support.api import bearer
from tests.support.broker import BrokerProcess

DONE = ("resolved", "closed")
TODAY = datetime.now(UTC).date()
FROM, TO = TODAY - timedelta(days=13), TODAY  # two weeks; the seed spans three, so some tickets came before


@pytest.fixture(scope="module")
def seeded(broker: BrokerProcess) -> dict[str, Any]:
    """40 tickets over 21 days (fixed seed), written into the running broker's database."""
    summary = seed_database(broker.database_url, tickets=40, seed=7, days=21, technicians=4)
    assert summary.tickets == 40 and summary.sessions > 0 and summary.surveys > 0
    return {"summary": summary}


def parse(text: object) -> datetime | None:
    """SQLite's stored UTC text (naive) as an aware datetime."""
    return None if text is None else stored_time(text)


def stored_time(text: object) -> datetime:
    """A NOT NULL time column's stored UTC text (naive) as an aware datetime."""
    return datetime.fromisoformat(str(text)).replace(tzinfo=UTC)


def kpis(broker: BrokerProcess, headers: dict[str, str], **params: str) -> Any:
    response = broker.http.get("/reports/kpis", params={"from": FROM.isoformat(), "to": TO.isoformat(), **params},
                               headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def by_hand(broker: BrokerProcess, assignee: str | None = None) -> dict[str, Any]:
    """Every overall KPI of [FROM, TO], straight from the tables."""
    begins = datetime.combine(FROM, datetime.min.time(), tzinfo=UTC)
    ends = datetime.combine(TO + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    rows: list[tuple[Any, ...]] = broker.sql(
        "SELECT t.id, t.created_at, t.status, t.first_response_at, t.resolved_at, t.reopen_count, t.category,"
        " t.requester_email, t.requester_name, u.username,"
        " (SELECT count(*) FROM support_sessions s WHERE s.ticket_id = t.id AND s.connected_at IS NOT NULL)"
        " FROM tickets t LEFT JOIN users u ON u.id = t.assignee_id")
    tickets = [dict(id=r[0], created=parse(r[1]), status=r[2], responded=parse(r[3]), resolved=parse(r[4]),
                    reopens=r[5], category=r[6].strip().casefold(), who=(r[7] or r[8]).lower(), assignee=r[9], joined=r[10])
               for r in rows]
    everyone = tickets
    if assignee is not None:
        tickets = [t for t in tickets if t["assignee"] == assignee]
    in_range = [t for t in tickets if begins <= t["created"] < ends]
    done = [t for t in in_range if t["status"] in DONE]

    def stats(values: list[float]) -> dict[str, Any]:
        ordered = sorted(values)
        if not ordered:
            return {"count": 0, "median_seconds": None, "p90_seconds": None, "mean_seconds": None}
        return {"count": len(ordered), "median_seconds": statistics.median(ordered),
                "p90_seconds": ordered[math.ceil(0.9 * len(ordered)) - 1], "mean_seconds": sum(ordered) / len(ordered)}

    def repeat(t: dict[str, Any]) -> bool:
        return bool(t["category"]) and any(
            p["id"] != t["id"] and p["category"] == t["category"] and p["who"] == t["who"]
            and (p["created"], p["id"]) < (t["created"], t["id"]) and t["created"] - p["created"] <= timedelta(days=30)
            for p in everyone)

    ids = {t["id"] for t in tickets}
    surveys: list[tuple[Any, ...]] = broker.sql("SELECT ticket_id, rating, submitted_at FROM session_surveys")
    ratings = [r for (tid, r, at) in surveys if tid in ids and begins <= stored_time(at) < ends]
    first_contact = [t for t in done if t["reopens"] == 0 and t["joined"] <= 1]
    repeats = [t for t in in_range if repeat(t)]
    counts = Counter(ratings)
    satisfied = counts[4] + counts[5]
    return {
        "volume": len(in_range),
        "backlog": sum(1 for t in tickets if t["created"] < ends and not (t["status"] in DONE and t["resolved"] < ends)),
        "first_response": stats([(t["responded"] - t["created"]).total_seconds() for t in in_range if t["responded"]]),
        "resolution": stats([(t["resolved"] - t["created"]).total_seconds() for t in done]),
        "first_contact_resolution": {"count": len(first_contact), "of": len(done),
                                     "rate": len(first_contact) / len(done) if done else None},
        "csat": {"surveys": len(ratings), "satisfied": satisfied, "rate": satisfied / len(ratings) if ratings else None,
                 "average": sum(ratings) / len(ratings) if ratings else None,
                 "distribution": [counts[n] for n in range(1, 6)]},
        "repeats": {"count": len(repeats), "of": len(in_range), "rate": len(repeats) / len(in_range) if in_range else None},
    }


def approx(figures: dict[str, Any]) -> dict[str, Any]:
    """Floats compared to the microsecond (JSON round trip)."""
    def walk(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return pytest.approx(v, abs=1e-6) if isinstance(v, float) else v
    return walk(figures)


def test_overall_figures_match_a_hand_computation(broker, admin, seeded) -> None:
    report = kpis(broker, admin)
    assert (report["from"], report["to"], report["repeat_window_days"]) == (FROM.isoformat(), TO.isoformat(), 30)
    expected = by_hand(broker)
    assert expected["volume"] > 0 and expected["backlog"] > 0  # the seed gave the range something to count
    assert report["overall"] == approx(expected)
    # The daily series add up to the range, and end on the range's backlog.
    assert len(report["daily"]) == 14 and report["daily"][0]["day"] == FROM.isoformat()
    assert sum(d["created"] for d in report["daily"]) == expected["volume"]
    assert report["daily"][-1]["backlog"] == expected["backlog"]


def test_per_technician_and_team_groups(broker, admin, seeded) -> None:
    report = kpis(broker, admin)
    technicians = {g["name"]: g for g in report["technicians"]}
    busiest = max((n for n in technicians if n != "(unassigned)"), key=lambda n: technicians[n]["figures"]["volume"])
    assert technicians[busiest]["figures"] == approx(by_hand(broker, busiest))
    # Each ticket counts for exactly one technician group.
    assert sum(g["figures"]["volume"] for g in report["technicians"]) == report["overall"]["volume"]
    assert sum(g["figures"]["backlog"] for g in report["technicians"]) == report["overall"]["backlog"]
    # Team volumes by hand: the ticket's team, else every team of its assignee, else none.
    teams_of: dict[object, list[str]] = {}
    for user_id, name in broker.sql("SELECT m.user_id, team.name FROM team_members m JOIN teams team ON team.id = m.team_id"):
        teams_of.setdefault(user_id, []).append(str(name))
    rows = broker.sql(
        "SELECT t.id, tm.name, t.assignee_id FROM tickets t LEFT JOIN teams tm ON tm.id = t.assignee_team_id"
        " WHERE t.created_at >= ? AND t.created_at < ?",
        f"{FROM.isoformat()} 00:00:00", f"{(TO + timedelta(days=1)).isoformat()} 00:00:00")
    volumes: Counter[str] = Counter()
    for _id, team, assignee in rows:
        for name in ([team] if team else teams_of.get(assignee) or ["(no team)"]):
            volumes[name] += 1
    assert {g["name"]: g["figures"]["volume"] for g in report["teams"] if g["figures"]["volume"]} == dict(volumes)


def test_filters(broker, admin, seeded) -> None:
    whole = kpis(broker, admin)
    first = next(g for g in whole["technicians"] if g["id"] is not None)
    filtered = kpis(broker, admin, technician=first["name"])
    assert filtered["technician"] == first["name"] and filtered["overall"] == first["figures"]
    assert [g["name"] for g in filtered["technicians"]] == [first["name"]]
    team = next(g for g in whole["teams"] if g["id"] is not None)
    by_team = kpis(broker, admin, team=team["name"])
    assert by_team["overall"] == team["figures"] and [g["name"] for g in by_team["teams"]] == [team["name"]]


def test_csv_matches_json_and_is_audited(broker, admin, seeded) -> None:
    report = kpis(broker, admin)
    before = broker.sql("SELECT count(*) FROM audit_events WHERE kind = 'report.exported'")[0][0]
    response = broker.http.post("/reports/kpis.csv", params={"from": FROM.isoformat(), "to": TO.isoformat()}, headers=admin)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == (
        f'attachment; filename="deskhand-kpis-{FROM.isoformat()}-to-{TO.isoformat()}.csv"')
    rows = list(csv.DictReader(io.StringIO(response.text)))
    groups = [("overall", "all", report["overall"])] + [
        (g["scope"], g["name"], g["figures"]) for g in report["technicians"] + report["teams"]]
    assert [(r["scope"], r["name"]) for r in rows] == [(s, n) for s, n, _ in groups]

    def cell(value: Any) -> str:
        return "" if value is None else str(value)

    for row, (_scope, _name, f) in zip(rows, groups, strict=False):
        assert row["volume"] == str(f["volume"]) and row["backlog"] == str(f["backlog"])
        assert row["first_response_median_seconds"] == cell(f["first_response"]["median_seconds"])
        assert row["resolution_p90_seconds"] == cell(f["resolution"]["p90_seconds"])
        assert row["first_contact_resolution_rate"] == cell(f["first_contact_resolution"]["rate"])
        assert row["csat_rate"] == cell(f["csat"]["rate"]) and row["repeat_rate"] == cell(f["repeats"]["rate"])
    events = broker.sql("SELECT actor, data FROM audit_events WHERE kind = 'report.exported' ORDER BY id")
    assert len(events) == before + 1
    assert events[-1][0] == "user:admin" and f'"from": "{FROM.isoformat()}"' in str(events[-1][1])


@pytest.mark.parametrize(("params", "status", "words"), [
    ({"from": "2026-03-10", "to": "2026-03-01"}, 422, "before from"),
    ({"from": "2026-02-30", "to": "2026-03-01"}, 422, "from"),
    ({"from": "yesterday", "to": "2026-03-01"}, 422, "from"),
    ({"from": "2024-01-01", "to": "2026-01-01"}, 422, "at most 366"),
    ({"from": "2026-03-01"}, 422, "to"),
    ({"from": "2026-03-01", "to": "2026-03-02", "colour": "red"}, 422, "colour"),
    ({"from": "2026-03-01", "to": "2026-03-02", "team": "Bad Name!"}, 422, "team"),
    ({"from": "2026-03-01", "to": "2026-03-02", "team": "no-such-team"}, 404, "team 'no-such-team'"),
    ({"from": "2026-03-01", "to": "2026-03-02", "technician": "no-such-tech"}, 404, "account 'no-such-tech'"),
])
@pytest.mark.parametrize(("method", "path"), [("GET", "/reports/kpis"), ("POST", "/reports/kpis.csv")])
def test_bad_queries_are_refused_clearly(
    broker, admin, method: str, path: str, params: dict[str, str], status: int, words: str,
) -> None:
    response = broker.http.request(method, path, params=params, headers=admin)
    assert response.status_code == status, response.text
    assert words in response.json()["message"]


def test_only_report_readers(broker, admin) -> None:
    make_user(broker, "kpi-tech", role="technician")
    tech = bearer(broker.login("kpi-tech", PASSWORD))
    query = {"from": "2026-03-01", "to": "2026-03-02"}
    for method, path in (("GET", "/reports/kpis"), ("POST", "/reports/kpis.csv")):
        refused = broker.http.request(method, path, params=query, headers=tech)
        assert refused.status_code == 403 and "reports.read" in refused.json()["message"]
        assert broker.http.request(method, path, params=query).status_code == 401
    made = broker.http.post("/roles", headers=admin, json={"name": "kpi-reader", "permissions": ["reports.read"]})
    assert made.status_code == 201, made.text
    make_user(broker, "kpi-boss", role="kpi-reader")
    boss = bearer(broker.login("kpi-boss", PASSWORD))
    assert broker.http.get("/reports/kpis", params=query, headers=boss).status_code == 200


def test_an_empty_range(broker, admin, seeded) -> None:
    report = broker.http.get("/reports/kpis", params={"from": "2001-01-01", "to": "2001-01-31"}, headers=admin).json()
    assert report["overall"]["volume"] == 0 and report["overall"]["backlog"] == 0
    assert report["overall"]["csat"]["rate"] is None and report["technicians"] == [] and len(report["daily"]) == 31
    assert date.fromisoformat(report["daily"][-1]["day"]) == date(2001, 1, 31)


def test_seeded_rows_are_in_states_the_broker_produces(broker, admin, seeded) -> None:
    now = datetime.now(UTC)
    tickets = broker.sql("SELECT id, status, created_at, first_response_at, resolved_at, closed_at, reopen_count FROM tickets")
    for tid, status, created, responded, resolved, closed, reopens in tickets:
        created, responded, resolved, closed = map(parse, (created, responded, resolved, closed))
        assert created is not None and created < now, tid
        if status in DONE:
            assert responded is not None and resolved is not None and created <= responded <= resolved < now, tid
        if status == "closed":
            assert closed is not None and resolved is not None and resolved <= closed < now, tid
        if status == "reopened":
            assert reopens >= 1 and resolved is not None, tid
        if status == "new":
            assert responded is None and resolved is None, tid
    for sid, state, connected, ended in broker.sql("SELECT id, state, connected_at, ended_at FROM support_sessions"):
        assert state in ("ended", "expired") and ended is not None, sid
        assert (connected is None) == (state == "expired"), sid
    assert broker.sql("SELECT count(*) FROM session_surveys v JOIN support_sessions s ON s.id = v.session_id"
                      " WHERE s.state != 'ended' OR v.submitted_at < s.ended_at")[0][0] == 0
    # The broker's own API reads them: the list, and a ticket with its sessions and surveys.
    listed = broker.http.get("/tickets", params={"limit": 500}, headers=admin)
    assert listed.status_code == 200, listed.text
    surveyed = broker.sql("SELECT ticket_id FROM session_surveys LIMIT 1")[0][0]
    shown = broker.http.get(f"/tickets/{surveyed}", headers=admin)
    assert shown.status_code == 200, shown.text
    assert shown.json()["sessions"] and shown.json()["surveys"]
