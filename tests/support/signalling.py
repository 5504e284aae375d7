"""A raw signalling WebSocket as a peer would hold it, for tests that speak the protocol by hand."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import websockets
from websockets.typing import Subprotocol

from broker.accounts.socket_bearer import BEARER_SUBPROTOCOL
from tests.support.api import bearer


@asynccontextmanager
async def peer(broker: Any, session_id: str, token: str, *, as_subprotocol: bool = False) -> AsyncIterator[websockets.ClientConnection]:
    """The session's signalling socket, opened with ``token`` (a host's or a technician's); ``as_subprotocol``:
    the token offered beside ``deskhand.bearer``, as the join page must (a browser sets no header on a WebSocket)."""
    if as_subprotocol:
        offered = [Subprotocol(BEARER_SUBPROTOCOL), Subprotocol(token)]
        async with websockets.connect(broker.ws_url(session_id), subprotocols=offered) as ws:
            yield ws
        return
    async with websockets.connect(broker.ws_url(session_id), additional_headers=bearer(token)) as ws:
        yield ws


async def receive(ws: websockets.ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    """The next message, decoded."""
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    return message


async def receive_type(ws: websockets.ClientConnection, kind: str, timeout: float = 5.0) -> dict[str, Any]:
    """The next message of ``kind``, skipping others."""
    deadline = time.monotonic() + timeout
    while True:
        message = await receive(ws, max(0.01, deadline - time.monotonic()))
        if message["type"] == kind:
            return message
