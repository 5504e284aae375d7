"""The broker's database slots: arrival order, the lane ahead, refusals, and no slot lost to a cancelled wait."""

from __future__ import annotations

import asyncio

import pytest

from broker.errors import ApiError
from broker.storage.db_slots import DatabaseBudget, DatabaseSlots, Lane


def _slots(slots: int = 1, queue: int = 10, wait_seconds: float = 5.0) -> DatabaseSlots:
    return DatabaseSlots(DatabaseBudget(slots=slots, queue=queue, wait_seconds=wait_seconds))


async def _hold(slots: DatabaseSlots, name: str, order: list[str], release: asyncio.Event, **kind: bool) -> None:
    async with slots.slot(**kind):
        order.append(name)
        await release.wait()


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_budget_sizes_follow_from_the_slots() -> None:
    budget = DatabaseBudget(slots=16, queue=2000, wait_seconds=10)
    assert budget.pool_connections == 40
    assert budget.threads == 40


def test_waiting_work_gets_slots_in_arrival_order_with_the_ahead_lane_first() -> None:
    async def scenario() -> list[str]:
        slots, order, release = _slots(), [], asyncio.Event()
        holder = asyncio.create_task(_hold(slots, "holder", order, release))
        await _settle()
        tasks = [asyncio.create_task(_hold(slots, name, order, release, **kind)) for name, kind in (
            ("first", {}), ("second", {"refusable": False}), ("code check", {"ahead": True}), ("third", {}),
            ("second check", {"ahead": True}),
        )]
        await _settle()
        assert order == ["holder"]
        assert slots.waiting == 4  # the unrefusable one is not counted in the queue
        release.set()
        await asyncio.gather(holder, *tasks)
        return order

    assert asyncio.run(scenario()) == ["holder", "code check", "second check", "first", "second", "third"]


def test_a_full_queue_and_a_long_wait_are_refused_with_retry_after() -> None:
    async def scenario() -> None:
        slots, order, release = _slots(queue=1, wait_seconds=0.2), [], asyncio.Event()
        holder = asyncio.create_task(_hold(slots, "holder", order, release))
        await _settle()
        waiter = asyncio.create_task(_hold(slots, "waiter", order, release))
        await _settle()
        with pytest.raises(ApiError) as full:
            async with slots.slot():
                pass
        assert full.value.status == 503 and full.value.headers == {"Retry-After": "2"}
        assert "1 requests are waiting" in full.value.message
        with pytest.raises(ApiError) as late:
            await waiter
        assert late.value.status == 503 and "no database slot within 0.2 s" in late.value.message
        release.set()
        await holder
        # Nothing was lost: the single slot is free again.
        async with asyncio.timeout(1):
            async with slots.slot():
                order.append("after")
        assert order == ["holder", "after"]

    asyncio.run(scenario())


def test_a_wait_cancelled_as_its_slot_is_granted_passes_the_slot_on() -> None:
    async def scenario() -> list[str]:
        slots, order, release = _slots(), [], asyncio.Event()
        release.set()
        held = slots.slot()
        await held.__aenter__()
        leaving = asyncio.create_task(_hold(slots, "leaving", order, release))
        staying = asyncio.create_task(_hold(slots, "staying", order, release))
        await _settle()
        await held.__aexit__(None, None, None)  # grants the slot to "leaving", whose task has not run yet ...
        leaving.cancel()  # ... and goes away before it does
        await asyncio.gather(leaving, return_exceptions=True)
        async with asyncio.timeout(1):
            await staying
        return order

    assert asyncio.run(scenario()) == ["staying"]


def test_each_lane_takes_its_kind_of_slot_and_a_held_one_none() -> None:
    async def scenario() -> list[str]:
        slots, order, release = _slots(queue=1, wait_seconds=0.2), [], asyncio.Event()
        holder = asyncio.create_task(_hold(slots, "holder", order, release))
        await _settle()
        # All slots taken for longer than it may wait: ordinary work is refused ...
        with pytest.raises(ApiError):
            async with slots.slot_for(Lane.in_turn):
                pass
        # ... work the request already holds a slot for runs beside it ...
        async with asyncio.timeout(1):
            async with slots.slot_for(Lane.held):
                order.append("held")
        # ... and work nobody can be told to retry waits however long, behind work in the lane ahead.
        surely = asyncio.create_task(_lane(slots, Lane.surely, "surely", order))
        ahead = asyncio.create_task(_lane(slots, Lane.ahead, "ahead", order))
        await _settle()
        release.set()
        await asyncio.gather(holder, surely, ahead)
        return order

    assert asyncio.run(scenario()) == ["holder", "held", "ahead", "surely"]


async def _lane(slots: DatabaseSlots, lane: Lane, name: str, order: list[str]) -> None:
    async with slots.slot_for(lane):
        order.append(name)
