"""Disabling a technician stops their file transfer at the very next chunk, with a real host receiving it.

The broker takes a peer it verified on trust for a transfer's next chunks for a
moment (``broker.sessions.peers.PeerCache``); disabling the account must end that at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

from protocol.transfers import CHUNK_SIZE, TransferState
from tests.support.accounts import PASSWORD, make_user
from tests.support.api import bearer
from tests.support.live_session import live_session

pytestmark = pytest.mark.slow


async def test_a_disabled_technicians_next_chunk_is_refused_at_once(broker, xvfb, tmp_path) -> None:
    make_user(broker, "tess", role="technician")
    admin = bearer(broker.login())
    env = {**xvfb.env, "DESKHAND_DOWNLOADS": str(tmp_path / "Downloads")}
    async with live_session(broker, env, "--consent", "view,files.send", view=False, login=("tess", PASSWORD)) as live:
        await live.consented()
        tess = bearer(broker.login("tess", PASSWORD))
        base = f"/sessions/{live.session_id}/transfers"
        offered = broker.http.post(base, headers=tess, json={"name": "tool.zip", "size": CHUNK_SIZE + 10, "direction": "to_host"})
        assert offered.status_code == 201, offered.text
        transfer = offered.json()["id"]
        for _ in range(200):  # the host accepts on its own (--consent files.send)
            if broker.http.get(f"{base}/{transfer}", headers=tess).json()["state"] == TransferState.accepted.value:
                break
            await asyncio.sleep(0.05)

        def put_chunk(index: int, data: bytes) -> int:
            headers = {**tess, "X-Chunk-SHA256": hashlib.sha256(data).hexdigest()}
            return broker.http.put(f"{base}/{transfer}/chunks/{index}", content=data, headers=headers).status_code

        assert put_chunk(0, os.urandom(CHUNK_SIZE)) == 204  # tess is now verified, and taken on trust for a while
        assert broker.http.patch("/users/tess", headers=admin, json={"disabled": True}).status_code == 200
        assert put_chunk(1, os.urandom(10)) == 401
        assert broker.http.post(f"/sessions/{live.session_id}/end", headers=admin, json={"reason": "tess left"}).status_code == 200
        await asyncio.to_thread(live.host.wait, 20)
