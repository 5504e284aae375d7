"""The file request an offered file names is checked against its session before anything is created.

A real broker: the technician offers the host a file naming a file request that does not
exist, one of another session, or one of this session (a file for the host answers no
request). Each is refused in the one error shape, naming ``request_id``; no transfer is
created or audited and no file request is announced to the session's peers.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import websockets

from tests.support.api import bearer, consented_session
from tests.support.broker import BrokerProcess

FILES = ["files.send", "files.receive"]


def ask_for_a_file(broker: BrokerProcess, admin: dict[str, str], session_id: str) -> str:
    asked = broker.http.post(f"/sessions/{session_id}/file-requests", headers=admin, json={"path": "/var/log/syslog", "note": ""})
    assert asked.status_code == 201, asked.text
    return str(asked.json()["id"])


def offer_to_host(broker: BrokerProcess, admin: dict[str, str], session_id: str, request_id: str | None) -> httpx.Response:
    body: dict[str, Any] = {"name": "fix.sh", "size": 10, "direction": "to_host"}
    if request_id is not None:
        body["request_id"] = request_id
    return broker.http.post(f"/sessions/{session_id}/transfers", headers=admin, json=body)


@asynccontextmanager
async def host_socket(broker: BrokerProcess, session_id: str, host_token: str) -> AsyncIterator[websockets.ClientConnection]:
    async with websockets.connect(broker.ws_url(session_id), additional_headers=bearer(host_token)) as ws:
        yield ws


async def frames_until_transfer(ws: websockets.ClientConnection, timeout: float = 10.0) -> list[str]:
    """The types of the frames the host got, up to and with the first transfer announced to it."""
    deadline = time.monotonic() + timeout
    kinds: list[str] = []
    while not kinds or kinds[-1] != "transfer":
        kinds.append(json.loads(await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic())))["type"])
    return kinds


def request_state(broker: BrokerProcess, request_id: str) -> tuple[object, ...]:
    return broker.sql("SELECT state, transfer_id FROM file_requests WHERE id = ?", request_id)[0]


@pytest.mark.parametrize("named", ["no file request", "another session's request", "this session's request"])
async def test_a_file_for_the_host_naming_a_file_request_is_refused_and_nothing_happens(broker, admin, named: str) -> None:
    """Before: an unknown id answered 500 with the transfer already created (and audited);
    another session's request was announced to this session's peers."""
    session_id, host_token = consented_session(broker, admin, FILES)
    if named == "no file request":
        request_id, status = str(uuid.uuid4()), 404
    elif named == "another session's request":
        other_session, _ = consented_session(broker, admin, FILES)
        request_id, status = ask_for_a_file(broker, admin, other_session), 404
    else:
        request_id, status = ask_for_a_file(broker, admin, session_id), 422
    async with host_socket(broker, session_id, host_token) as host:
        refused = offer_to_host(broker, admin, session_id, request_id)
        assert refused.status_code == status, refused.text
        assert refused.headers["content-type"] == "application/json"
        body = refused.json()
        assert body["error"] == ("not_found" if status == 404 else "invalid_request"), body
        assert body["message"].startswith("request_id:"), body
        if status == 404:
            assert request_id in body["message"] and "does not exist in this session" in body["message"], body
        # A plain offer is announced after whatever the refused one might have announced.
        sent = offer_to_host(broker, admin, session_id, None)
        assert sent.status_code == 201, sent.text
        kinds = await frames_until_transfer(host)
    assert "file_request" not in kinds, kinds
    created = broker.sql("SELECT id FROM transfers WHERE session_id = ?", session_id)
    assert created == [(sent.json()["id"],)]
    offered = broker.sql("SELECT count(*) FROM audit_events WHERE kind = 'transfer.offered' AND session_id = ?", session_id)
    assert offered == [(1,)]
    if named != "no file request":
        assert request_state(broker, request_id) == ("pending", None)
