"""Outbound webhooks (integration managers): endpoints, their deliveries, replaying dead ones."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from broker.accounts.access import IntegrationManager
from broker.audit import events as audit
from broker.deps import DB, Source, State
from broker.integrations.webhooks import (
    create_webhook,
    delete_webhook,
    delivery_out,
    find_webhook,
    list_deliveries,
    list_webhooks,
    replay_delivery,
    send_test,
    update_webhook,
    webhook_out,
)
from protocol.admin import NAME_PATTERN
from protocol.webhooks import DeliveryOut, DeliveryState, WebhookCreate, WebhookCreated, WebhookOut, WebhookUpdate

router = APIRouter(prefix="/webhooks", tags=["integrations"])

WebhookName = Annotated[str, Path(pattern=NAME_PATTERN, description="A webhook's name")]
DeliveryId = Annotated[
    str,
    Path(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", description="Delivery id (a UUID)"),
]


@router.get("", response_model=list[WebhookOut], summary="Every webhook endpoint (never its secret)")
def index(db: DB, _user: IntegrationManager) -> list[WebhookOut]:
    return [webhook_out(db, e) for e in list_webhooks(db)]


@router.post("", response_model=WebhookCreated, status_code=201,
             summary="Add an endpoint; a generated secret is shown this once")
def create(body: WebhookCreate, db: DB, state: State, user: IntegrationManager, source: Source) -> WebhookCreated:
    endpoint, secret = create_webhook(db, body, state.keys.recording_master_key,
                                      actor=audit.user_actor(user), source=source)
    return WebhookCreated(webhook=webhook_out(db, endpoint), secret=secret)


# Before "/{name}": "deliveries" is a reserved webhook name for this route.
@router.get("/deliveries", response_model=list[DeliveryOut], summary="Deliveries, newest first")
def deliveries(
    db: DB, _user: IntegrationManager,
    state: Annotated[DeliveryState | None, Query(description="Only deliveries in this state")] = None,
    webhook: Annotated[str | None, Query(pattern=NAME_PATTERN, description="Only this endpoint's")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[DeliveryOut]:
    return list_deliveries(db, state=state, webhook=webhook, limit=limit, offset=offset)


@router.post("/deliveries/{delivery_id}/replay", response_model=DeliveryOut,
             summary="Send a dead delivery again from its first attempt (same id and payload)")
def replay(delivery_id: DeliveryId, db: DB, user: IntegrationManager, source: Source) -> DeliveryOut:
    return replay_delivery(db, delivery_id, actor=audit.user_actor(user), source=source)


@router.get("/{name}", response_model=WebhookOut, summary="One endpoint")
def show(name: WebhookName, db: DB, _user: IntegrationManager) -> WebhookOut:
    return webhook_out(db, find_webhook(db, name))


@router.patch("/{name}", response_model=WebhookOut, summary="Change an endpoint's URL, events, or enable it")
def change(name: WebhookName, body: WebhookUpdate, db: DB, user: IntegrationManager, source: Source) -> WebhookOut:
    endpoint = update_webhook(db, find_webhook(db, name), body, actor=audit.user_actor(user), source=source)
    return webhook_out(db, endpoint)


@router.delete("/{name}", status_code=204, summary="Remove an endpoint and its queued deliveries")
def delete(name: WebhookName, db: DB, user: IntegrationManager, source: Source) -> None:
    delete_webhook(db, find_webhook(db, name), actor=audit.user_actor(user), source=source)


@router.post("/{name}/test", response_model=DeliveryOut, status_code=202,
             summary="Queue a webhook.test event for this endpoint alone")
def test(name: WebhookName, db: DB, user: IntegrationManager, source: Source) -> DeliveryOut:
    endpoint = find_webhook(db, name)
    delivery = send_test(db, endpoint, actor=audit.user_actor(user), source=source)
    return delivery_out(delivery, endpoint.name)
