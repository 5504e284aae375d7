"""Long polls that end when their client has gone.

A request waiting for a change (a transfer's state, a chunk, a place in the queue) holds a task and
its connection for up to its ``wait``. Starlette does not end a handler whose client closed the
connection, so a client that gave up (a host killed, a console closed, a test ended) left the broker
waiting the whole wait for no one, and a broker told to stop waited for all of them first: 10 s at
the end of every test module whose clients left a poll behind. :func:`wait_for_change` looks at
the connection every :data:`DISCONNECT_CHECK_SECONDS` while it waits.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request

from protocol.waits import wait_until_set

DISCONNECT_CHECK_SECONDS = 1.0
"""How often a long poll looks whether its client is still there."""


async def wait_for_change(request: Request, event: asyncio.Event, timeout: float) -> bool:
    """Wait until ``event`` is set (True), for at most ``timeout`` seconds or until the client of
    ``request`` has gone (False; ``await request.is_disconnected()`` says which)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return event.is_set()
        if await wait_until_set(event, min(remaining, DISCONNECT_CHECK_SECONDS)):
            return True
        if await request.is_disconnected():
            return False
