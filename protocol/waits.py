"""Waiting for an asyncio event with a time limit, in a way its waiter's cancellation always gets through.

The broker's long polls and the clients' background loops wait so; nothing else here.
"""

from __future__ import annotations

import asyncio


async def wait_until_set(event: asyncio.Event, timeout: float) -> bool:
    """Wait until ``event`` is set, for at most ``timeout`` seconds; whether it is set.

    Not ``asyncio.wait_for(event.wait(), timeout)``: on Python 3.11 that swallows a
    cancellation which comes while the event is being set (it returns the wait's result
    instead of raising, python/cpython#86296). A loop around it that its owner cancels
    then goes on, and the owner waiting for it waits for ever: a host whose session ended
    just as its recorder handed the uploader a segment never exited (a long poll of the
    broker whose client left would likewise run on). Here the event is
    awaited directly, so a cancellation always raises.
    """
    try:
        async with asyncio.timeout(timeout):
            return await event.wait()
    except TimeoutError:
        return event.is_set()
