"""Helpdesk KPIs over a range of whole UTC days: pure computation over plain rows, and their loader.

:func:`compute` works on :class:`TicketRow` / :class:`SurveyRow` values only (no
database), so the definitions below can be checked on hand-made data;
:func:`load` selects just the rows and columns a range needs.

Definitions (all durations wall-clock, in seconds; "the range" is
``[from 00:00 UTC, to + 1 day 00:00 UTC)``; "done" is status resolved or closed):

* **volume**: tickets created in the range (and per day).
* **first response time**: ``first_response_at - created_at`` of the tickets created in
  the range that have had a first response.
* **resolution time**: ``resolved_at - created_at`` of the tickets created in the range
  that are done now (``resolved_at`` is their last resolution, so a ticket resolved,
  reopened and resolved again counts its whole life).
* **first contact resolution**: among the tickets created in the range that are done
  now, the share never reopened (``reopen_count == 0``) that had at most one support
  session a host joined (codes nobody redeemed are not contacts).
* **CSAT**: surveys submitted in the range: the share rated 4 or 5, the mean rating,
  the count, and the count per rating.
* **backlog**: tickets not done at a moment ``m``: ``created_at < m`` and not
  (done now with ``resolved_at < m``); ``m`` is the end of the range (and the end of
  each day for the series). Approximation (no status history is kept): a ticket that
  is not done now counts as backlog from its creation on, including a stretch in which
  it was resolved before being reopened; a ticket that is done now counts until its
  last resolution.
* **repeat incidents**: tickets created in the range whose requester (``requester_email``
  lowercased, or ``requester_name`` lowercased when there is no e-mail) had another
  ticket in the same category (compared without case) created within the window before it
  (``DESKHAND_REPEAT_WINDOW_DAYS``, default 30), whoever it was assigned to. Tickets
  without a category are never repeats. The rate is over the volume.

Groups: every figure of a group is about the tickets of the group, as they are
assigned now (a survey counts for its ticket's group). Per technician: the
ticket's assignee (``(unassigned)`` for none). Per team: the ticket's
``assignee_team_id``; a ticket with no team but an assignee counts for each of
the assignee's teams (so team rows may add up to more than the overall row);
``(no team)`` for the rest. The technician and team filters keep the tickets of
that group only; the daily series follow the filters.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from typing import Any, Literal

from sqlalchemy import ColumnElement, String, and_, func, or_, select, type_coerce
from sqlalchemy.orm import QueryableAttribute, Session

from broker.accounts.directory import find_team, find_user
from broker.storage.models import SessionSurvey, SupportSession, Team, TeamMember, Ticket, User
from protocol.helpdesk import TicketStatus
from protocol.kpis import CsatFigures, DurationStats, KpiDay, KpiFigures, KpiGroup, KpiQuery, KpiReport, Share

DONE = frozenset(s.value for s in TicketStatus if s.is_done)
SATISFIED_FROM = 4
"""Ratings at or above this count as satisfied."""
UNASSIGNED = "(unassigned)"
NO_TEAM = "(no team)"


@dataclass(frozen=True)
class TicketRow:
    """The fields of a ticket the KPIs read."""

    id: int
    created_at: datetime
    status: str
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None
    reopen_count: int = 0
    assignee_id: int | None = None
    assignee_team_id: int | None = None
    category: str = ""
    requester_email: str = ""
    requester_name: str = ""
    sessions: int = 0
    """Support sessions on the ticket that a host joined."""

    @property
    def done(self) -> bool:
        return self.status in DONE

    @property
    def open_until(self) -> datetime | None:
        """When it stopped being backlog: its last resolution if it is done now, else never."""
        return self.resolved_at if self.done else None

    def in_backlog(self, moment: datetime) -> bool:
        """Not done at ``moment`` (see the module's approximation for reopened tickets)."""
        until = self.open_until
        return self.created_at < moment and (until is None or until >= moment)

    @property
    def requester_key(self) -> str:
        return (self.requester_email or self.requester_name).strip().lower()


@dataclass(frozen=True)
class SurveyRow:
    """One survey answer."""

    ticket_id: int
    rating: int
    submitted_at: datetime


@dataclass(frozen=True)
class Directory:
    """Names of the technicians and teams the tickets point at, and who is in which team."""

    users: dict[int, tuple[str, str]] = field(default_factory=dict)
    """user id -> (username, display name)"""
    teams: dict[int, str] = field(default_factory=dict)
    """team id -> name"""
    memberships: dict[int, tuple[int, ...]] = field(default_factory=dict)
    """user id -> the ids of their teams"""

    def technician_names(self, user_id: int | None) -> tuple[str, str]:
        """(username, display name); for no assignee, the unassigned group's."""
        if user_id is None:
            return UNASSIGNED, "Unassigned"
        return self.users.get(user_id, (f"user-{user_id}", f"Account {user_id}"))

    def team_names(self, team_id: int | None) -> tuple[str, str]:
        """(name, display name); for no team, the no-team group's."""
        if team_id is None:
            return NO_TEAM, "No team"
        name = self.teams.get(team_id, f"team-{team_id}")
        return name, name

    def teams_of(self, ticket: TicketRow) -> tuple[int | None, ...]:
        """The teams a ticket counts for (see the module's grouping rule); ``(None,)``: no team."""
        if ticket.assignee_team_id is not None:
            return (ticket.assignee_team_id,)
        if ticket.assignee_id is not None and self.memberships.get(ticket.assignee_id):
            return self.memberships[ticket.assignee_id]
        return (None,)


@dataclass(frozen=True)
class Period:
    """Whole UTC days ``start`` to ``end`` inclusive."""

    start: date
    end: date

    @cached_property
    def begins(self) -> datetime:
        return datetime.combine(self.start, time(), tzinfo=UTC)

    @cached_property
    def ends(self) -> datetime:
        """The first moment after the range."""
        return datetime.combine(self.end + timedelta(days=1), time(), tzinfo=UTC)

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def contains(self, moment: datetime) -> bool:
        return self.begins <= moment < self.ends

    def day_index(self, moment: datetime) -> int:
        """The day of ``moment`` counted from ``start`` (negative before it, ``days`` or more after)."""
        return (moment.astimezone(UTC).date() - self.start).days


# --- statistics -----------------------------------------------------------------------------


def duration_stats(seconds: Sequence[float]) -> DurationStats:
    """Median (mean of the middle two on an even count), nearest-rank p90, and mean."""
    if not seconds:
        return DurationStats(count=0)
    ordered = sorted(seconds)
    p90 = ordered[math.ceil(0.9 * len(ordered)) - 1]
    return DurationStats(count=len(ordered), median_seconds=float(statistics.median(ordered)),
                         p90_seconds=float(p90), mean_seconds=math.fsum(ordered) / len(ordered))


def share(count: int, of: int) -> Share:
    return Share(count=count, of=of, rate=count / of if of else None)


def csat_figures(ratings: Sequence[int]) -> CsatFigures:
    distribution = [0] * 5
    for rating in ratings:
        distribution[rating - 1] += 1
    satisfied = sum(1 for r in ratings if r >= SATISFIED_FROM)
    return CsatFigures(
        surveys=len(ratings), satisfied=satisfied, distribution=distribution,
        rate=satisfied / len(ratings) if ratings else None,
        average=sum(ratings) / len(ratings) if ratings else None,
    )


def repeat_ids(tickets: Iterable[TicketRow], window: timedelta) -> set[int]:
    """Ids of the tickets whose requester had another ticket in the same category created
    within ``window`` before it (ties in time: the lower id came first)."""
    chains: dict[tuple[str, str], list[TicketRow]] = defaultdict(list)
    for ticket in tickets:
        category = ticket.category.strip().casefold()  # free text: "Printer" and "printer " are one
        if category and ticket.requester_key:
            chains[(ticket.requester_key, category)].append(ticket)
    found: set[int] = set()
    for chain in chains.values():
        chain.sort(key=lambda t: (t.created_at, t.id))
        # Sorted, so only the nearest predecessor can be inside the window.
        for before, ticket in itertools.pairwise(chain):
            if ticket.created_at - before.created_at <= window:
                found.add(ticket.id)
    return found


# --- the report -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Facts:
    """What a ticket adds to each group it belongs to, worked out once."""

    backlog: bool
    created_in_range: bool
    repeat: bool
    done: bool
    first_contact: bool
    first_response: float | None
    resolution: float | None

    @classmethod
    def of(cls, ticket: TicketRow, period: Period, repeat: bool) -> _Facts:
        return cls(
            backlog=ticket.in_backlog(period.ends),
            created_in_range=period.contains(ticket.created_at),
            repeat=repeat,
            done=ticket.done,
            first_contact=ticket.done and ticket.reopen_count == 0 and ticket.sessions <= 1,
            first_response=None if ticket.first_response_at is None
            else (ticket.first_response_at - ticket.created_at).total_seconds(),
            resolution=(ticket.resolved_at - ticket.created_at).total_seconds()
            if ticket.done and ticket.resolved_at is not None else None,
        )


@dataclass
class _Tally:
    """What one scope accumulates before it becomes :class:`KpiFigures`."""

    volume: int = 0
    backlog: int = 0
    first_response: list[float] = field(default_factory=list)
    resolution: list[float] = field(default_factory=list)
    done: int = 0
    first_contact: int = 0
    repeats: int = 0
    ratings: list[int] = field(default_factory=list)

    def add(self, facts: _Facts) -> None:
        self.backlog += facts.backlog
        if not facts.created_in_range:
            return
        self.volume += 1
        self.repeats += facts.repeat
        if facts.first_response is not None:
            self.first_response.append(facts.first_response)
        if facts.resolution is not None:
            self.resolution.append(facts.resolution)
        if facts.done:
            self.done += 1
            self.first_contact += facts.first_contact

    def figures(self) -> KpiFigures:
        return KpiFigures(
            volume=self.volume, backlog=self.backlog,
            first_response=duration_stats(self.first_response), resolution=duration_stats(self.resolution),
            first_contact_resolution=share(self.first_contact, self.done),
            csat=csat_figures(self.ratings), repeats=share(self.repeats, self.volume),
        )

    @property
    def empty(self) -> bool:
        return not (self.volume or self.backlog or self.ratings)


def daily_series(tickets: Sequence[TicketRow], period: Period) -> list[KpiDay]:
    """Created, resolved and end-of-day backlog for each day (difference arrays: one pass)."""
    days = period.days
    created, resolved, backlog_delta = [0] * days, [0] * days, [0] * (days + 1)
    for ticket in tickets:
        first = period.day_index(ticket.created_at)
        if 0 <= first < days:
            created[first] += 1
        until = ticket.open_until
        last = days if until is None else period.day_index(until)  # backlog through day last - 1
        if until is not None and 0 <= last < days:
            resolved[last] += 1
        first, last = max(first, 0), min(last, days)
        if first < last:
            backlog_delta[first] += 1
            backlog_delta[last] -= 1
    out, running = [], 0
    for index in range(days):
        running += backlog_delta[index]
        out.append(KpiDay(day=period.start + timedelta(days=index), created=created[index],
                          resolved=resolved[index], backlog=running))
    return out


def compute(
    tickets: Sequence[TicketRow],
    surveys: Sequence[SurveyRow],
    directory: Directory,
    period: Period,
    *,
    repeat_window: timedelta,
    technician_id: int | None = None,
    team_id: int | None = None,
    technician: str | None = None,
    team: str | None = None,
    now: datetime | None = None,
) -> KpiReport:
    """The report over ``tickets`` (every ticket the range needs: see :func:`load`) and the
    surveys submitted in the range. ``technician_id`` / ``team_id`` filter the tickets;
    ``technician`` / ``team`` are their names, echoed in the report."""
    repeats = repeat_ids(tickets, repeat_window)

    def kept(ticket: TicketRow) -> bool:
        if technician_id is not None and ticket.assignee_id != technician_id:
            return False
        return team_id is None or team_id in directory.teams_of(ticket)

    chosen = [t for t in tickets if kept(t)]
    by_id = {t.id: t for t in chosen}
    overall = _Tally()
    per_technician: dict[int | None, _Tally] = defaultdict(_Tally)
    per_team: dict[int | None, _Tally] = defaultdict(_Tally)

    def tallies(ticket: TicketRow) -> list[_Tally]:
        teams = [per_team[t] for t in directory.teams_of(ticket) if team_id is None or t == team_id]
        return [overall, per_technician[ticket.assignee_id], *teams]

    for ticket in chosen:
        facts = _Facts.of(ticket, period, ticket.id in repeats)
        if facts.backlog or facts.created_in_range:
            for tally in tallies(ticket):
                tally.add(facts)
    for survey in surveys:
        surveyed = by_id.get(survey.ticket_id)
        if surveyed is not None and period.contains(survey.submitted_at):
            for tally in tallies(surveyed):
                tally.ratings.append(survey.rating)

    technicians = _groups("technician", per_technician, directory.technician_names)
    teams = _groups("team", per_team, directory.team_names)
    return KpiReport(
        start=period.start, end=period.end, technician=technician, team=team,
        repeat_window_days=repeat_window.days, generated_at=now or datetime.now(UTC),
        overall=overall.figures(), technicians=technicians, teams=teams, daily=daily_series(chosen, period),
    )


def _groups(
    scope: Literal["technician", "team"], tallies: dict[int | None, _Tally], names: Callable[[int | None], tuple[str, str]],
) -> list[KpiGroup]:
    """The non-empty groups by name, the group of tickets without one last."""
    groups = [KpiGroup(scope=scope, id=key, name=names(key)[0], display_name=names(key)[1], figures=tally.figures())
              for key, tally in tallies.items() if not tally.empty]
    return sorted(groups, key=lambda g: (g.id is None, g.name))


# --- loading --------------------------------------------------------------------------------


def _raw(column: ColumnElement[datetime] | ColumnElement[datetime | None] | QueryableAttribute[Any]) -> ColumnElement[Any]:
    """A time column as the driver hands it over. Thousands of rows are read several times
    faster parsed by :func:`_moment` than through the column type's own result processing."""
    return type_coerce(column, String())


def _moment(value: str | datetime | None) -> Any:
    """A stored UTC time as an aware datetime (None stays None): SQLite's text or another driver's datetime."""
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def load(db: Session, period: Period, repeat_window: timedelta) -> tuple[list[TicketRow], list[SurveyRow], Directory]:
    """The rows :func:`compute` needs for ``period``, with only the columns it reads.

    Tickets: created before the range ends and either created in the repeat window
    before the range or later, or possibly backlog during the range (not done, or done
    since its start), or the ticket of a survey submitted in the range.
    """
    begins, ends = period.begins, period.ends
    core = db.connection()  # Core rows: the ORM's result wrapping costs more than the query here
    surveyed = select(SessionSurvey.ticket_id).where(SessionSurvey.submitted_at >= begins, SessionSurvey.submitted_at < ends)
    ticket_rows = core.execute(
        select(
            Ticket.id, _raw(Ticket.created_at), Ticket.status, _raw(Ticket.first_response_at), _raw(Ticket.resolved_at),
            Ticket.reopen_count, Ticket.assignee_id, Ticket.assignee_team_id, Ticket.category,
            Ticket.requester_email, Ticket.requester_name,
        ).where(
            Ticket.created_at < ends,
            or_(
                Ticket.created_at >= begins - repeat_window,
                Ticket.status.not_in(DONE),
                Ticket.resolved_at.is_(None),
                Ticket.resolved_at >= begins,
                Ticket.id.in_(surveyed),
            ),
        )
    ).all()
    joined = dict(core.execute(
        select(SupportSession.ticket_id, func.count())
        .join(Ticket, Ticket.id == SupportSession.ticket_id)
        .where(and_(Ticket.created_at >= begins, Ticket.created_at < ends), SupportSession.connected_at.is_not(None))
        .group_by(SupportSession.ticket_id)
    ).tuples().all())
    tickets = [
        TicketRow(tid, _moment(created), status, _moment(responded), _moment(resolved), reopens, assignee, team,
                  category, email, name, sessions=joined.get(tid, 0))
        for tid, created, status, responded, resolved, reopens, assignee, team, category, email, name in ticket_rows
    ]
    surveys = [SurveyRow(tid, rating, _moment(at)) for tid, rating, at in core.execute(
        select(SessionSurvey.ticket_id, SessionSurvey.rating, _raw(SessionSurvey.submitted_at))
        .where(SessionSurvey.submitted_at >= begins, SessionSurvey.submitted_at < ends)
    ).all()]
    memberships: dict[int, list[int]] = defaultdict(list)
    for user_id, team_id in db.execute(select(TeamMember.user_id, TeamMember.team_id).order_by(TeamMember.team_id)):
        memberships[user_id].append(team_id)
    directory = Directory(
        users={uid: (username, display) for uid, username, display in db.execute(select(User.id, User.username, User.display_name))},
        teams=dict(db.execute(select(Team.id, Team.name)).tuples().all()),
        memberships={uid: tuple(teams) for uid, teams in memberships.items()},
    )
    return tickets, surveys, directory


def report(db: Session, query: KpiQuery, repeat_window: timedelta, now: datetime | None = None) -> KpiReport:
    """The KPI report of ``query``; 404 for a technician or team that does not exist."""
    technician_id = find_user(db, query.technician).id if query.technician else None
    team_id = find_team(db, query.team).id if query.team else None
    period = Period(query.start, query.end)
    tickets, surveys, directory = load(db, period, repeat_window)
    return compute(tickets, surveys, directory, period, repeat_window=repeat_window,
                   technician_id=technician_id, team_id=team_id,
                   technician=query.technician, team=query.team, now=now)


# --- CSV ------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "scope", "name", "display_name", "volume", "backlog",
    "first_response_median_seconds", "first_response_p90_seconds",
    "resolution_median_seconds", "resolution_p90_seconds",
    "first_contact_resolution_rate", "csat_rate", "csat_average", "surveys", "repeat_rate",
)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""A cell starting with one of these is a formula to a spreadsheet (CSV injection)."""


def safe_cell(value: object) -> str:
    """The cell's text; None is empty, and text a spreadsheet would run as a formula gets a leading '."""
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_rows(report: KpiReport) -> list[list[str]]:
    """One row per scope: overall first, then each technician, then each team."""
    groups = [("overall", "all", "All tickets", report.overall)]
    groups += [(g.scope, g.name, g.display_name, g.figures) for g in (*report.technicians, *report.teams)]
    rows = [list(CSV_COLUMNS)]
    for scope, name, display, f in groups:
        rows.append([safe_cell(v) for v in (
            scope, name, display, f.volume, f.backlog,
            f.first_response.median_seconds, f.first_response.p90_seconds,
            f.resolution.median_seconds, f.resolution.p90_seconds,
            f.first_contact_resolution.rate, f.csat.rate, f.csat.average, f.csat.surveys, f.repeats.rate,
        )])
    return rows


def to_csv(report: KpiReport) -> str:
    """The report's groups as CSV (RFC 4180, CRLF line ends)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(csv_rows(report))
    return out.getvalue()
