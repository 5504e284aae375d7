"""The broker's app in the test's own process, on a real SQLite database in a temporary folder.

For tests that must reach inside the broker: hook the step between two others, or look at
what it holds in memory. Requests go through httpx's ASGI transport to the real app (its
routes, rules, database and spool); no server runs and the background loops (sweeps,
sealing) do not start::

    async with in_process_broker(tmp_path) as broker:
        session = await broker.paired_session(consent=["files.send"])
        await broker.http.post(f"/sessions/{session.session_id}/transfers", headers=session.technician, json=...)
        broker.state.spool                  # what the broker holds, as the routes see it

Settings are the defaults plus ``overrides`` (``DESKHAND_*`` variables of the test runner are
not read, as :mod:`tests.support.broker` keeps them from a broker process).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import update

from broker.accounts.logins import FIRST_ADMIN, ensure_first_admin
from broker.app import create_app
from broker.settings import Settings
from broker.state import BrokerState, build_state
from broker.storage.models import SupportSession, User
from tests.support.api import HOST_BODY, bearer

API = "http://127.0.0.1/api/v1"


@dataclass(frozen=True)
class PairedSession:
    """A session a host has joined: its id and the ``Authorization`` headers of its two peers."""

    session_id: str
    technician: dict[str, str]
    host: dict[str, str]


@dataclass
class InProcessBroker:
    """The app's state and a client of its API (``/api/v1`` is the base URL)."""

    state: BrokerState
    http: httpx.AsyncClient
    admin_password: str

    async def call(self, method: str, path: str, expect: int, **kwargs: Any) -> Any:
        """``method path``, asserted to answer ``expect``; its JSON body (None when it has none)."""
        response = await self.http.request(method, path, **kwargs)
        assert response.status_code == expect, (method, path, response.status_code, response.text)
        return response.json() if response.content else None

    async def paired_session(self, consent: list[str]) -> PairedSession:
        """A new ticket's session, started by the first admin, joined by a host that allowed ``consent``."""
        login = await self.call("POST", "/auth/login", 200, json={"username": FIRST_ADMIN, "password": self.admin_password})
        technician = bearer(login["access_token"])
        ticket = await self.call("POST", "/tickets", 201, headers=technician, json={
            "subject": "Printer offline", "requester_name": "Ann", "requester_email": "ann@example.com"})
        started = await self.call("POST", "/sessions", 201, headers=technician, json={"ticket_id": ticket["id"]})
        joined = await self.call("POST", "/join", 200, json={"code": started["code"], **HOST_BODY})
        with self.state.database.session() as db:
            db.execute(update(SupportSession).where(SupportSession.id == joined["session_id"]).values(consent=consent))
        return PairedSession(joined["session_id"], technician, bearer(joined["host_token"]))


@contextmanager
def _no_deskhand_environment() -> Iterator[None]:
    saved = {k: v for k, v in os.environ.items() if k.startswith("DESKHAND_")}
    for name in saved:
        del os.environ[name]
    try:
        yield
    finally:
        os.environ.update(saved)


@asynccontextmanager
async def in_process_broker(data_dir: Path, **overrides: Any) -> AsyncIterator[InProcessBroker]:
    """A broker app over a fresh database in ``data_dir``; its first admin counted as having chosen its password."""
    with _no_deskhand_environment():
        settings = Settings(data_dir=data_dir, **overrides)
    state = build_state(settings)
    with state.database.session() as db:
        password = ensure_first_admin(db)
        assert password is not None, f"{data_dir} already held a broker's accounts"
        db.execute(update(User).where(User.username == FIRST_ADMIN).values(must_change_password=False))
    transport = httpx.ASGITransport(app=create_app(state))
    try:
        async with httpx.AsyncClient(transport=transport, base_url=API) as http:
            yield InProcessBroker(state, http, password)
    finally:
        state.database.dispose()
