"""What a running broker holds besides its database rows (:class:`BrokerState`), and how it is opened."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from pydantic import BaseModel
from redis import Redis as BlockingRedis
from redis.asyncio import Redis
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from broker.accounts import password_policy
from broker.audit.evidence import VerifiedRecordings
from broker.audit.playbacks import Playbacks
from broker.audit.recordings import RecordingStore
from broker.audit.trail import SEALER_LOCK, SealResult, seal_backlog
from broker.cluster.bus import BrokerBus
from broker.cluster.room_directory import RoomDirectory
from broker.cluster.rooms import ClusterRooms
from broker.cluster.wakeups import share_wakeups
from broker.host_downloads import HostDownloads
from broker.integrations.inbound import SeenSignatures, SignatureMemory
from broker.integrations.shared_seen import SharedSeenSignatures
from broker.keys import BrokerKeys, load_or_create_keys, prepare_data_dir
from broker.sessions.grant_watch import GrantBook
from broker.sessions.hub import LocalRooms, Rooms, SignalHub
from broker.sessions.peers import PeerCache
from broker.sessions.spool import ChunkSignals, TransferSpool
from broker.settings import Settings
from broker.storage.db import Database
from broker.storage.db_slots import DatabaseSlots, Lane
from broker.throttling.attempt_slots import AttemptSlots
from broker.throttling.ratelimit import AttemptGate, FailureCounts, FailureLimiter
from broker.throttling.shared_buckets import EventRates, LocalEventRates, SharedEventRates
from broker.throttling.shared_failures import SharedFailureLimiter, SharedFailures

log = logging.getLogger(__name__)

T = TypeVar("T")

INBOUND_FAILURE_WINDOW_SECONDS = 60

FORGET_PEERS = "peers.forget"
"""Bus message (``broker.cluster.bus``): access was taken away on another broker; forget every cached peer."""

WAKE_TRANSFERS = "wake.transfers"
"""Bus message: a transfer changed or a chunk of it arrived on another broker (``broker.cluster.wakeups``)."""

WAKE_QUEUE = "wake.queue"
"""Bus message: the help-request queue changed on another broker."""


@dataclass
class BrokerState:
    """Everything a running broker holds besides its database rows."""

    settings: Settings
    database: Database
    keys: BrokerKeys
    code_failures: AttemptSlots
    """Support codes being checked and failed, per source address and overall (see :class:`~broker.throttling.ratelimit.AttemptGate`)."""
    rooms: Rooms
    """Who is in each session's room: this broker's hub, and Redis when brokers share one (``broker.cluster.rooms``)."""
    spool: TransferSpool
    transfer_signals: ChunkSignals
    peers: PeerCache
    recordings: RecordingStore
    login_failures: FailureCounts
    """Failed sign-ins per source address (no global limit: that would lock everyone out)."""
    inbound_failures: FailureCounts
    """Refused inbound webhook requests per source address (unknown system, bad signature)."""
    inbound_seen: SignatureMemory
    """Inbound webhook signatures accepted within the timestamp window: a copy sent again is refused."""
    help_requests: FailureCounts
    """New help requests per source address and overall (every request counts, none is forgiven)."""
    queue_signals: ChunkSignals
    """Wakes the hosts' long polls when the help-request queue changes (key :data:`broker.sessions.help_requests.QUEUE_CHANGED`)."""
    peer_event_rates: EventRates
    """Events each peer of each session reports, against ``DESKHAND_PEER_EVENTS_PER_SECOND`` and its burst."""

    db_slots: DatabaseSlots
    """Slots for database work, the queue for them, and ``503 broker_busy`` beyond it."""

    redis: Redis | None = None
    """The Redis every broker shares (``DESKHAND_REDIS_URL``), or None: this broker counts alone."""
    redis_blocking: BlockingRedis | None = None
    """The same Redis for worker threads (the shared failure limits of sign-ins, help requests, inbound webhooks)."""
    bus: BrokerBus | None = None
    """Word between the brokers sharing that Redis (``broker.cluster.bus``), or None."""

    host_downloads: HostDownloads = field(default_factory=HostDownloads)
    download_rates: EventRates = field(default_factory=lambda: LocalEventRates(20 / 3600, 20))
    """Whole host builds per source address (``DESKHAND_HOST_DOWNLOADS_PER_HOUR``): 70 MB each, public."""
    """The single-file host builds offered for download (``DESKHAND_HOST_DOWNLOADS``), none by default."""
    verified_recordings: VerifiedRecordings = field(default_factory=VerifiedRecordings)
    """Recording segments of sessions verified lately, for players asking range after range."""
    playbacks: Playbacks = field(default_factory=Playbacks)
    """Playbacks started (and audited) by a POST, whose ids the players' byte-range GETs present."""
    grant_book: GrantBook = field(default_factory=GrantBook)
    """The grant each connected session holds, for the grant watcher (``broker.sessions.grant_watch``)."""
    trail_refusals: set[tuple[str, str]] = field(default_factory=set)
    """(chain, reason) pairs the sealer already refused and put on record, so each is recorded once."""

    @property
    def hub(self) -> SignalHub:
        """The peers connected to this broker."""
        return self.rooms.hub

    def session_over(self, session_id: str, farewell: BaseModel) -> None:
        """A session ended: tell and disconnect its peers (wherever connected), forget their cached
        identities, and seal and sign its audit chain at once (in a worker thread)."""
        self.rooms.close(session_id, farewell)
        self.peers.forget()
        loop = asyncio.get_running_loop()
        task = loop.run_in_executor(None, self.seal_trail)

        def report(done: asyncio.Future[SealResult]) -> None:
            failure = None if done.cancelled() else done.exception()
            if failure is not None:
                log.error("sealing session %s failed: %s", session_id, failure)

        task.add_done_callback(report)

    def access_withdrawn(self, db: Session) -> None:
        """Commit ``db``, which took access away (revoked tokens, disabled or changed an account),
        then forget every cached peer, so that the very next chunk request looks its token up again.

        In this order: a lookup that read the database before the commit cannot have its
        entry kept (see :class:`~broker.sessions.peers.PeerCache`). The other brokers sharing
        a Redis are told to forget theirs too (:data:`FORGET_PEERS`).
        """
        db.commit()
        self.peers.forget()
        if self.bus is not None:
            self.bus.tell(FORGET_PEERS)

    def seal_trail(self) -> SealResult:
        """Seal pending audit events and sign the heads of the chains they moved (in bounded batches),
        waiting for any other sealer, of this broker or another on the database."""
        with self.database.locks.held(SEALER_LOCK):
            return self._seal()

    async def unit(
        self, work: Callable[[Session], T], *, lane: Lane = Lane.in_turn, again_on: tuple[type[Exception], ...] = (),
    ) -> T:
        """``work(db)`` as one unit of work (:meth:`~broker.storage.db.Database.session`: committed when it
        returns, rolled back when it raises) in a worker thread, within a database slot of ``lane``.

        How an ``async`` route reaches the database; a plain ``def`` route takes ``broker.deps.DB``.
        ``again_on``: when the unit of work raises one of these (a race another request won, whose
        row is found now), ``work`` runs once more in a new one, in the same slot and thread.
        """
        async with self.db_slots.slot_for(lane):
            return await run_in_threadpool(self._in_unit, work, again_on)

    def _in_unit(self, work: Callable[[Session], T], again_on: tuple[type[Exception], ...]) -> T:
        try:
            with self.database.session() as db:
                return work(db)
        except again_on:
            with self.database.session() as db:
                return work(db)

    @contextlib.contextmanager
    def sealed_trail(self) -> Iterator[Session]:
        """A database session over a trail at rest: everything pending sealed and signed, and every
        broker's sealer held off until the block ends. Every sealed event's signed head is then in view,
        so the broker verifies strictly (no grace); keep the block to reading what is verified."""
        with self.database.locks.held(SEALER_LOCK):
            self._seal()
            with self.database.session() as db:
                yield db

    def _seal(self) -> SealResult:
        return seal_backlog(self.database.session, self.keys.signing_key, grace=self.settings.audit_grace,
                            refused_before=self.trail_refusals)


def build_state(settings: Settings) -> BrokerState:
    """Open the data directory, keys and database (migrated to the newest schema)."""
    prepare_data_dir(settings.data_dir)
    password_policy.configure(settings.password_min_length)
    keys = load_or_create_keys(
        settings.data_dir, settings.signing_key, settings.code_hash_key, settings.recording_master_key
    )
    database = settings.open_database()
    database.migrate()
    redis_url = None if settings.redis_url is None else settings.redis_url.get_secret_value()
    shared = None if redis_url is None else Redis.from_url(redis_url)
    blocking = None if redis_url is None else BlockingRedis.from_url(redis_url)

    def failure_counts(name: str, per_source: int, overall: int | None, window: float) -> FailureCounts:
        """One door's counts: every broker's when they share a Redis, else this broker's own."""
        if blocking is None:
            return FailureLimiter.create(per_source, overall, window)
        return SharedFailureLimiter(blocking, name, per_source=per_source, overall=overall, window_seconds=window)

    blobs = settings.open_blobs()
    blobs.check()
    recordings = RecordingStore(settings.data_dir, keys.recording_master_key, blobs)
    if removed := recordings.remove_leftovers(time.time()):
        log.info("removed %d temporary recording files left by an upload that never finished", removed)
    bus = None if shared is None or blocking is None else BrokerBus(shared, blocking, keys.bus_key)
    rooms: Rooms = LocalRooms() if shared is None or bus is None else ClusterRooms(bus, RoomDirectory(shared, bus.broker_id))
    state = BrokerState(
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
            shared=None if shared is None else SharedFailures(
                shared, "codes", per_source=settings.code_failures_per_source,
                overall=settings.code_failures_global, window_seconds=settings.code_failure_window_seconds,
            ),
        ),
        rooms=rooms,
        spool=TransferSpool(blobs, settings.transfer_memory_bytes, seal_key=keys.chunk_key if blobs.shared else None),
        transfer_signals=ChunkSignals(),
        peers=PeerCache(),
        recordings=recordings,
        login_failures=failure_counts(
            "sign-ins", settings.login_failures_per_source, None, settings.login_failure_window_seconds
        ),
        inbound_failures=failure_counts(
            "inbound", settings.inbound_failures_per_source, None, INBOUND_FAILURE_WINDOW_SECONDS
        ),
        inbound_seen=SeenSignatures(settings.inbound_max_skew_seconds) if blocking is None
        else SharedSeenSignatures(blocking, settings.inbound_max_skew_seconds),
        help_requests=failure_counts(
            "help-requests", settings.requests_per_source, settings.requests_global, settings.request_window_seconds
        ),
        queue_signals=ChunkSignals(),
        peer_event_rates=LocalEventRates(settings.peer_events_per_second, settings.peer_event_burst) if shared is None
        else SharedEventRates(shared, "peer-events", settings.peer_events_per_second, settings.peer_event_burst),
        db_slots=DatabaseSlots(settings.database_budget),
        redis=shared,
        redis_blocking=blocking,
        bus=bus,
        host_downloads=HostDownloads(settings.host_downloads),
        download_rates=LocalEventRates(settings.host_downloads_per_hour / 3600, settings.host_downloads_per_hour)
        if shared is None else SharedEventRates(
            shared, "host-downloads", settings.host_downloads_per_hour / 3600, settings.host_downloads_per_hour),
    )
    if bus is not None:
        bus.on(FORGET_PEERS, lambda _told: state.peers.forget())
        share_wakeups(bus, state.transfer_signals, WAKE_TRANSFERS)
        share_wakeups(bus, state.queue_signals, WAKE_QUEUE)
    return state
