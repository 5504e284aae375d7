"""The broker's background work: the loops a running broker keeps going beside its requests.

Each loop sleeps its interval, does one round in a worker thread or on the event loop, and
logs a failed round once (``broker.errors.log_round_failure``) and tries again next time:
the expiry sweep (codes run out, transfers of sessions that are over, idle help requests),
the audit trail's sealer, webhook delivery, the SLA watch, the grant watcher, the watch
for sessions another broker ended and, with a shared Redis, the ear on the other brokers
(``broker.cluster.bus``).
:func:`running_workers` starts them all for the app's life.

Every broker on a database runs every loop. The ones that must not run twice at once take
a broker lock (``broker.storage.broker_locks``) for each round: the sealer waits for its
lock (a session's end seals at once, wherever it ended); the SLA watch and webhook delivery
skip a round another broker is running (:data:`SLA_LOCK`, :data:`WEBHOOK_LOCK`), and
whichever broker is left runs the next one when a broker dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from datetime import timedelta

from starlette.concurrency import run_in_threadpool

from broker.cluster.rooms import ClusterRooms
from broker.errors import log_round_failure
from broker.helpdesk.tickets import record_breaches
from broker.integrations.webhooks import deliver_webhooks
from broker.sessions.ended_elsewhere import ROOM_WATCH_SECONDS, EndedSession, ended_among
from broker.sessions.grant_watch import GrantWatcher
from broker.sessions.help_requests import QUEUE_CHANGED, ExpiredRequest, expire_idle_requests
from broker.sessions.support_sessions import Expired, expire_overdue
from broker.sessions.transfers import sweep_transfers
from broker.state import BrokerState
from protocol.signalling import SessionEnded

log = logging.getLogger(__name__)

TRAIL_SEAL_SECONDS = 1.0

SLA_LOCK = "sla-watch"
"""The broker lock of a round of the SLA watch: a breach is flagged, and audited, by one broker."""

WEBHOOK_LOCK = "webhook-delivery"
"""The broker lock of a round of webhook delivery: a delivery is sent by one broker, once a round."""


@contextlib.asynccontextmanager
async def running_workers(state: BrokerState) -> AsyncIterator[None]:
    """Every background loop, started on entry; cancelled and awaited on exit."""
    tasks = [
        asyncio.create_task(sweep_expired_sessions(state), name="expiry-sweeper"),
        asyncio.create_task(keep_trail(state), name="audit-trail"),
        asyncio.create_task(send_webhooks(state), name="webhook-delivery"),
        asyncio.create_task(watch_sla(state), name="sla-watch"),
        asyncio.create_task(watch_grants(state), name="grant-watch"),
        asyncio.create_task(close_rooms_ended_elsewhere(state), name="ended-elsewhere"),
    ]
    if state.bus is not None:
        log.info("sharing Redis with the other brokers as broker %s", state.bus.broker_id)
        tasks.append(asyncio.create_task(state.bus.listen(), name="broker-bus"))
        tasks.append(asyncio.create_task(state.bus.publish_queued(), name="broker-bus-send"))
    if isinstance(state.rooms, ClusterRooms):
        tasks.append(asyncio.create_task(state.rooms.keep_presence(), name="room-presence"))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _sweep_once(state: BrokerState) -> tuple[list[Expired], set[str], list[ExpiredRequest]]:
    """One unit of the expiry sweep: codes run out, transfers of sessions that are over, idle help requests."""
    held = state.spool.transfer_ids()  # in this thread: with an object store, a listing of the bucket
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
            expired_sessions, finished, expired_requests = await run_in_threadpool(_sweep_once, state)
            if expired_requests:
                state.queue_signals.changed(QUEUE_CHANGED)
            for expired in expired_sessions:
                state.session_over(
                    expired.session_id,
                    SessionEnded(ended_by="broker", reason="the support code expired before a host joined"),
                )
            for transfer_id in finished:
                await run_in_threadpool(state.spool.remove, transfer_id)
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

            async with state.database.locks.turn(SLA_LOCK) as mine:
                if mine:
                    await run_in_threadpool(_look)
        except Exception as exc:  # noqa: BLE001 - the next round retries
            log_round_failure(log, "SLA sweep", exc)


def send_webhooks(state: BrokerState) -> Coroutine[None, None, None]:
    """The webhook delivery worker (``broker.integrations.webhooks.deliver_webhooks``) with this broker's settings."""
    settings = state.settings
    return deliver_webhooks(
        state.database.session, state.keys.recording_master_key, turn=lambda: state.database.locks.turn(WEBHOOK_LOCK),
        poll=settings.webhook_poll_seconds,
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
    """The grant watcher (``broker.sessions.grant_watch``) over this broker's hub, database and keys."""
    watcher = GrantWatcher(state.grant_book, state.hub, state.database.session, state.keys,
                           state.settings.grant_ttl_seconds, state.settings.ice_config, state.settings.turn)
    return watcher.run()


def _ended_among(state: BrokerState, session_ids: list[str]) -> list[EndedSession]:
    with state.database.session() as db:
        return ended_among(db, session_ids)


async def close_rooms_ended_elsewhere(state: BrokerState) -> None:
    """Tell and close the peers here of sessions another broker ended (``broker.sessions.ended_elsewhere``)."""
    while True:
        await asyncio.sleep(ROOM_WATCH_SECONDS)
        held = state.hub.session_ids()
        if not held:
            continue
        try:
            ended_here = await run_in_threadpool(_ended_among, state, held)
            for ended in ended_here:
                state.hub.close_room(ended.session_id, ended.farewell())
            if ended_here:
                state.peers.forget()  # once for the round: their cached identities must go
        except Exception as exc:  # noqa: BLE001 - the next round retries
            log_round_failure(log, "looking for sessions ended elsewhere", exc)
