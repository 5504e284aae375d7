"""Helpdesk KPIs on a small hand-made data set, each figure worked out by hand below."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from broker.helpdesk.kpis import (
    Directory,
    Period,
    SurveyRow,
    TicketRow,
    compute,
    duration_stats,
    repeat_ids,
    safe_cell,
    to_csv,
)
from protocol.kpis import KpiFigures, KpiQuery, KpiReport

WINDOW = timedelta(days=30)
PERIOD = Period(date(2026, 3, 1), date(2026, 3, 3))  # three UTC days, ends 2026-03-04 00:00Z
NOW = datetime(2026, 3, 10, tzinfo=UTC)
ALICE, BOB, DESK, FIELD = 1, 2, 10, 20
DIRECTORY = Directory(
    users={ALICE: ("alice", "Alice A"), BOB: ("bob", "Bob B")},
    teams={DESK: "desk", FIELD: "field"},
    memberships={ALICE: (DESK,), BOB: (DESK, FIELD)},
)


def at(month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=UTC)


TICKETS = [
    # t1: in range, resolved after 2 h, first response after 30 min, one session, never reopened: FCR.
    TicketRow(1, at(3, 1, 9), "resolved", first_response_at=at(3, 1, 9, 30), resolved_at=at(3, 1, 11),
              assignee_id=ALICE, category="printer", requester_email="Ann@x.org", sessions=1),
    # t2: in range, closed after 24 h, reopened once; bo's second network ticket within 30 days of t6: repeat.
    TicketRow(2, at(3, 1, 10), "closed", first_response_at=at(3, 1, 10, 10), resolved_at=at(3, 2, 10),
              reopen_count=1, assignee_id=BOB, assignee_team_id=FIELD, category="network", requester_email="bo@x.org"),
    # t3: in range, open; ann (case differs) again about the printer 23 h after t1: repeat.
    TicketRow(3, at(3, 2, 8), "open", first_response_at=at(3, 2, 8, 20), assignee_id=ALICE, category="printer",
              requester_email="ann@x.org", sessions=2),
    # t4: in range, new, nobody's, no category (never a repeat), requester known by name only.
    TicketRow(4, at(3, 2, 12), "new", requester_name="Carl"),
    # t5: in range, resolved after 4 h but with two sessions: not FCR.
    TicketRow(5, at(3, 3, 9), "resolved", first_response_at=at(3, 3, 9, 5), resolved_at=at(3, 3, 13),
              assignee_id=BOB, category="printer", requester_email="dora@x.org", sessions=2),
    # t6: created before the range, resolved during it (backlog on day 1 only).
    TicketRow(6, datetime(2026, 2, 10, 9, tzinfo=UTC), "resolved", resolved_at=at(3, 2, 9),
              assignee_id=ALICE, category="network", requester_email="bo@x.org"),
    # t7: old, reopened (not done): backlog on every day though resolved_at is set.
    TicketRow(7, datetime(2026, 1, 1, tzinfo=UTC), "reopened", resolved_at=datetime(2026, 1, 5, tzinfo=UTC),
              reopen_count=1, assignee_id=BOB, assignee_team_id=DESK),
    # t8: created exactly at the end of the range: outside it.
    TicketRow(8, at(3, 4), "new", category="printer", requester_email="ann@x.org"),
    # t9: old and closed; only its survey (submitted in the range) counts.
    TicketRow(9, datetime(2026, 1, 2, tzinfo=UTC), "closed", resolved_at=datetime(2026, 1, 3, tzinfo=UTC),
              assignee_id=ALICE),
    # t10: in range, pending, no response yet.
    TicketRow(10, at(3, 3, 15), "pending", assignee_id=ALICE, assignee_team_id=DESK, category="email", requester_name="Eve"),
]
SURVEYS = [
    SurveyRow(1, 5, at(3, 1, 12)),
    SurveyRow(2, 2, at(3, 2, 11)),
    SurveyRow(5, 4, at(3, 3, 14)),
    SurveyRow(9, 3, at(3, 2)),                  # the first moment of day 2: inside
    SurveyRow(1, 1, at(3, 4)),                  # the first moment after the range: outside
    SurveyRow(3, 5, at(2, 28, 23, 59, 59)),     # before the range: outside
]


def report(*, technician_id: int | None = None, team_id: int | None = None, technician: str | None = None,
           team: str | None = None) -> KpiReport:
    return compute(TICKETS, SURVEYS, DIRECTORY, PERIOD, repeat_window=WINDOW, now=NOW,
                   technician_id=technician_id, team_id=team_id, technician=technician, team=team)


def figures_dict(figures: KpiFigures) -> dict[str, Any]:
    return figures.model_dump()


def test_overall_figures() -> None:
    f = report().overall
    assert f.volume == 6  # t1, t2, t3, t4, t5, t10
    assert f.backlog == 4  # at 03-04 00:00: t3 (open), t4 (new), t7 (reopened), t10 (pending)
    # first responses: t1 1800, t2 600, t3 1200, t5 300 -> [300, 600, 1200, 1800]
    assert f.first_response.count == 4
    assert f.first_response.median_seconds == 900.0  # (600 + 1200) / 2
    assert f.first_response.p90_seconds == 1800.0  # rank ceil(0.9 * 4) = 4
    assert f.first_response.mean_seconds == 975.0  # 3900 / 4
    # resolutions of done tickets created in range: t1 7200, t2 86400, t5 14400
    assert f.resolution.count == 3
    assert f.resolution.median_seconds == 14400.0
    assert f.resolution.p90_seconds == 86400.0  # rank ceil(2.7) = 3
    assert f.resolution.mean_seconds == 36000.0  # 108000 / 3
    # done in range: t1 (yes), t2 (reopened), t5 (two sessions) -> 1 of 3
    assert (f.first_contact_resolution.count, f.first_contact_resolution.of) == (1, 3)
    assert f.first_contact_resolution.rate == pytest.approx(1 / 3)
    # surveys in range: 5 (t1), 2 (t2), 4 (t5), 3 (t9) -> 2 satisfied of 4, mean 14 / 4
    assert (f.csat.surveys, f.csat.satisfied, f.csat.rate, f.csat.average) == (4, 2, 0.5, 3.5)
    assert f.csat.distribution == [0, 1, 1, 1, 1]
    # repeats: t2 (after t6, 19 days), t3 (after t1, 23 h) -> 2 of 6
    assert (f.repeats.count, f.repeats.of) == (2, 6)
    assert f.repeats.rate == pytest.approx(2 / 6)


def test_daily_series() -> None:
    days = [(d.day.isoformat(), d.created, d.resolved, d.backlog) for d in report().daily]
    assert days == [
        # end of 03-01: t2 (resolved 03-02 10:00), t6 (resolved 03-02 09:00), t7; t1 was resolved at 11:00
        ("2026-03-01", 2, 1, 3),
        # end of 03-02: t3, t4, t7 (t2 and t6 resolved that day)
        ("2026-03-02", 2, 2, 3),
        # end of 03-03: t3, t4, t7, t10 (t5 resolved at 13:00)
        ("2026-03-03", 2, 1, 4),
    ]


def test_per_technician() -> None:
    groups = {g.name: g for g in report().technicians}
    assert list(groups) == ["alice", "bob", "(unassigned)"]
    alice = groups["alice"].figures  # t1, t3, t6, t9, t10
    assert (alice.volume, alice.backlog) == (3, 2)  # t1, t3, t10; backlog t3, t10
    assert (alice.first_response.median_seconds, alice.first_response.p90_seconds,
            alice.first_response.mean_seconds) == (1500.0, 1800.0, 1500.0)  # [1200, 1800]
    assert (alice.resolution.count, alice.resolution.median_seconds) == (1, 7200.0)
    assert (alice.first_contact_resolution.count, alice.first_contact_resolution.of) == (1, 1)
    assert (alice.repeats.count, alice.repeats.of) == (1, 3)  # t3
    assert (alice.csat.surveys, alice.csat.satisfied, alice.csat.average) == (2, 1, 4.0)  # 5 (t1), 3 (t9)
    assert alice.csat.distribution == [0, 0, 1, 0, 1]
    assert groups["alice"].display_name == "Alice A" and groups["alice"].id == ALICE

    bob = groups["bob"].figures  # t2, t5, t7
    assert (bob.volume, bob.backlog) == (2, 1)  # t2, t5; backlog t7
    assert (bob.first_response.median_seconds, bob.first_response.p90_seconds) == (450.0, 600.0)  # [300, 600]
    assert (bob.resolution.median_seconds, bob.resolution.p90_seconds, bob.resolution.mean_seconds) == (
        50400.0, 86400.0, 50400.0)  # [14400, 86400]
    assert (bob.first_contact_resolution.count, bob.first_contact_resolution.of) == (0, 2)
    assert bob.first_contact_resolution.rate == 0.0
    assert (bob.repeats.count, bob.csat.surveys, bob.csat.average) == (1, 2, 3.0)  # t2; ratings 2, 4

    nobody = groups["(unassigned)"]
    assert nobody.id is None and (nobody.figures.volume, nobody.figures.backlog) == (1, 1)  # t4
    assert nobody.figures.first_response.count == 0 and nobody.figures.first_response.median_seconds is None
    assert nobody.figures.first_contact_resolution.rate is None  # nothing done: no rate, not 0
    assert nobody.figures.csat.rate is None and nobody.figures.csat.average is None


def test_per_team() -> None:
    groups = {g.name: g for g in report().teams}
    assert list(groups) == ["desk", "field", "(no team)"]
    # desk: t1, t3, t6, t9 (alice's team), t5 (bob's teams: desk and field), t7 and t10 (team set)
    desk = groups["desk"].figures
    assert (desk.volume, desk.backlog) == (4, 3)  # t1, t3, t5, t10; backlog t3, t7, t10
    assert (desk.first_response.median_seconds, desk.first_response.p90_seconds,
            desk.first_response.mean_seconds) == (1200.0, 1800.0, 1100.0)  # [300, 1200, 1800]
    assert (desk.resolution.median_seconds, desk.resolution.p90_seconds) == (10800.0, 14400.0)  # [7200, 14400]
    assert (desk.first_contact_resolution.count, desk.first_contact_resolution.of) == (1, 2)
    assert (desk.repeats.count, desk.repeats.of) == (1, 4)
    assert (desk.csat.surveys, desk.csat.satisfied, desk.csat.average) == (3, 2, 4.0)  # 5, 4, 3
    # field: t2 (team set) and t5 (bob's); t5 counts in both teams
    field = groups["field"].figures
    assert (field.volume, field.backlog, field.resolution.mean_seconds) == (2, 0, 50400.0)
    assert (field.csat.surveys, field.csat.distribution) == (2, [0, 1, 0, 1, 0])
    assert (groups["(no team)"].figures.volume, groups["(no team)"].figures.backlog) == (1, 1)  # t4


def test_technician_filter_keeps_their_tickets_and_series() -> None:
    filtered = report(technician_id=ALICE, technician="alice")
    assert filtered.technician == "alice"
    assert figures_dict(filtered.overall) == figures_dict({g.name: g for g in report().technicians}["alice"].figures)
    assert [g.name for g in filtered.technicians] == ["alice"]
    assert [g.name for g in filtered.teams] == ["desk"]  # all of alice's tickets count for desk
    # created: t1 / t3 / t10; resolved: t1 (03-01), t6 (03-02); backlog: t6 / t3 / t3 + t10
    assert [(d.created, d.resolved, d.backlog) for d in filtered.daily] == [(1, 1, 1), (1, 1, 1), (1, 0, 2)]


def test_team_filter_counts_only_that_team() -> None:
    filtered = report(team_id=FIELD, team="field")
    assert figures_dict(filtered.overall) == figures_dict({g.name: g for g in report().teams}["field"].figures)
    assert [g.name for g in filtered.teams] == ["field"]  # t5 also counts for desk, but not under this filter
    bob = filtered.technicians[0]
    assert [g.name for g in filtered.technicians] == ["bob"]
    assert (bob.figures.volume, bob.figures.backlog) == (2, 0)  # t2, t5; t7 is desk's


def test_empty_range() -> None:
    empty = compute([], [], Directory(), PERIOD, repeat_window=WINDOW, now=NOW)
    assert empty.overall.volume == 0 and empty.overall.backlog == 0
    assert empty.overall.first_response.model_dump() == {
        "count": 0, "median_seconds": None, "p90_seconds": None, "mean_seconds": None}
    assert empty.overall.first_contact_resolution.rate is None and empty.overall.repeats.rate is None
    assert empty.overall.csat.model_dump() == {
        "surveys": 0, "satisfied": 0, "rate": None, "average": None, "distribution": [0, 0, 0, 0, 0]}
    assert empty.technicians == [] and empty.teams == []
    assert [(d.created, d.resolved, d.backlog) for d in empty.daily] == [(0, 0, 0)] * 3


def test_no_surveys() -> None:
    f = compute(TICKETS, [], DIRECTORY, PERIOD, repeat_window=WINDOW, now=NOW).overall
    assert (f.csat.surveys, f.csat.rate, f.csat.average) == (0, None, None)
    assert f.volume == 6


def test_median_ties_and_percentile_ranks() -> None:
    assert duration_stats([300, 100, 300, 100]).median_seconds == 200.0  # middle two: 100 and 300
    assert duration_stats([5, 5, 5]).model_dump() == {
        "count": 3, "median_seconds": 5.0, "p90_seconds": 5.0, "mean_seconds": 5.0}
    ten = duration_stats(list(range(1, 11)))  # 1..10
    assert (ten.median_seconds, ten.p90_seconds, ten.mean_seconds) == (5.5, 9.0, 5.5)  # rank ceil(9.0) = 9
    assert duration_stats([42]).p90_seconds == 42.0


def test_repeat_window_edges() -> None:
    base = at(3, 1)
    tickets = [
        TicketRow(1, base, "new", category="vpn", requester_email="x@y.org"),
        TicketRow(2, base + timedelta(days=30), "new", category="vpn", requester_email="X@Y.org"),  # exactly 30 days: repeat
        TicketRow(3, base + timedelta(days=61), "new", category="vpn", requester_email="x@y.org"),  # 31 days after t2: not
        TicketRow(4, base + timedelta(days=61), "new", category="vpn", requester_email="x@y.org"),  # same moment: repeat of t3
        TicketRow(5, base + timedelta(days=61), "new", category="mail", requester_email="x@y.org"),  # other category
        TicketRow(10, base + timedelta(days=62), "new", category="VPN", requester_email="x@y.org"),  # case differs: repeat
        TicketRow(6, base, "new", category="", requester_email="z@y.org"),
        TicketRow(7, base, "new", category="", requester_email="z@y.org"),  # no category: never
        TicketRow(8, base + timedelta(days=1), "new", category="vpn", requester_name="Pat"),
        TicketRow(9, base + timedelta(days=2), "new", category="vpn", requester_name="pat"),  # by name: repeat
    ]
    assert repeat_ids(tickets, WINDOW) == {2, 4, 9, 10}
    assert repeat_ids(tickets, timedelta(days=29)) == {4, 9, 10}


def test_csv_rows_and_injection() -> None:
    assert [safe_cell(v) for v in ("=1+2", "+x", "-3", "@sum", "\tx", "plain", None, 0.5, 7)] == [
        "'=1+2", "'+x", "'-3", "'@sum", "'\tx", "plain", "", "0.5", "7"]
    sneaky = Directory(users={ALICE: ("alice", "=HYPERLINK(\"http://evil\")")}, teams={}, memberships={})
    made = compute(TICKETS[:1], [], sneaky, PERIOD, repeat_window=WINDOW, now=NOW)
    rows = list(csv.reader(io.StringIO(to_csv(made))))
    assert rows[0][:5] == ["scope", "name", "display_name", "volume", "backlog"]
    assert rows[1][:5] == ["overall", "all", "All tickets", "1", "0"]
    alice = next(r for r in rows if r[0] == "technician")
    assert alice[1] == "alice" and alice[2] == "'=HYPERLINK(\"http://evil\")"
    assert alice[5:7] == ["1800.0", "1800.0"] and alice[9] == "1.0"  # first response; FCR 1 of 1
    assert alice[10:14] == ["", "", "0", "0.0"]  # no surveys: empty cells, not zeros


def test_query_validation() -> None:
    good = KpiQuery.model_validate({"from": "2026-03-01", "to": "2026-03-01"})
    assert good.days == 1
    with pytest.raises(ValidationError, match="before from"):
        KpiQuery.model_validate({"from": "2026-03-02", "to": "2026-03-01"})
    with pytest.raises(ValidationError, match="at most 366"):
        KpiQuery.model_validate({"from": "2025-01-01", "to": "2026-01-02"})
    KpiQuery.model_validate({"from": "2024-01-01", "to": "2024-12-31"})  # a leap year fits
    with pytest.raises(ValidationError, match="outside"):
        KpiQuery.model_validate({"from": "0001-01-01", "to": "0001-01-02"})
    with pytest.raises(ValidationError):
        KpiQuery.model_validate({"from": "2026-02-30", "to": "2026-03-01"})
    with pytest.raises(ValidationError):
        KpiQuery.model_validate({"from": "2026-03-01", "to": "2026-03-02", "team": "Bad Name"})
    with pytest.raises(ValidationError, match="Extra"):
        KpiQuery.model_validate({"from": "2026-03-01", "to": "2026-03-02", "colour": "red"})
