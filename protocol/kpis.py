"""Helpdesk KPIs: the query a console sends and the report the broker answers with.

Every figure is about a range of whole UTC days, ``from`` to ``to`` inclusive,
and uses wall-clock time (not business hours). The definitions live in
:mod:`broker.helpdesk.kpis` and ``docs/api.md``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from .admin import NAME_PATTERN
from .api import Request, Response

MAX_SPAN_DAYS = 366
"""The longest range one report covers (a year, leap years included)."""

EARLIEST = date(1970, 1, 1)
LATEST = date(2999, 12, 31)
"""Dates outside these are typing mistakes (and would overflow date arithmetic near year 1 or 9999)."""


class KpiQuery(Request):
    """``GET /reports/kpis?from=YYYY-MM-DD&to=YYYY-MM-DD[&technician=..][&team=..]``."""

    model_config = ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True)

    start: date = Field(alias="from", description="first day of the range (UTC), YYYY-MM-DD")
    end: date = Field(alias="to", description="last day of the range (UTC, inclusive), YYYY-MM-DD")
    technician: str | None = Field(default=None, pattern=NAME_PATTERN, description="only this assignee's tickets (username)")
    team: str | None = Field(default=None, pattern=NAME_PATTERN, description="only this team's tickets (team name)")

    @model_validator(mode="after")
    def _check_range(self) -> KpiQuery:
        for name, day in (("from", self.start), ("to", self.end)):
            if not EARLIEST <= day <= LATEST:
                raise ValueError(f"{name} {day.isoformat()} is outside {EARLIEST.isoformat()}..{LATEST.isoformat()}")
        if self.end < self.start:
            raise ValueError(f"to ({self.end.isoformat()}) is before from ({self.start.isoformat()}); swap them")
        span = (self.end - self.start).days + 1
        if span > MAX_SPAN_DAYS:
            raise ValueError(f"the range covers {span} days; at most {MAX_SPAN_DAYS} fit in one report")
        return self

    @property
    def days(self) -> int:
        """How many days the range covers, both ends included."""
        return (self.end - self.start).days + 1


class DurationStats(Response):
    """Durations in seconds; the statistics are None when ``count`` is 0."""

    count: int
    median_seconds: float | None = None
    """The middle value; with an even count, the mean of the two middle values."""
    p90_seconds: float | None = None
    """Nearest rank: the value at rank ceil(0.9 * count) of the sorted durations."""
    mean_seconds: float | None = None


class Share(Response):
    """``count`` of ``of``; ``rate`` = count / of, None when ``of`` is 0."""

    count: int
    of: int
    rate: float | None = None


class CsatFigures(Response):
    """Satisfaction survey answers submitted in the range."""

    surveys: int
    satisfied: int
    """Rated 4 or 5."""
    rate: float | None = None
    """satisfied / surveys."""
    average: float | None = None
    """Mean rating (1 to 5)."""
    distribution: list[int] = Field(min_length=5, max_length=5)
    """How many surveys rated 1, 2, 3, 4 and 5."""


class KpiFigures(Response):
    """Every KPI of one scope (everything, one technician or one team)."""

    volume: int
    """Tickets created in the range."""
    backlog: int
    """Tickets not done at the end of the range."""
    first_response: DurationStats
    resolution: DurationStats
    first_contact_resolution: Share
    csat: CsatFigures
    repeats: Share
    """Repeat incidents among the tickets created in the range."""


class KpiGroup(Response):
    """The figures of one technician or one team; ``id`` None is the unassigned / no team group."""

    scope: Literal["technician", "team"]
    id: int | None
    name: str
    """Username or team name; ``(unassigned)`` / ``(no team)`` for tickets without one."""
    display_name: str
    figures: KpiFigures


class KpiDay(Response):
    """One UTC day of the range."""

    day: date
    created: int
    resolved: int
    """Tickets that are done now whose (last) resolution fell on this day."""
    backlog: int
    """Tickets not done at the end of the day."""


class KpiReport(Response):
    """``GET /reports/kpis``: overall, per technician, per team, and per day."""

    model_config = ConfigDict(extra="ignore", validate_by_name=True, validate_by_alias=True, serialize_by_alias=True)

    start: date = Field(alias="from")
    end: date = Field(alias="to")
    technician: str | None = None
    team: str | None = None
    repeat_window_days: int
    generated_at: datetime
    overall: KpiFigures
    technicians: list[KpiGroup]
    teams: list[KpiGroup]
    daily: list[KpiDay]


__all__ = [
    "MAX_SPAN_DAYS",
    "CsatFigures",
    "DurationStats",
    "KpiDay",
    "KpiFigures",
    "KpiGroup",
    "KpiQuery",
    "KpiReport",
    "Share",
]
