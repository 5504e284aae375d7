"""The peer's side of WebSocket keepalive: ping the broker only when it has gone quiet.

The broker pings every connected peer (``DESKHAND_WS_PING_SECONDS``, 30 s by default),
which keeps NAT and proxy bindings open and finds peers that vanished. websockets' own
keepalive would also have each peer ping the broker on a timer of its own: a second ping
and pong per peer for the broker to read and answer, about half of a broker's idle CPU at
10,000 idle sessions. A peer only needs its pings to notice a broker that vanished, and
any frame from the broker (its pings included) says it is there. So
:class:`QuietPeerConnection` pings after ``ping_interval`` seconds in which nothing
arrived, and closes the connection (code 1011) when that ping is not answered within
``ping_timeout``; the peer's reconnect loop takes it from there.

Used through websockets' documented extension point,
``websockets.connect(..., create_connection=QuietPeerConnection)``; it replaces
:meth:`ClientConnection.keepalive`, which websockets starts after the opening handshake
and cancels when the connection is lost (``tests/unit/test_peer_keepalive.py`` checks
both still hold).
"""

from __future__ import annotations

import asyncio
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode, Frame
from websockets.http11 import Request, Response

BROKER_SILENT = "the broker stopped answering"
"""The close reason when the broker left a ping unanswered."""


class QuietPeerConnection(ClientConnection):
    """A client connection that pings only after ``ping_interval`` seconds without a frame."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.last_heard = self.loop.time()
        """When the last frame (data, ping, pong or close) arrived, in the event loop's time."""
        self.pings_sent = 0
        """Keepalive pings sent (the broker's own pings make this stay 0)."""

    def process_event(self, event: Request | Response | Frame) -> None:  # websockets' Event, spelled out: it is not exported
        self.last_heard = self.loop.time()
        super().process_event(event)

    async def keepalive(self) -> None:
        """Until the connection ends: wait for a quiet ``ping_interval``, then ping and wait for the answer."""
        interval = self.ping_interval
        assert interval is not None  # websockets starts keepalive only with an interval
        try:
            while True:
                quiet = self.loop.time() - self.last_heard
                if quiet < interval:
                    await asyncio.sleep(interval - quiet)
                    continue
                answered = await self.ping()
                self.pings_sent += 1
                try:
                    async with asyncio.timeout(self.ping_timeout):
                        await answered
                except TimeoutError:
                    await self.close(CloseCode.INTERNAL_ERROR, BROKER_SILENT)
                    return
        except ConnectionClosed:
            return
