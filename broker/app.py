"""The broker's ASGI application."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import time
from collections.abc import AsyncIterator, Coroutine, Iterable
from datetime import timedelta
from pathlib import Path

import anyio.to_thread
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response as StarletteResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from protocol.api import API_PREFIX
from protocol.signalling import SessionEnded
from protocol.webhooks import SeenSignatures

from . import __doc__ as broker_doc
from . import password_policy
from .access import PublicAccess
from .attempt_slots import AttemptSlots
from .db_slots import DatabaseSlots
from .deps import BrokerState
from .errors import install_error_handlers, log_round_failure
from .grant_watch import GrantWatcher
from .help_requests import QUEUE_CHANGED, ExpiredRequest, expire_idle_requests
from .hub import SignalHub
from .keys import load_or_create_keys, prepare_data_dir
from .peers import PeerCache
from .ratelimit import AttemptGate, BucketsByKey, FailureLimiter
from .recordings import RecordingStore
from .routes import audit as audit_routes
from .routes import auth, help_requests, join, recording, roles, sessions, signal, sla, surveys, teams, tickets, transfers, users
from .routes import inbound as inbound_routes
from .routes import reports as report_routes
from .routes import webhooks as webhook_routes
from .settings import Settings
from .spool import ChunkSignals, TransferSpool
from .support_sessions import Expired, expire_overdue
from .tickets import record_breaches
from .transfers import sweep_transfers
from .webhooks import deliver_webhooks

log = logging.getLogger(__name__)

TRAIL_SEAL_SECONDS = 1.0
INBOUND_FAILURE_WINDOW_SECONDS = 60


def build_state(settings: Settings) -> BrokerState:
    """Open the data directory, keys and database (migrated to the newest schema)."""
    prepare_data_dir(settings.data_dir)
    password_policy.configure(settings.password_min_length)
    keys = load_or_create_keys(
        settings.data_dir, settings.signing_key, settings.code_hash_key, settings.recording_master_key
    )
    database = settings.open_database()
    database.migrate()
    recordings = RecordingStore(settings.data_dir / "recordings", keys.recording_master_key)
    if removed := recordings.remove_leftovers(time.time()):
        log.info("removed %d temporary recording files left by an upload that never finished", removed)
    return BrokerState(
        settings=settings,
        database=database,
        keys=keys,
        code_failures=AttemptSlots(
            AttemptGate(FailureLimiter.create(
                settings.code_failures_per_source,
                settings.code_failures_global,
                settings.code_failure_window_seconds,
            )),
            settings.code_check_wait_seconds,
        ),
        hub=SignalHub(),
        spool=TransferSpool(settings.data_dir / "transfers", settings.transfer_memory_bytes),
        transfer_signals=ChunkSignals(),
        peers=PeerCache(),
        recordings=recordings,
        login_failures=FailureLimiter.create(
            settings.login_failures_per_source, None, settings.login_failure_window_seconds
        ),
        inbound_failures=FailureLimiter.create(
            settings.inbound_failures_per_source, None, INBOUND_FAILURE_WINDOW_SECONDS
        ),
        inbound_seen=SeenSignatures(settings.inbound_max_skew_seconds),
        help_requests=FailureLimiter.create(
            settings.requests_per_source, settings.requests_global, settings.request_window_seconds
        ),
        queue_signals=ChunkSignals(),
        peer_event_rates=BucketsByKey(settings.peer_events_per_second, settings.peer_event_burst),
        db_slots=DatabaseSlots(settings.database_budget),
    )



def _sweep_once(state: BrokerState, held: Iterable[str]) -> tuple[list[Expired], set[str], list[ExpiredRequest]]:
    """One unit of the expiry sweep: codes run out, transfers of sessions that are over, idle help requests."""
    with state.database.session() as db:
        idle = timedelta(seconds=state.settings.request_idle_seconds)
        return expire_overdue(db), sweep_transfers(db, held), expire_idle_requests(db, idle)

async def sweep_expired_sessions(state: BrokerState) -> None:
    """Mark sessions whose code ran out as expired, and tell a waiting technician.

    Also expires help requests whose host stopped polling (the queue moves up).

    Also stops transfers of sessions that are over and frees the spool of every
    transfer that ended (a completed transfer frees its own at once; this catches
    the rest, and whatever a crash left behind).
    """
    while True:
        await asyncio.sleep(state.settings.expiry_sweep_seconds)
        try:
            expired_sessions, finished, expired_requests = await run_in_threadpool(
                _sweep_once, state, state.spool.transfer_ids())
            if expired_requests:
                state.queue_signals.changed(QUEUE_CHANGED)
            for expired in expired_sessions:
                state.session_over(
                    expired.session_id,
                    SessionEnded(ended_by="broker", reason="the support code expired before a host joined"),
                )
            for transfer_id in finished:
                state.spool.remove(transfer_id)
                state.transfer_signals.changed(transfer_id)
        except Exception as exc:  # noqa: BLE001 - keep sweeping; the next round retries
            log_round_failure(log, "expiry sweep", exc)


async def watch_sla(state: BrokerState) -> None:
    """Flag tickets whose SLA timer ran out, and audit each breach once (webhooks follow the trail)."""
    while True:
        await asyncio.sleep(state.settings.sla_sweep_seconds)
        try:
            def _look() -> list[int]:
                with state.database.session() as db:
                    return record_breaches(db)

            await run_in_threadpool(_look)
        except Exception as exc:  # noqa: BLE001 - the next round retries
            log_round_failure(log, "SLA sweep", exc)


def send_webhooks(state: BrokerState) -> Coroutine[None, None, None]:
    """The webhook delivery worker (``broker.webhooks.deliver_webhooks``) with this broker's settings."""
    settings = state.settings
    return deliver_webhooks(
        state.database.session, state.keys.recording_master_key, poll=settings.webhook_poll_seconds,
        timeout=settings.webhook_timeout_seconds, base=settings.webhook_retry_base_seconds,
        max_attempts=settings.webhook_max_attempts,
    )


async def keep_trail(state: BrokerState) -> None:
    """Seal new audit events into their chains, and sign their heads, every second.

    A session that ends has its chain sealed and signed at once (``BrokerState.session_over``).
    """
    while True:
        await asyncio.sleep(TRAIL_SEAL_SECONDS)
        try:
            await run_in_threadpool(state.seal_trail)
        except Exception as exc:  # noqa: BLE001 - the next round retries; nothing is lost, only later
            log_round_failure(log, "sealing the audit trail", exc)


def watch_grants(state: BrokerState) -> Coroutine[None, None, None]:
    """The grant watcher (``broker.grant_watch``) over this broker's hub, database and keys."""
    watcher = GrantWatcher(state.grant_book, state.hub, state.database.session, state.keys,
                           state.settings.grant_ttl_seconds)
    return watcher.run()


def create_app(state: BrokerState) -> FastAPI:
    """The FastAPI application over an opened :class:`BrokerState`."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # As many worker threads as the database budget needs (broker/db_slots.py says why).
        anyio.to_thread.current_default_thread_limiter().total_tokens = state.db_slots.budget.threads
        tasks = [
            asyncio.create_task(sweep_expired_sessions(state), name="expiry-sweeper"),
            asyncio.create_task(keep_trail(state), name="audit-trail"),
            asyncio.create_task(send_webhooks(state), name="webhook-delivery"),
            asyncio.create_task(watch_sla(state), name="sla-watch"),
            asyncio.create_task(watch_grants(state), name="grant-watch"),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            # Nothing written before the shutdown stays unsealed or unsigned.
            await run_in_threadpool(state.seal_trail)
            state.database.dispose()

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
                   users, roles, teams, sla):
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
