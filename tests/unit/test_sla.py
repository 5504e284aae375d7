"""SLA timers on a clock the test controls: running, pausing, meeting, breaching, business hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from broker.helpdesk.sla import (
    ALWAYS,
    BusinessCalendar,
    CalendarError,
    SlaClock,
    SlaState,
    SlaTimer,
    Targets,
    TimerState,
)

UTC = UTC
MONDAY_9 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # a Monday
HOUR = 3600.0


def at(hours: float) -> datetime:
    return MONDAY_9 + timedelta(hours=hours)


OFFICE = BusinessCalendar.parse("mon-fri 09:00-17:00", "UTC")


def test_a_running_timer_spends_time_and_knows_when_it_breaches() -> None:
    timer = SlaTimer(target_s=4 * 3600, since=at(0))
    assert timer.spent(at(1), ALWAYS) == HOUR
    assert timer.due_at(ALWAYS) == at(4)
    assert timer.warn_at(ALWAYS, 0.75) == at(3)
    assert timer.state(at(2), ALWAYS, 0.75) is TimerState.running
    assert timer.state(at(3), ALWAYS, 0.75) is TimerState.at_risk
    assert timer.state(at(4), ALWAYS, 0.75) is TimerState.breached


def test_a_paused_timer_stops_spending_and_has_no_due_time() -> None:
    timer = SlaTimer(target_s=4 * 3600, since=at(0)).pause(at(1), ALWAYS)
    assert timer.spent(at(10), ALWAYS) == HOUR
    assert timer.due_at(ALWAYS) is None
    assert timer.state(at(10), ALWAYS, 0.8) is TimerState.paused
    resumed = timer.resume(at(10))
    # One hour spent before the pause, three more allowed after resuming at 10.
    assert resumed.due_at(ALWAYS) == at(13)


def test_a_met_timer_keeps_what_it_spent_and_reports_lateness() -> None:
    on_time = SlaTimer(target_s=2 * 3600, since=at(0)).meet(at(1), ALWAYS)
    assert on_time.state(at(100), ALWAYS, 0.8) is TimerState.met
    late = SlaTimer(target_s=2 * 3600, since=at(0)).meet(at(3), ALWAYS)
    assert late.state(at(100), ALWAYS, 0.8) is TimerState.breached
    assert late.met_at == at(3)
    # Meeting twice keeps the first time.
    assert on_time.meet(at(5), ALWAYS).met_at == at(1)


def test_state_pauses_both_timers_while_pending_and_resolution_restarts_on_reopen() -> None:
    targets = Targets(first_response_s=3600, resolution_s=8 * 3600)
    clock = SlaClock(business=None, warn_share=0.8)
    state = SlaState.start(targets, at(0))
    state = state.pause(at(0.5), ALWAYS)            # pending after 30 min
    flags = clock.flags(state, at(5))
    assert flags.due_at is None and flags.warn_at is None and not flags.breached
    state = state.resume(at(5))                     # back to open at 5 h
    assert clock.flags(state, at(5)).due_at == at(5.5)  # 30 min of the first-response hour left
    state = state.responded(at(5.25), ALWAYS)       # answered at 5 h 15
    assert clock.view(state, at(6))["first_response"].state is TimerState.met
    assert clock.flags(state, at(6)).due_at == at(5 + 8 - 0.5)
    state = state.resolved(at(7), ALWAYS)           # resolved: 0.5 + 2 = 2.5 h spent
    assert clock.flags(state, at(100)).due_at is None
    state = state.reopened(at(20))
    assert clock.flags(state, at(20)).due_at == at(20 + 8 - 2.5)
    # 2.5 h + 4 h = 6.5 h of 8: past the 80 % warning (6.4 h), not yet over.
    assert clock.view(state, at(24))["resolution"].state is TimerState.at_risk
    assert not clock.flags(state, at(24)).breached
    assert clock.flags(state, at(25.5)).breached  # 2.5 + 5.5 = 8 h


def test_a_priority_change_keeps_the_time_spent() -> None:
    state = SlaState.start(Targets(3600, 8 * 3600), at(0))
    state = state.retarget(Targets(15 * 60, 4 * 3600), at(0.5), ALWAYS, ALWAYS)
    clock = SlaClock(business=None)
    assert clock.flags(state, at(0.5)).breached  # 30 min spent, 15 min allowed now
    assert clock.view(state, at(1))["resolution"].due_at == at(4)


def test_the_breach_flag_is_set_once_a_running_timer_passes_its_target() -> None:
    clock = SlaClock(business=None)
    state = SlaState.start(Targets(3600, 2 * 3600), at(0))
    assert not clock.flags(state, at(0.99)).breached
    assert clock.flags(state, at(1)).breached


def test_business_hours_count_only_inside_the_window() -> None:
    # Friday 16:00 to Monday 10:00 holds one hour on Friday and one on Monday.
    friday_16 = datetime(2026, 12, 4, 16, 0, tzinfo=UTC)
    monday_10 = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    assert OFFICE.seconds_between(friday_16, monday_10) == 2 * HOUR
    # Four working hours from Friday 16:00 end Monday 12:00.
    assert OFFICE.add(friday_16, 4 * HOUR) == datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    # Starting outside the window: the clock starts at the next opening.
    saturday = datetime(2026, 12, 5, 11, 0, tzinfo=UTC)
    assert OFFICE.add(saturday, 0) == datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    assert OFFICE.seconds_between(saturday, saturday + timedelta(hours=20)) == 0


def test_business_hours_follow_the_time_zone_and_its_daylight_saving() -> None:
    berlin = BusinessCalendar.parse("mon-fri 09:00-17:00", "Europe/Berlin")
    # 2026-03-27 is a Friday in CET (UTC+1); 2026-03-30 a Monday in CEST (UTC+2).
    friday = datetime(2026, 3, 27, 15, 0, tzinfo=UTC)  # 16:00 in Berlin
    assert berlin.add(friday, 2 * HOUR) == datetime(2026, 3, 30, 8, 0, tzinfo=UTC)  # Monday 10:00 CEST


def test_a_state_with_business_hours_uses_the_business_calendar() -> None:
    clock = SlaClock(business=OFFICE, warn_share=0.5)
    friday_16 = datetime(2026, 12, 4, 16, 0, tzinfo=UTC)
    state = SlaState.start(Targets(2 * 3600, 16 * 3600, business_hours=True), friday_16)
    assert clock.flags(state, friday_16).due_at == datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    assert clock.flags(state, friday_16).warn_at == datetime(2026, 12, 4, 17, 0, tzinfo=UTC)
    assert not clock.flags(state, datetime(2026, 12, 6, 12, 0, tzinfo=UTC)).breached  # the weekend is free


def test_state_survives_its_json_form() -> None:
    state = SlaState.start(Targets(3600, 7200, business_hours=True), at(0)).pause(at(0.25), OFFICE)
    assert SlaState.from_json(state.to_json()) == state
    assert SlaState.from_json({}) is None


@pytest.mark.parametrize("text, zone, fragment", [
    ("weekdays 9-5", "UTC", "expected weekdays and a time window"),
    ("mon-fry 09:00-17:00", "UTC", "unknown weekday"),
    ("fri-mon 09:00-17:00", "UTC", "runs backwards"),
    ("mon-fri 17:00-09:00", "UTC", "must end after it starts"),
    ("mon-fri 09:00-25:00", "UTC", "not HH:MM"),
    ("mon-fri 09:00-17:00", "Mars/Olympus", "time zone 'Mars/Olympus' is unknown"),
])
def test_bad_business_hours_are_refused_with_the_reason(text: str, zone: str, fragment: str) -> None:
    with pytest.raises(CalendarError, match=fragment):
        BusinessCalendar.parse(text, zone)


def test_listed_weekdays_and_ranges_combine() -> None:
    calendar = BusinessCalendar.parse("mon,wed-thu 08:30-12:00", "UTC")
    assert calendar.weekdays == frozenset({0, 2, 3})
