"""Webhooks to and from external helpdesks: the rules the admin API and ``deskhand-broker`` share,
and the worker that sends what the outbox (:mod:`broker.integrations.outbox`) queued.

Endpoint and inbound-source secrets are stored wrapped by the broker's master
key (``broker.keys.wrap``); a generated secret is shown once, when it is made.
Every change is audited with who made it; no secret ever goes into the trail.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx
from sqlalchemy import Select, delete, func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from broker.audit import events as audit
from broker.clock import utcnow
from broker.errors import log_round_failure
from broker.integrations.outbox import (
    Attempt,
    Outgoing,
    book_attempt,
    due_deliveries,
    endpoint_secret_context,
    enqueue,
    prune_delivered,
)
from broker.keys import wrap
from broker.refusals import Conflict, not_found
from broker.storage.models import InboundSource, WebhookDelivery, WebhookEndpoint
from protocol.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    TEST_EVENT,
    DeliveryOut,
    DeliveryState,
    InboundSourceCreate,
    InboundSourceOut,
    WebhookCreate,
    WebhookOut,
    WebhookUpdate,
    generate_secret,
    signed_headers,
)

log = logging.getLogger(__name__)

BATCH = 50
"""Deliveries sent at once by one round of the worker."""

NOT_SENT = "not sent: an earlier delivery to this endpoint failed in the same round"

PRUNE_SECONDS = 3600.0
"""How often delivered deliveries past ``broker.integrations.outbox.DELIVERED_KEPT`` are forgotten."""

USER_AGENT = "Deskhand-Webhooks/1"


def _secret_or_generated(given: str | None) -> tuple[str, str | None]:
    """The secret to store, and the same again when it was generated (to show once), else None."""
    if given is not None:
        return given, None
    generated = generate_secret()
    return generated, generated


Row = TypeVar("Row", WebhookEndpoint, InboundSource)


@dataclass(frozen=True)
class SecretHolders(Generic[Row]):
    """The rules both kinds of integration share: rows known by a unique name, holding a secret
    wrapped by the master key, added, changed and removed with an audit event each.

    Webhook endpoints (:data:`ENDPOINTS`) and inbound sources (:data:`INBOUND_SOURCES`) differ only
    in the fields below; what is particular to one (an endpoint's deliveries) stays in its functions.
    """

    model: type[Row]
    name_field: str
    """The column that names a row: its key in the API, the CLI and the audit events."""
    what: str
    """How refusals name a row: "webhook", "inbound source"."""
    a_what: str
    """The same with its article: "a webhook", "an inbound source"."""
    exists_error: str
    """The error code when the name is taken."""
    audit_key: str
    """The key of the row's name in its audit events: "webhook", "system"."""
    audit_prefix: str
    """Events are ``<audit_prefix>.created``, ``.changed`` and ``.deleted``."""
    fields: tuple[str, ...]
    """The fields a row is created with besides its name (in its created event, in this order)
    and the ones a change may set."""
    secret_context: Callable[[str], str]
    """What the wrapped secret of the row with this name is bound to (``broker.keys.wrap``)."""

    def _named(self, name: str) -> Select[Row]:
        return select(self.model).where(getattr(self.model, self.name_field) == name)

    def find(self, db: Session, name: str) -> Row:
        row = db.scalars(self._named(name)).one_or_none()
        if row is None:
            raise not_found(f"{self.what} {name!r}")
        return row

    def listed(self, db: Session) -> list[Row]:
        """All rows, by name."""
        return list(db.scalars(select(self.model).order_by(getattr(self.model, self.name_field))))

    def create(
        self, db: Session, name: str, values: dict[str, Any], given_secret: str | None, master_key: bytes,
        *, actor: str, source: str | None,
    ) -> tuple[Row, str | None]:
        """Add the row ``name`` with ``values`` (:attr:`fields`); returns it and the generated secret
        (None when ``given_secret`` was given). Refused when the name is taken."""
        if db.scalars(self._named(name)).first() is not None:
            raise Conflict(self.exists_error, f"{self.a_what} named {name!r} exists already")
        secret, generated = _secret_or_generated(given_secret)
        row = self.model(
            **{self.name_field: name}, **{field: values[field] for field in self.fields}, created_at=utcnow(),
            secret_wrapped=wrap(master_key, secret.encode(), self.secret_context(name)),
        )
        db.add(row)
        db.flush()
        audit.record_data(db, f"{self.audit_prefix}.created", {
            self.audit_key: name,
            **{field: getattr(row, field) for field in self.fields},
        }, actor=actor, source=source)
        return row, generated

    def change(self, db: Session, row: Row, values: dict[str, Any], *, actor: str, source: str | None) -> Row:
        """Set each of ``values`` that is given (not None) and differs; one audit event names what changed."""
        changes: dict[str, Any] = {}
        for field, value in values.items():
            if value is not None and value != getattr(row, field):
                setattr(row, field, value)
                changes[field] = value
        if changes:
            audit.record_data(db, f"{self.audit_prefix}.changed",
                              {self.audit_key: getattr(row, self.name_field), **changes}, actor=actor, source=source)
        return row

    def remove(self, db: Session, row: Row, *, actor: str, source: str | None) -> None:
        db.delete(row)
        audit.record_data(db, f"{self.audit_prefix}.deleted", {self.audit_key: getattr(row, self.name_field)},
                          actor=actor, source=source)


def inbound_secret_context(system: str) -> str:
    """What an inbound source's wrapped secret is bound to (see ``broker.keys.wrap``)."""
    return f"inbound:{system}"


ENDPOINTS = SecretHolders(
    WebhookEndpoint, name_field="name", what="webhook", a_what="a webhook", exists_error="webhook_exists",
    audit_key="webhook", audit_prefix="webhook", fields=("url", "events", "enabled"),
    secret_context=endpoint_secret_context,
)
INBOUND_SOURCES = SecretHolders(
    InboundSource, name_field="system", what="inbound source", a_what="an inbound source",
    exists_error="inbound_source_exists", audit_key="system", audit_prefix="inbound_source", fields=("enabled",),
    secret_context=inbound_secret_context,
)


# --- endpoints ----------------------------------------------------------------------------


def webhook_out(db: Session, endpoint: WebhookEndpoint) -> WebhookOut:
    counts = dict(db.execute(
        select(WebhookDelivery.state, func.count()).where(WebhookDelivery.endpoint_id == endpoint.id)
        .group_by(WebhookDelivery.state)
    ).all())
    return WebhookOut(
        id=endpoint.id, name=endpoint.name, url=endpoint.url, events=list(endpoint.events or []),
        enabled=endpoint.enabled, created_at=endpoint.created_at,
        pending=counts.get(DeliveryState.pending.value, 0), dead=counts.get(DeliveryState.dead.value, 0),
    )


def find_webhook(db: Session, name: str) -> WebhookEndpoint:
    return ENDPOINTS.find(db, name)


def list_webhooks(db: Session) -> list[WebhookEndpoint]:
    return ENDPOINTS.listed(db)


def create_webhook(
    db: Session, body: WebhookCreate, master_key: bytes, *, actor: str, source: str | None
) -> tuple[WebhookEndpoint, str | None]:
    """Add an endpoint; returns it and the generated secret (None when the body gave one)."""
    values = {"url": body.url, "events": body.events, "enabled": body.enabled}
    return ENDPOINTS.create(db, body.name, values, body.secret, master_key, actor=actor, source=source)


def update_webhook(
    db: Session, endpoint: WebhookEndpoint, body: WebhookUpdate, *, actor: str, source: str | None
) -> WebhookEndpoint:
    values = {"url": body.url, "events": body.events, "enabled": body.enabled}
    return ENDPOINTS.change(db, endpoint, values, actor=actor, source=source)


def delete_webhook(db: Session, endpoint: WebhookEndpoint, *, actor: str, source: str | None) -> None:
    """Remove an endpoint and every delivery queued for it."""
    db.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
               .execution_options(synchronize_session=False))
    ENDPOINTS.remove(db, endpoint, actor=actor, source=source)


def send_test(db: Session, endpoint: WebhookEndpoint, *, actor: str, source: str | None) -> WebhookDelivery:
    """Queue a ``webhook.test`` event for this endpoint alone (enabled or not, it is sent once enabled)."""
    now = utcnow()
    delivery = enqueue(db, endpoint, TEST_EVENT, {
        "event": TEST_EVENT, "at": now.isoformat().replace("+00:00", "Z"), "actor": actor,
        "ticket": None, "session_id": None, "data": {"webhook": endpoint.name},
    }, now)
    audit.record(db, "webhook.tested", actor=actor, source=source, webhook=endpoint.name, delivery=delivery.id)
    return delivery


# --- deliveries ---------------------------------------------------------------------------


def delivery_out(delivery: WebhookDelivery, webhook: str) -> DeliveryOut:
    return DeliveryOut(
        id=delivery.id, webhook=webhook, event=delivery.event, state=DeliveryState(delivery.state),
        attempts=delivery.attempts, next_attempt_at=delivery.next_attempt_at, last_status=delivery.last_status,
        last_error=delivery.last_error, created_at=delivery.created_at, delivered_at=delivery.delivered_at,
        payload=delivery.payload,
    )


def list_deliveries(
    db: Session, *, state: DeliveryState | None, webhook: str | None, limit: int, offset: int = 0
) -> list[DeliveryOut]:
    """Newest first."""
    query = (
        select(WebhookDelivery, WebhookEndpoint.name)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id)
        .limit(limit).offset(offset)
    )
    if state is not None:
        query = query.where(WebhookDelivery.state == state.value)
    if webhook is not None:
        query = query.where(WebhookEndpoint.id == find_webhook(db, webhook).id)
    return [delivery_out(d, name) for d, name in db.execute(query).all()]


def replay_delivery(db: Session, delivery_id: str, *, actor: str, source: str | None) -> DeliveryOut:
    """Send a dead delivery again, from its first attempt (same id and payload, so receivers can dedupe)."""
    row = db.execute(
        select(WebhookDelivery, WebhookEndpoint.name)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(WebhookDelivery.id == delivery_id)
    ).one_or_none()
    if row is None:
        raise not_found(f"delivery {delivery_id!r}")
    delivery, webhook = row
    if delivery.state != DeliveryState.dead.value:
        raise Conflict("not_dead", f"delivery {delivery_id} is {delivery.state}; only a dead delivery can be replayed")
    delivery.state = DeliveryState.pending.value
    delivery.attempts = 0
    delivery.next_attempt_at = utcnow()
    audit.record(db, "webhook.replayed", actor=actor, source=source, webhook=webhook, delivery=delivery.id,
                 event=delivery.event)
    return delivery_out(delivery, webhook)


# --- inbound sources ----------------------------------------------------------------------


def inbound_source_out(row: InboundSource) -> InboundSourceOut:
    return InboundSourceOut(id=row.id, system=row.system, enabled=row.enabled, created_at=row.created_at)


def find_inbound_source(db: Session, system: str) -> InboundSource:
    return INBOUND_SOURCES.find(db, system)


def list_inbound_sources(db: Session) -> list[InboundSource]:
    return INBOUND_SOURCES.listed(db)


def create_inbound_source(
    db: Session, body: InboundSourceCreate, master_key: bytes, *, actor: str, source: str | None
) -> tuple[InboundSource, str | None]:
    """Allow an external system to send tickets; returns it and the generated secret (or None)."""
    return INBOUND_SOURCES.create(db, body.system, {"enabled": body.enabled}, body.secret, master_key,
                                  actor=actor, source=source)


def set_inbound_source_enabled(
    db: Session, row: InboundSource, enabled: bool, *, actor: str, source: str | None
) -> InboundSource:
    return INBOUND_SOURCES.change(db, row, {"enabled": enabled}, actor=actor, source=source)


def delete_inbound_source(db: Session, row: InboundSource, *, actor: str, source: str | None) -> None:
    """Stop accepting a system's requests; its tickets keep their external reference."""
    INBOUND_SOURCES.remove(db, row, actor=actor, source=source)


# --- the delivery worker ------------------------------------------------------------------


async def post_delivery(client: httpx.AsyncClient, outgoing: Outgoing, now: int) -> Attempt:
    """POST one delivery, signed; never raises (a failure is an :class:`Attempt` with an error)."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: outgoing.event,
        DELIVERY_HEADER: outgoing.id,
        **signed_headers(outgoing.secret, now, outgoing.body),
    }
    try:
        response = await client.post(outgoing.url, content=outgoing.body, headers=headers)
    except httpx.TimeoutException:
        return Attempt(outgoing.id, None, "timed out")
    except httpx.HTTPError as exc:
        # The exception's class and text, never the request (the signature is in its headers).
        return Attempt(outgoing.id, None, f"{type(exc).__name__}: {exc}")
    if 300 <= response.status_code < 400:
        return Attempt(outgoing.id, response.status_code, f"HTTP {response.status_code}: redirects are not followed")
    return Attempt(outgoing.id, response.status_code, None if response.is_success else f"HTTP {response.status_code}")


async def deliver_webhooks(
    open_db: Callable[[], Any], master_key: bytes, *, turn: Callable[[], AbstractAsyncContextManager[bool]],
    poll: float, timeout: float, base: float, max_attempts: int,
) -> None:
    """Forever: send the due deliveries of enabled endpoints, book each attempt, sleep ``poll`` seconds.

    ``turn()`` opens a round: it yields whether this broker has the round's turn and holds it
    to the round's end (``broker.storage.broker_locks.BrokerLocks.turn``). With several brokers on
    one database one round runs at a time, each booking its attempts before the next reads
    what is due, so no delivery is sent twice.

    One attempt per delivery per round: endpoints side by side, each endpoint's
    deliveries in the order their events happened (a slow endpoint delays the next
    round by up to ``timeout`` per delivery of its own). Redirects are not followed: the
    administrator's URL is the only place events go.
    """
    pruned_at: float | None = None  # first round prunes too
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
        while True:
            await asyncio.sleep(poll)
            try:
                async with turn() as mine:
                    if not mine:
                        continue
                    await deliver_due(client, open_db, master_key, base=base, max_attempts=max_attempts)
                    if pruned_at is None or time.monotonic() - pruned_at >= PRUNE_SECONDS:
                        await run_in_threadpool(_prune, open_db)
                        pruned_at = time.monotonic()
            except Exception as exc:  # noqa: BLE001 - keep delivering; the next round retries
                log_round_failure(log, "webhook delivery round", exc)


def _prune(open_db: Callable[[], Any]) -> None:
    with open_db() as db:
        prune_delivered(db, utcnow())


async def deliver_due(
    client: httpx.AsyncClient, open_db: Callable[[], Any], master_key: bytes, *, base: float, max_attempts: int
) -> int:
    """One round of the worker; returns how many deliveries were attempted."""

    def _due() -> tuple[list[Outgoing], list[Attempt]]:
        with open_db() as db:
            return due_deliveries(db, master_key, utcnow(), BATCH)

    due, unsendable = await run_in_threadpool(_due)
    if not due and not unsendable:
        return 0
    by_endpoint: dict[int, list[Outgoing]] = {}
    for outgoing in due:
        by_endpoint.setdefault(outgoing.endpoint_id, []).append(outgoing)

    async def _send_in_order(queue: list[Outgoing]) -> list[tuple[Attempt, float]]:
        # One endpoint's events go one after the other, oldest first, so a receiver that
        # answers at once sees them in the order they happened; endpoints run side by side.
        # After a failure the rest wait out the backoff too: a down endpoint costs one
        # timeout per round, not one per queued event. One jitter draw per endpoint: its
        # events come due together again and are retried in their order, while endpoints
        # that failed together spread out.
        rand = random.random()
        done: list[tuple[Attempt, float]] = []
        for outgoing in queue:
            if done and not done[-1][0].ok:
                done.append((Attempt(outgoing.id, None, NOT_SENT), rand))
                continue
            done.append((await post_delivery(client, outgoing, int(time.time())), rand))
        return done

    sent = await asyncio.gather(*(_send_in_order(q) for q in by_endpoint.values()))
    attempts = [*((a, random.random()) for a in unsendable), *(a for batch in sent for a in batch)]

    def _book() -> None:
        with open_db() as db:
            now = utcnow()
            for attempt, rand in attempts:
                dead = book_attempt(db, attempt, now, base=base, max_attempts=max_attempts, rand=rand)
                if dead is not None:
                    audit.record(db, "webhook.dead", actor=audit.BROKER, delivery=dead.id, event=dead.event,
                                 attempts=dead.attempts, last_error=dead.last_error)

    await run_in_threadpool(_book)
    return len(attempts)
