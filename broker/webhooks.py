"""Webhooks to and from external helpdesks: the rules the admin API and ``deskhand-broker`` share,
and the worker that sends what the outbox (:mod:`broker.outbox`) queued.

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
from typing import Any

import httpx
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

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

from . import audit
from .clock import utcnow
from .errors import log_round_failure
from .keys import wrap
from .models import InboundSource, WebhookDelivery, WebhookEndpoint
from .outbox import (
    Attempt,
    Outgoing,
    book_attempt,
    due_deliveries,
    endpoint_secret_context,
    enqueue,
    prune_delivered,
)
from .refusals import Conflict, not_found

log = logging.getLogger(__name__)

BATCH = 50
"""Deliveries sent at once by one round of the worker."""

NOT_SENT = "not sent: an earlier delivery to this endpoint failed in the same round"

PRUNE_SECONDS = 3600.0
"""How often delivered deliveries past ``broker.outbox.DELIVERED_KEPT`` are forgotten."""

USER_AGENT = "Deskhand-Webhooks/1"


def _secret_or_generated(given: str | None) -> tuple[str, str | None]:
    """The secret to store, and the same again when it was generated (to show once), else None."""
    if given is not None:
        return given, None
    generated = generate_secret()
    return generated, generated


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
    endpoint = db.scalars(select(WebhookEndpoint).where(WebhookEndpoint.name == name)).one_or_none()
    if endpoint is None:
        raise not_found(f"webhook {name!r}")
    return endpoint


def list_webhooks(db: Session) -> list[WebhookEndpoint]:
    return list(db.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.name)))


def create_webhook(
    db: Session, body: WebhookCreate, master_key: bytes, *, actor: str, source: str | None
) -> tuple[WebhookEndpoint, str | None]:
    """Add an endpoint; returns it and the generated secret (None when the body gave one)."""
    if db.scalars(select(WebhookEndpoint).where(WebhookEndpoint.name == body.name)).first() is not None:
        raise Conflict("webhook_exists", f"a webhook named {body.name!r} exists already")
    secret, generated = _secret_or_generated(body.secret)
    endpoint = WebhookEndpoint(
        name=body.name, url=body.url, events=body.events, enabled=body.enabled, created_at=utcnow(),
        secret_wrapped=wrap(master_key, secret.encode(), endpoint_secret_context(body.name)),
    )
    db.add(endpoint)
    db.flush()
    audit.record(db, "webhook.created", actor=actor, source=source, webhook=endpoint.name, url=endpoint.url,
                 events=endpoint.events, enabled=endpoint.enabled)
    return endpoint, generated


def update_webhook(
    db: Session, endpoint: WebhookEndpoint, body: WebhookUpdate, *, actor: str, source: str | None
) -> WebhookEndpoint:
    changes: dict[str, Any] = {}
    for field in ("url", "events", "enabled"):
        value = getattr(body, field)
        if value is not None and value != getattr(endpoint, field):
            setattr(endpoint, field, value)
            changes[field] = value
    if changes:
        audit.record_data(db, "webhook.changed", {"webhook": endpoint.name, **changes}, actor=actor, source=source)
    return endpoint


def delete_webhook(db: Session, endpoint: WebhookEndpoint, *, actor: str, source: str | None) -> None:
    """Remove an endpoint and every delivery queued for it."""
    db.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
               .execution_options(synchronize_session=False))
    db.delete(endpoint)
    audit.record(db, "webhook.deleted", actor=actor, source=source, webhook=endpoint.name)


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


def inbound_secret_context(system: str) -> str:
    """What an inbound source's wrapped secret is bound to (see ``broker.keys.wrap``)."""
    return f"inbound:{system}"


def inbound_source_out(row: InboundSource) -> InboundSourceOut:
    return InboundSourceOut(id=row.id, system=row.system, enabled=row.enabled, created_at=row.created_at)


def find_inbound_source(db: Session, system: str) -> InboundSource:
    row = db.scalars(select(InboundSource).where(InboundSource.system == system)).one_or_none()
    if row is None:
        raise not_found(f"inbound source {system!r}")
    return row


def list_inbound_sources(db: Session) -> list[InboundSource]:
    return list(db.scalars(select(InboundSource).order_by(InboundSource.system)))


def create_inbound_source(
    db: Session, body: InboundSourceCreate, master_key: bytes, *, actor: str, source: str | None
) -> tuple[InboundSource, str | None]:
    """Allow an external system to send tickets; returns it and the generated secret (or None)."""
    if db.scalars(select(InboundSource).where(InboundSource.system == body.system)).first() is not None:
        raise Conflict("inbound_source_exists", f"an inbound source named {body.system!r} exists already")
    secret, generated = _secret_or_generated(body.secret)
    row = InboundSource(
        system=body.system, enabled=body.enabled, created_at=utcnow(),
        secret_wrapped=wrap(master_key, secret.encode(), inbound_secret_context(body.system)),
    )
    db.add(row)
    db.flush()
    audit.record(db, "inbound_source.created", actor=actor, source=source, system=row.system, enabled=row.enabled)
    return row, generated


def set_inbound_source_enabled(
    db: Session, row: InboundSource, enabled: bool, *, actor: str, source: str | None
) -> InboundSource:
    if row.enabled != enabled:
        row.enabled = enabled
        audit.record(db, "inbound_source.changed", actor=actor, source=source, system=row.system, enabled=enabled)
    return row


def delete_inbound_source(db: Session, row: InboundSource, *, actor: str, source: str | None) -> None:
    """Stop accepting a system's requests; its tickets keep their external reference."""
    db.delete(row)
    audit.record(db, "inbound_source.deleted", actor=actor, source=source, system=row.system)


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
    open_db: Callable[[], Any], master_key: bytes, *, poll: float, timeout: float, base: float, max_attempts: int
) -> None:
    """Forever: send the due deliveries of enabled endpoints, book each attempt, sleep ``poll`` seconds.

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
