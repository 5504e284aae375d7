"""The broker's ASGI application."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import anyio.to_thread
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response as StarletteResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from broker import __doc__ as broker_doc
from broker.accounts.access import PublicAccess
from broker.errors import install_error_handlers
from broker.routes import audit as audit_routes
from broker.routes import (
    auth,
    downloads,
    help_requests,
    join,
    recording,
    roles,
    sessions,
    signal,
    sla,
    surveys,
    teams,
    tickets,
    transfers,
    users,
)
from broker.routes import inbound as inbound_routes
from broker.routes import reports as report_routes
from broker.routes import webhooks as webhook_routes
from broker.state import BrokerState
from broker.workers import running_workers
from protocol.api import API_PREFIX

log = logging.getLogger(__name__)





def create_app(state: BrokerState) -> FastAPI:
    """The FastAPI application over an opened :class:`BrokerState`."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # As many worker threads as the database budget needs (broker/storage/db_slots.py says why).
        anyio.to_thread.current_default_thread_limiter().total_tokens = state.db_slots.budget.threads
        try:
            async with running_workers(state):
                yield
        finally:
            # Nothing written before the shutdown stays unsealed or unsigned.
            await run_in_threadpool(state.seal_trail)
            state.database.dispose()
            if state.redis is not None:
                await state.redis.aclose()
            if state.redis_blocking is not None:
                state.redis_blocking.close()

    app = FastAPI(
        title="Deskhand broker",
        description=broker_doc or "",
        version="0.1.0",
        lifespan=lifespan,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.state.broker = state
    install_error_handlers(app, state.settings.data_dir)
    for module in (auth, tickets, sessions, join, help_requests, surveys, signal, transfers, recording, audit_routes,
                   users, roles, teams, sla, downloads):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(report_routes.router, prefix=API_PREFIX)

    for module in (webhook_routes, inbound_routes):
        app.include_router(module.router, prefix=API_PREFIX)

    @app.get(f"{API_PREFIX}/health", tags=["meta"], summary="Liveness check", dependencies=[PublicAccess])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    # Last, so that every API path wins over a file of the same name.
    app.mount("/", ConsoleFiles(directory=web_console_dir(), html=True), name="console")
    return app


def web_console_dir() -> Path:
    """``tech_console/web``, found without importing the console (the broker only serves its files)."""
    spec = importlib.util.find_spec("tech_console")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the tech_console package is not installed: pip install deskhand")
    return Path(next(iter(spec.submodule_search_locations))) / "web"


CONSOLE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
"""The console's pages run only their own scripts and talk only to this broker."""


class ConsoleFiles(StaticFiles):
    """The browser console's files, with headers that keep other sites and injected scripts out."""

    async def get_response(self, path: str, scope: Scope) -> StarletteResponse:
        response = await super().get_response(path, scope)
        response.headers["Content-Security-Policy"] = CONSOLE_CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-cache"
        return response
