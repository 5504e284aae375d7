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

The domain tier: :class:`AppBroker` is the same app behind the interface of
:class:`tests.support.broker.BrokerProcess` (``http``, ``login``, ``sql``, ``admin_password``,
``database_url``), with its background loops running, but no process, port or server. A module
of tests about the broker's rules runs on it by overriding its ``broker`` fixture with
``in_process_broker`` (``tests/conftest.py``); the tests themselves do not change::

    @pytest.fixture(scope="module")
    def broker(in_process_broker: AppBroker) -> AppBroker:
        return in_process_broker

What needs the real server (the request-head limits of ``broker/server/uvicorn_hooks.py``,
TLS, WebSockets, restarts, several processes) stays on :class:`BrokerProcess`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal
from sqlalchemy import update

from broker.accounts.logins import FIRST_ADMIN, ensure_first_admin
from broker.app import create_app
from broker.settings import Settings
from broker.state import BrokerState, build_state
from broker.storage.models import SupportSession, User
from tests.support.api import HOST_BODY, bearer
from tests.support.broker import BrokerCalls, broker_environment

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
def _no_deskhand_environment(settings: dict[str, str] | None = None) -> Iterator[None]:
    """The test runner's ``DESKHAND_*`` variables hidden, and ``settings`` set instead, for a while."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("DESKHAND_")}
    for name in saved:
        del os.environ[name]
    os.environ.update(settings or {})
    try:
        yield
    finally:
        for name in settings or {}:
            os.environ.pop(name, None)
        os.environ.update(saved)


def _fresh_state(data_dir: Path, env: dict[str, str], **overrides: Any) -> tuple[BrokerState, str]:
    """A broker's state over a new database, and its first admin's password (counted as chosen)."""
    with _no_deskhand_environment(env):
        settings = Settings(data_dir=data_dir, **overrides)
    state = build_state(settings)
    with state.database.session() as db:
        password = ensure_first_admin(db)
        assert password is not None, f"{settings.database_url or data_dir} already held a broker's accounts"
        db.execute(update(User).where(User.username == FIRST_ADMIN).values(must_change_password=False))
    return state, password


class AppClient:
    """Blocking calls to the app through an event loop of its own (the portal's thread), like ``httpx.Client``."""

    def __init__(self, portal: BlockingPortal, client: httpx.AsyncClient) -> None:
        self._portal = portal
        self._client = client

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """``method path`` answered by the app; keyword arguments as ``httpx.Client.request`` takes them."""
        return self._portal.call(partial(self._client.request, method, path, **kwargs))

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)


class AppBroker(BrokerCalls):
    """The broker's app in this process, used like a :class:`~tests.support.broker.BrokerProcess`."""

    def __init__(self, state: BrokerState, http: AppClient, admin_password: str) -> None:
        self.state = state
        self.http = http
        """A client of the app on ``/api/v1``, used like ``BrokerProcess.http``."""
        self.admin_password = admin_password
        self.data_dir = state.settings.data_dir
        self.database_url = state.settings.effective_database_url

    @classmethod
    @contextmanager
    def start(cls, overrides: dict[str, str] | None, data_dir: Path) -> Iterator[AppBroker]:
        """The app over a fresh database in ``data_dir`` (or ``DESKHAND_DATABASE_URL``), its loops running.

        ``overrides`` are ``DESKHAND_*`` settings, with the defaults a broker process gets.
        """
        env = {k: v for k, v in broker_environment(overrides).items() if k.startswith("DESKHAND_")}
        state, password = _fresh_state(data_dir, env)
        app = create_app(state)
        try:
            # The app's event loop runs in the portal's thread; its lifespan starts and stops the background loops.
            with start_blocking_portal() as portal, portal.wrap_async_context_manager(app.router.lifespan_context(app)):
                client = portal.call(partial(httpx.AsyncClient, transport=httpx.ASGITransport(app=app), base_url=API))
                try:
                    yield cls(state, AppClient(portal, client), password)
                finally:
                    portal.call(client.aclose)
        finally:
            state.database.dispose()


@asynccontextmanager
async def in_process_broker(data_dir: Path, **overrides: Any) -> AsyncIterator[InProcessBroker]:
    """A broker app over a fresh database in ``data_dir``; its first admin counted as having chosen its password."""
    state, password = _fresh_state(data_dir, {}, **overrides)
    transport = httpx.ASGITransport(app=create_app(state))
    try:
        async with httpx.AsyncClient(transport=transport, base_url=API) as http:
            yield InProcessBroker(state, http, password)
    finally:
        state.database.dispose()
