"""peer.signalling.ReconnectSchedule: how often a peer retries the broker, and when it stops."""

from __future__ import annotations

from peer.signalling import ReconnectSchedule


def test_delays_grow_then_stay_at_the_last_one() -> None:
    schedule = ReconnectSchedule(delays=(0.5, 1.0, 4.0), give_up_after=100)
    assert [schedule.next_delay(now) for now in (0, 1, 2, 3, 4)] == [0.5, 1.0, 4.0, 4.0, 4.0]


def test_it_gives_up_once_the_broker_was_gone_too_long() -> None:
    schedule = ReconnectSchedule(delays=(1.0,), give_up_after=10)
    assert schedule.next_delay(100.0) == 1.0
    assert schedule.next_delay(110.0) == 1.0
    assert schedule.next_delay(110.5) is None


def test_a_connection_starts_the_schedule_afresh() -> None:
    schedule = ReconnectSchedule(delays=(0.5, 8.0), give_up_after=10)
    schedule.next_delay(0.0)
    schedule.next_delay(9.0)
    schedule.connected()
    assert schedule.next_delay(50.0) == 0.5
    assert schedule.next_delay(59.0) == 8.0
    assert schedule.next_delay(61.0) is None
