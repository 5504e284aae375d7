"""SLA timers: how much of a ticket's first-response and resolution budget is spent.

Pure logic (no database, no clock of its own): every function takes ``now``,
so tests drive the time. A ticket carries an :class:`SlaState` (stored as
JSON); :mod:`broker.helpdesk.tickets` moves it along with the ticket's status:

- both timers start when the ticket is opened;
- both pause while the ticket is ``pending`` (waiting on the requester);
- the first-response timer stops at the first response, the resolution timer
  when the ticket is resolved or closed, and starts again if it is reopened;
- a priority change re-targets both timers, keeping the time already spent.

With business hours, only time inside the :class:`BusinessCalendar` counts;
otherwise every second does.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(
    r"^\s*(?P<days>[a-z]{3}(?:\s*-\s*[a-z]{3})?(?:\s*,\s*[a-z]{3}(?:\s*-\s*[a-z]{3})?)*)\s+"
    r"(?P<start>\d{2}:\d{2})\s*-\s*(?P<end>\d{2}:\d{2})\s*$"
)
_MAX_DAYS = 3 * 366
"""How far calendar arithmetic walks before giving up: a target longer than this is refused upstream."""


class CalendarError(ValueError):
    """A business-hours text that cannot be understood; the message shows the expected form."""


@dataclass(frozen=True)
class BusinessCalendar:
    """Working hours: the same window on the chosen weekdays, in one time zone."""

    weekdays: frozenset[int]
    """0 is Monday."""
    start: time
    end: time
    zone: ZoneInfo

    @classmethod
    def parse(cls, text: str, zone_name: str) -> BusinessCalendar:
        """``"mon-fri 09:00-17:00"`` (days may be listed: ``"mon,wed,fri-sat 08:30-12:00"``)."""
        form = 'expected weekdays and a time window such as "mon-fri 09:00-17:00"'
        match = _HOURS.match(text.lower())
        if match is None:
            raise CalendarError(f"business hours {text!r}: {form}")
        days: set[int] = set()
        for part in match["days"].split(","):
            ends = [p.strip() for p in part.split("-")]
            if any(e not in _DAY_NAMES for e in ends):
                raise CalendarError(f"business hours {text!r}: unknown weekday; use {', '.join(_DAY_NAMES)}")
            first, last = _DAY_NAMES.index(ends[0]), _DAY_NAMES.index(ends[-1])
            if last < first:
                raise CalendarError(f"business hours {text!r}: {ends[0]}-{ends[-1]} runs backwards")
            days.update(range(first, last + 1))
        try:
            start, end = time.fromisoformat(match["start"]), time.fromisoformat(match["end"])
        except ValueError:
            raise CalendarError(f"business hours {text!r}: a time is not HH:MM between 00:00 and 23:59") from None
        if end <= start:
            raise CalendarError(f"business hours {text!r}: the window must end after it starts")
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise CalendarError(f"time zone {zone_name!r} is unknown; use an IANA name such as Europe/Berlin") from None
        return cls(frozenset(days), start, end, zone)

    def _window(self, day: date) -> tuple[datetime, datetime] | None:
        if day.weekday() not in self.weekdays:
            return None
        opens = datetime.combine(day, self.start, tzinfo=self.zone).astimezone(UTC)
        closes = datetime.combine(day, self.end, tzinfo=self.zone).astimezone(UTC)
        return opens, closes

    def seconds_between(self, start: datetime, end: datetime) -> float:
        """Working seconds in ``[start, end)``; 0 when ``end`` is not after ``start``."""
        if end <= start:
            return 0.0
        total = 0.0
        day = start.astimezone(self.zone).date()
        last = end.astimezone(self.zone).date()
        while day <= last:
            window = self._window(day)
            if window is not None:
                lo, hi = max(window[0], start), min(window[1], end)
                if hi > lo:
                    total += (hi - lo).total_seconds()
            day += timedelta(days=1)
        return total

    def add(self, start: datetime, seconds: float) -> datetime:
        """The instant at which ``seconds`` working seconds after ``start`` have passed."""
        left = max(seconds, 0.0)
        day = start.astimezone(self.zone).date()
        for _ in range(_MAX_DAYS):
            window = self._window(day)
            day += timedelta(days=1)
            if window is None or window[1] <= start:
                continue
            opens = max(window[0], start)
            room = (window[1] - opens).total_seconds()
            if left <= room:
                return opens + timedelta(seconds=left)
            left -= room
        raise CalendarError(f"no {seconds:.0f} working seconds within {_MAX_DAYS} days of {start.isoformat()}")


class Clock24x7:
    """Every second counts: the calendar of SLA targets without business hours."""

    def seconds_between(self, start: datetime, end: datetime) -> float:
        return max((end - start).total_seconds(), 0.0)

    def add(self, start: datetime, seconds: float) -> datetime:
        return start + timedelta(seconds=max(seconds, 0.0))


Calendar = BusinessCalendar | Clock24x7

SLA_CLOCK_KEY = "sla_clock"
"""Where a database session's ``info`` holds the :class:`SlaClock` (see ``Settings.open_database``)."""
ALWAYS = Clock24x7()


class TimerState(str, enum.Enum):
    """What a timer shows on a ticket."""

    running = "running"
    at_risk = "at_risk"
    """Running, and past the warning share of its target."""
    breached = "breached"
    """Over its target (running, paused, or met too late)."""
    paused = "paused"
    met = "met"


def _number(value: object) -> float:
    """A number stored in a timer's JSON; anything else there is a corrupt row."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"an SLA timer holds {value!r} where a number belongs")
    return float(value)


def _mapping(value: object) -> dict[str, object]:
    """A timer stored in a ticket's SLA JSON; anything else there is a corrupt row."""
    if not isinstance(value, dict):
        raise ValueError(f"an SLA timer is stored as {type(value).__name__}, not an object")
    return value


@dataclass(frozen=True)
class SlaTimer:
    """One budget: ``target_s`` seconds (of its calendar) until it must be met."""

    target_s: int
    spent_s: float = 0.0
    """Seconds spent up to ``since`` (or in total, while not running)."""
    since: datetime | None = None
    """When it last started running; None while paused or met."""
    met_at: datetime | None = None

    @property
    def running(self) -> bool:
        return self.since is not None

    def spent(self, now: datetime, calendar: Calendar) -> float:
        """Seconds spent by ``now``."""
        return self.spent_s + (calendar.seconds_between(self.since, now) if self.since else 0.0)

    def pause(self, now: datetime, calendar: Calendar) -> SlaTimer:
        if self.since is None:
            return self
        return replace(self, spent_s=self.spent(now, calendar), since=None)

    def resume(self, now: datetime) -> SlaTimer:
        if self.since is not None or self.met_at is not None:
            return self
        return replace(self, since=now)

    def meet(self, now: datetime, calendar: Calendar) -> SlaTimer:
        if self.met_at is not None:
            return self
        return replace(self.pause(now, calendar), met_at=now)

    def unmeet(self, now: datetime) -> SlaTimer:
        """Start counting again after being met (a reopened ticket's resolution)."""
        return replace(self, met_at=None, since=now)

    def due_at(self, calendar: Calendar) -> datetime | None:
        """When it breaches, if it keeps running; None unless running."""
        if self.since is None:
            return None
        return calendar.add(self.since, self.target_s - self.spent_s)

    def warn_at(self, calendar: Calendar, warn_share: float) -> datetime | None:
        """When it becomes at risk, if it keeps running; None unless running."""
        if self.since is None:
            return None
        return calendar.add(self.since, self.target_s * warn_share - self.spent_s)

    def state(self, now: datetime, calendar: Calendar, warn_share: float) -> TimerState:
        spent = self.spent(now, calendar)
        if spent >= self.target_s:
            return TimerState.breached
        if self.met_at is not None:
            return TimerState.met
        if self.since is None:
            return TimerState.paused
        return TimerState.at_risk if spent >= self.target_s * warn_share else TimerState.running

    def to_json(self) -> dict[str, object]:
        return {
            "target_s": self.target_s,
            "spent_s": round(self.spent_s, 3),
            "since": self.since.isoformat() if self.since else None,
            "met_at": self.met_at.isoformat() if self.met_at else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> SlaTimer:
        since, met_at = data.get("since"), data.get("met_at")
        return cls(
            target_s=int(_number(data["target_s"])),
            spent_s=_number(data.get("spent_s", 0.0)),
            since=datetime.fromisoformat(since) if isinstance(since, str) else None,
            met_at=datetime.fromisoformat(met_at) if isinstance(met_at, str) else None,
        )


@dataclass(frozen=True)
class Targets:
    """The targets of one priority, in seconds."""

    first_response_s: int
    resolution_s: int
    business_hours: bool = False


@dataclass(frozen=True)
class SlaState:
    """A ticket's two timers; ``business_hours`` says which calendar they count in."""

    first_response: SlaTimer
    resolution: SlaTimer
    business_hours: bool = False

    @classmethod
    def start(cls, targets: Targets, now: datetime, *, paused: bool = False) -> SlaState:
        since = None if paused else now
        return cls(
            SlaTimer(targets.first_response_s, since=since),
            SlaTimer(targets.resolution_s, since=since),
            targets.business_hours,
        )

    @property
    def timers(self) -> dict[str, SlaTimer]:
        return {"first_response": self.first_response, "resolution": self.resolution}

    def pause(self, now: datetime, calendar: Calendar) -> SlaState:
        return replace(self, first_response=self.first_response.pause(now, calendar),
                       resolution=self.resolution.pause(now, calendar))

    def resume(self, now: datetime) -> SlaState:
        return replace(self, first_response=self.first_response.resume(now), resolution=self.resolution.resume(now))

    def responded(self, now: datetime, calendar: Calendar) -> SlaState:
        return replace(self, first_response=self.first_response.meet(now, calendar))

    def resolved(self, now: datetime, calendar: Calendar) -> SlaState:
        """Resolution met; a ticket resolved without a response has had its response too."""
        return replace(self, first_response=self.first_response.meet(now, calendar),
                       resolution=self.resolution.meet(now, calendar))

    def reopened(self, now: datetime) -> SlaState:
        return replace(self, resolution=self.resolution.unmeet(now))

    def retarget(self, targets: Targets, now: datetime, calendar: Calendar, new_calendar: Calendar) -> SlaState:
        """New targets (a priority change): time spent so far is kept, counted in the old calendar."""
        def moved(timer: SlaTimer, target_s: int) -> SlaTimer:
            running = timer.running
            paused = timer.pause(now, calendar)
            changed = replace(paused, target_s=target_s)
            return changed.resume(now) if running else changed

        return SlaState(moved(self.first_response, targets.first_response_s),
                        moved(self.resolution, targets.resolution_s), targets.business_hours)

    def to_json(self) -> dict[str, object]:
        return {
            "business_hours": self.business_hours,
            "first_response": self.first_response.to_json(),
            "resolution": self.resolution.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> SlaState | None:
        """None for a ticket that has no timers (opened before SLAs existed)."""
        if not data:
            return None
        return cls(
            SlaTimer.from_json(_mapping(data["first_response"])),
            SlaTimer.from_json(_mapping(data["resolution"])),
            bool(data.get("business_hours", False)),
        )


@dataclass(frozen=True)
class SlaClock:
    """The calendars and the warning share: what turns timers into due dates and flags."""

    business: BusinessCalendar | None
    warn_share: float = 0.8
    always: Clock24x7 = field(default=ALWAYS)

    def calendar(self, state: SlaState) -> Calendar:
        if state.business_hours and self.business is not None:
            return self.business
        return self.always

    def flags(self, state: SlaState, now: datetime) -> Flags:
        """The three derived columns a ticket list filters on."""
        calendar = self.calendar(state)
        timers = state.timers.values()
        breached = any(t.spent(now, calendar) >= t.target_s for t in timers)
        dues = [d for t in timers if (d := t.due_at(calendar)) is not None]
        warns = [w for t in timers if (w := t.warn_at(calendar, self.warn_share)) is not None]
        return Flags(breached, min(dues, default=None), min(warns, default=None))

    def view(self, state: SlaState, now: datetime) -> dict[str, TimerView]:
        """Each timer as a console shows it."""
        calendar = self.calendar(state)
        return {
            name: TimerView(
                state=timer.state(now, calendar, self.warn_share),
                target_s=timer.target_s,
                spent_s=timer.spent(now, calendar),
                due_at=timer.due_at(calendar),
                met_at=timer.met_at,
            )
            for name, timer in state.timers.items()
        }


@dataclass(frozen=True)
class Flags:
    breached: bool
    due_at: datetime | None
    warn_at: datetime | None


@dataclass(frozen=True)
class TimerView:
    state: TimerState
    target_s: int
    spent_s: float
    due_at: datetime | None
    met_at: datetime | None


__all__ = [
    "ALWAYS",
    "SLA_CLOCK_KEY",
    "BusinessCalendar",
    "Calendar",
    "CalendarError",
    "Clock24x7",
    "Flags",
    "SlaClock",
    "SlaState",
    "SlaTimer",
    "Targets",
    "TimerState",
    "TimerView",
]
