"""Attempts counted as failures only once judged, with no more checked at once than may fail.

The gate with a clock we control (plain floats); then the waiting around it on a real event loop.
"""

from __future__ import annotations

import asyncio

import pytest

from broker.throttling.attempt_slots import AttemptSlots, SlotRefused
from broker.throttling.ratelimit import Admitted, AttemptGate, Blocked, Crowded, FailureLimiter, Queued


def gate(per_source: int = 3, overall: int | None = 100, window: float = 60, max_waiting: int = 100) -> AttemptGate:
    return AttemptGate(FailureLimiter.create(per_source, overall, window), max_waiting=max_waiting)


def test_a_source_has_as_many_attempts_checked_at_once_as_it_may_still_fail() -> None:
    g = gate(per_source=3)
    assert [g.arrive("a", 0) for _ in range(3)] == [Admitted()] * 3
    fourth = g.arrive("a", 0)
    assert isinstance(fourth, Queued)
    assert g.arrive("b", 0) == Admitted()  # another source has its own slots
    assert g.in_flight("a") == 3


def test_right_attempts_free_their_slot_for_the_next_and_never_count() -> None:
    g = gate(per_source=2)
    for _ in range(2):
        g.arrive("a", 0)
    queued = [g.arrive("a", 0) for _ in range(3)]
    assert all(isinstance(q, Queued) for q in queued)
    finished = g.finish("a", 1, failed=False)
    assert finished.block_started is None
    assert finished.decided == {queued[0].ticket: Admitted()}  # first come, first served
    # A hundred right codes in a row: no failure counted, never blocked.
    for t in range(100):
        g.finish("a", t, failed=False)
        g.arrive("a", t)
    assert g.failures.remaining("a", 100) == (2, 100)


def test_wrong_attempts_use_up_the_slots_so_the_limit_is_reached_never_passed() -> None:
    g = gate(per_source=3)
    for _ in range(3):
        assert g.arrive("a", 0) == Admitted()
    queued = [g.arrive("a", 0) for _ in range(5)]
    # The first wrong one: 2 failures left, 2 still in flight: nobody else may start.
    first = g.finish("a", 1, failed=True)
    assert first.block_started is None and first.decided == {}
    assert g.finish("a", 1, failed=True).decided == {}
    # The third wrong one reaches the limit: it starts the block, and every waiter is refused.
    last = g.finish("a", 1, failed=True)
    assert last.block_started == 60
    assert last.decided == {q.ticket: Blocked(60) for q in queued}
    assert g.arrive("a", 2) == Blocked(59)  # at once, no waiting
    assert g.in_flight("a") == 0 and not g._waiting


def test_a_right_attempt_among_wrong_ones_lets_the_next_in() -> None:
    g = gate(per_source=2)
    g.arrive("a", 0)
    g.arrive("a", 0)
    queued = g.arrive("a", 0)
    g.finish("a", 1, failed=True)  # 1 failure left, 1 in flight: still full
    assert g.finish("a", 1, failed=False).decided == {queued.ticket: Admitted()}
    assert g.finish("a", 2, failed=True).block_started == 59  # the 2nd failure, at 2: the 1st leaves at 61


def test_slots_come_back_as_failures_leave_the_window() -> None:
    g = gate(per_source=2, window=10)
    g.arrive("a", 0)
    g.finish("a", 0, failed=True)
    assert g.arrive("a", 5) == Admitted()
    queued = g.arrive("a", 5)
    assert isinstance(queued, Queued)  # 1 failure left, 1 in flight
    assert g.arrive("a", 11) == Admitted()  # the failure at 0 has left the window: 2 left
    assert g.finish("a", 11, failed=False).decided == {queued.ticket: Admitted()}


def test_the_global_limit_bounds_attempts_in_flight_from_everyone() -> None:
    g = gate(per_source=10, overall=3)
    assert [g.arrive(s, 0) for s in "abc"] == [Admitted()] * 3
    waiting = g.arrive("d", 0)
    assert isinstance(waiting, Queued)
    # A right attempt of "a" frees a global slot, which goes to "d".
    assert g.finish("a", 1, failed=False).decided == {waiting.ticket: Admitted()}
    g.finish("b", 1, failed=True)
    g.finish("c", 1, failed=True)
    blocked = g.finish("d", 1, failed=True)
    assert blocked.block_started == 60  # the 3rd failure of all: everyone is blocked
    assert g.arrive("fresh", 1) == Blocked(60)


def test_each_block_is_reported_once() -> None:
    g = gate(per_source=1, overall=None)
    g.arrive("a", 0)
    assert g.finish("a", 0, failed=True).block_started == 60
    g._take("a")  # an attempt admitted before the block (only a window expiring could do this)
    assert g.finish("a", 0, failed=True).block_started is None


def test_abandoned_waiters_leave_no_trace_and_the_queue_is_bounded() -> None:
    g = gate(per_source=1, max_waiting=2)
    g.arrive("a", 0)
    first, second = g.arrive("a", 0), g.arrive("a", 0)
    assert g.arrive("a", 0) == Crowded() and g.arrive("b", 0) == Admitted()
    g.abandon("a", first.ticket)
    g.abandon("a", first.ticket)  # twice: harmless
    assert isinstance(g.arrive("a", 0), Queued)  # the room it left
    g.abandon("a", second.ticket)
    assert g.finish("a", 0, failed=False).decided != {}


def test_memory_stays_bounded_under_many_sources() -> None:
    g = gate(per_source=1, overall=None)
    for i in range(10_000):
        source = f"10.0.{i // 256}.{i % 256}"
        g.arrive(source, i / 1000)
        g.finish(source, i / 1000, failed=False)
    assert not g._in_flight and not g._waiting and g._in_flight_total == 0


def slots(per_source: int = 2, max_wait: float = 5.0) -> AttemptSlots:
    return AttemptSlots(gate(per_source=per_source), max_wait)


def test_waiters_get_in_as_slots_free_and_all_right_attempts_succeed() -> None:
    async def main() -> list[str]:
        s = slots(per_source=2)
        done: list[str] = []

        async def attempt(n: int) -> None:
            async with s.slot("a"):
                assert s.gate.in_flight("a") <= 2
                await asyncio.sleep(0.01)
                done.append(str(n))

        await asyncio.gather(*(attempt(n) for n in range(30)))
        assert s.gate.in_flight("a") == 0 and not s._waiters
        return done

    assert sorted(asyncio.run(main()), key=int) == [str(n) for n in range(30)]


def test_concurrent_wrong_attempts_fail_at_most_the_limit_and_the_rest_are_refused() -> None:
    async def main() -> tuple[int, list[int | None], list[SlotRefused]]:
        s = slots(per_source=3)
        checked = 0
        blocks: list[int | None] = []
        refused: list[SlotRefused] = []

        async def guess() -> None:
            nonlocal checked
            try:
                async with s.slot("a") as slot:
                    checked += 1
                    await asyncio.sleep(0.01)
                    blocks.append(slot.failed())
            except SlotRefused as refusal:
                refused.append(refusal)

        await asyncio.gather(*(guess() for _ in range(30)))
        return checked, blocks, refused

    checked, blocks, refused = asyncio.run(main())
    assert checked == 3 and sorted(blocks, key=str) == [60, None, None]
    assert len(refused) == 27 and all(r.blocked and r.retry_after == 60 for r in refused)


def test_a_waiter_gives_up_after_the_bounded_wait_as_busy() -> None:
    async def main() -> None:
        s = slots(per_source=1, max_wait=0.05)
        async with s.slot("a"):
            with pytest.raises(SlotRefused) as refused:
                async with s.slot("a"):
                    pass
            assert not refused.value.blocked and refused.value.retry_after == 1
            assert not s.gate._waiting  # it left the queue
        async with s.slot("a"):  # the slot came back
            pass

    asyncio.run(main())


def test_a_waiter_cancelled_after_being_let_in_passes_its_slot_on() -> None:
    async def main() -> None:
        s = slots(per_source=1)
        async with s.slot("a"):
            waiter = asyncio.create_task(s.slot("a").__aenter__())
            await asyncio.sleep(0)  # queued
        # The holder left: the waiter was let in, then cancelled before it ran.
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert s.gate.in_flight("a") == 0 and not s._waiters
        async with s.slot("a"):
            pass

    asyncio.run(main())
