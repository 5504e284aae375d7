"""Signed webhooks against a real broker and a real HTTP receiver on 127.0.0.1.

Outbound: ticket events arrive signed, a failing receiver is retried by the
backoff schedule, a delivery that never gets through is dead and can be
replayed. Inbound: a signed request creates a ticket with its external
reference, a second one updates it; bad signatures, stale timestamps and
unknown systems are refused alike and change nothing; malformed bodies are
422s that name the field.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from protocol.webhooks import sign, signed_headers, verify
from tests.integration.test_admin import broker_cli
from tests.support.api import create_ticket
from tests.support.broker import BrokerProcess
from tests.support.webhook_receiver import Receiver, running_receiver

BASE = 0.2
MAX_ATTEMPTS = 5
JITTER = 0.2  # broker.integrations.outbox.RETRY_JITTER: a retry may come up to this fraction early


@pytest.fixture(scope="module")
def broker_env() -> dict[str, str]:
    return {
        "DESKHAND_WEBHOOK_RETRY_BASE_SECONDS": str(BASE),
        "DESKHAND_WEBHOOK_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        "DESKHAND_WEBHOOK_POLL_SECONDS": "0.05",
        "DESKHAND_WEBHOOK_TIMEOUT_SECONDS": "5",
        "DESKHAND_INBOUND_FAILURES_PER_SOURCE": "1000",
    }


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


def add_webhook(broker: BrokerProcess, admin: dict[str, str], name: str, url: str, **extra: object) -> str:
    made = broker.http.post("/webhooks", headers=admin, json={"name": name, "url": url, **extra})
    assert made.status_code == 201, made.text
    return str(made.json()["secret"] or extra["secret"])


def open_ticket(broker: BrokerProcess, admin: dict[str, str], subject: str) -> int:
    return int(create_ticket(broker, admin, subject=subject, requester_name="Dana",
                             requester_email="dana@example.org")["id"])


def test_a_ticket_event_arrives_signed_with_the_ticket_snapshot(broker, admin, receiver) -> None:
    secret = add_webhook(broker, admin, "signed", receiver.url("/signed"), events=["ticket.created"])
    listed = broker.http.get("/webhooks", headers=admin).json()
    assert "secret" not in json.dumps(listed) and secret not in json.dumps(listed)
    ticket_id = open_ticket(broker, admin, "Mail is down")
    [got] = receiver.wait_for("/signed", 1)
    headers = {k.lower(): v for k, v in got.headers.items()}
    assert verify(secret.encode(), headers["x-deskhand-timestamp"], headers["x-deskhand-signature"], got.body,
                  now=time.time(), tolerance=60) is None
    assert headers["x-deskhand-event"] == "ticket.created"
    payload = got.json
    assert headers["x-deskhand-delivery"] == payload["id"]
    assert payload["event"] == "ticket.created" and payload["actor"] == "user:admin"
    assert payload["ticket"] == {
        "id": ticket_id, "subject": "Mail is down", "status": "new", "priority": "normal", "category": "",
        "requester_name": "Dana", "requester_email": "dana@example.org", "assignee": None, "assignee_team": None,
        "external_system": None, "external_key": None,
    }
    _delivery_in(broker, admin, payload["id"], "delivered")
    delivered = broker.http.get("/webhooks/deliveries", headers=admin, params={"state": "delivered"}).json()
    assert any(d["id"] == payload["id"] and d["attempts"] == 1 and d["last_status"] == 204 for d in delivered)
    # Subscribed to ticket.created only: a status change is not sent here.
    assert broker.http.patch(f"/tickets/{ticket_id}", headers=admin, json={"status": "open"}).status_code == 200
    time.sleep(0.5)
    assert len(receiver.at("/signed")) == 1
    # The secret is stored wrapped, never in clear.
    stored = broker.sql("SELECT secret_wrapped FROM webhook_endpoints WHERE name = 'signed'")[0][0]
    assert secret not in str(stored)
    assert secret not in json.dumps(broker.sql("SELECT data FROM audit_events WHERE kind LIKE 'webhook.%'"))


def test_a_failing_receiver_gets_the_event_on_the_fourth_try_by_the_backoff(broker, admin, receiver) -> None:
    receiver.failures["/flaky"] = 3
    add_webhook(broker, admin, "flaky", receiver.url("/flaky"), events=["ticket.created"],
                secret="flaky receiver secret 0123")
    open_ticket(broker, admin, "Flaky")
    got = receiver.wait_for("/flaky", 4)
    assert len({r.json["id"] for r in got}) == 1, "every attempt is the same delivery"
    gaps = [b.at - a.at for a, b in itertools.pairwise(got)]
    for attempt, gap in enumerate(gaps, start=1):
        scheduled = BASE * 2 ** (attempt - 1)
        assert scheduled * (1 - JITTER) - 0.01 <= gap <= scheduled + 1.0, (attempt, gaps)
    delivery = _delivery_in(broker, admin, got[0].json["id"], "delivered")
    assert delivery["attempts"] == 4 and delivery["last_status"] == 204
    time.sleep(BASE * 8)
    assert len(receiver.at("/flaky")) == 4, "nothing is sent after it was delivered"


def test_after_max_attempts_a_delivery_is_dead_and_replay_delivers_it(broker, admin, receiver) -> None:
    receiver.failures["/dead"] = MAX_ATTEMPTS
    add_webhook(broker, admin, "dead", receiver.url("/dead"), events=["ticket.created"])
    open_ticket(broker, admin, "Never arrives")
    got = receiver.wait_for("/dead", MAX_ATTEMPTS)
    delivery_id = got[0].json["id"]
    _delivery_in(broker, admin, delivery_id, "dead")
    dead = broker.http.get("/webhooks/deliveries", headers=admin, params={"state": "dead"}).json()
    [listed] = [d for d in dead if d["id"] == delivery_id]
    assert listed["attempts"] == MAX_ATTEMPTS and listed["last_error"] == "HTTP 500" and listed["webhook"] == "dead"
    assert broker.http.get("/webhooks/dead", headers=admin).json()["dead"] == 1
    assert broker.sql("SELECT count(*) FROM audit_events WHERE kind = 'webhook.dead'")[0][0] >= 1
    time.sleep(BASE * 4)
    assert len(receiver.at("/dead")) == MAX_ATTEMPTS, "a dead delivery is not retried"

    replayed = broker.http.post(f"/webhooks/deliveries/{delivery_id}/replay", headers=admin)
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["state"] == "pending" and replayed.json()["attempts"] == 0
    got = receiver.wait_for("/dead", MAX_ATTEMPTS + 1)
    assert got[-1].json["id"] == delivery_id
    _delivery_in(broker, admin, delivery_id, "delivered")
    assert broker.sql("SELECT actor FROM audit_events WHERE kind = 'webhook.replayed'") == [("user:admin",)]
    again = broker.http.post(f"/webhooks/deliveries/{delivery_id}/replay", headers=admin)
    assert again.status_code == 409 and "only a dead delivery" in again.json()["message"]
    unknown = broker.http.post("/webhooks/deliveries/00000000-0000-4000-8000-000000000000/replay", headers=admin)
    assert unknown.status_code == 404


def test_a_test_event_and_a_disabled_endpoint(broker, admin, receiver) -> None:
    add_webhook(broker, admin, "pinged", receiver.url("/pinged"), events=["ticket.created"], enabled=False)
    open_ticket(broker, admin, "Not while disabled")
    queued = broker.http.post("/webhooks/pinged/test", headers=admin)
    assert queued.status_code == 202 and queued.json()["event"] == "webhook.test"
    time.sleep(0.5)
    assert receiver.at("/pinged") == [], "a disabled endpoint is sent nothing"
    assert broker.http.patch("/webhooks/pinged", headers=admin, json={"enabled": True}).json()["enabled"] is True
    # The ticket event made while it was disabled was never queued for it (only enabled endpoints
    # get deliveries); the test event was, and goes out now.
    [got] = receiver.wait_for("/pinged", 1)
    assert got.json["event"] == "webhook.test"
    assert broker.http.delete("/webhooks/pinged", headers=admin).status_code == 204
    assert broker.http.get("/webhooks/pinged", headers=admin).status_code == 404


@pytest.mark.parametrize("body, words", [
    ({"name": "x1", "url": "ftp://example.org/"}, "http:// or https://"),
    ({"name": "x1", "url": "https://u:p@example.org/"}, "user name or password"),
    ({"name": "x1", "url": "https://example.org/", "secret": "short"}, "secret"),
    ({"name": "x1", "url": "https://example.org/", "events": ["ticket.exploded"]}, "unknown event"),
    ({"name": "Bad Name", "url": "https://example.org/"}, "name"),
    ({"name": "deliveries", "url": "https://example.org/"}, "reserved"),
])
def test_bad_webhook_definitions_are_refused_by_name(
    broker: BrokerProcess, admin: dict[str, str], body: dict[str, Any], words: str
) -> None:
    refused = broker.http.post("/webhooks", headers=admin, json=body)
    assert refused.status_code == 422 and words in refused.json()["message"], refused.text


def test_a_name_is_taken_once_and_bad_delivery_filters_are_refused(broker, admin, receiver) -> None:
    add_webhook(broker, admin, "twice", receiver.url("/twice"), events=["survey.submitted"])
    again = broker.http.post("/webhooks", headers=admin, json={"name": "twice", "url": receiver.url("/twice")})
    assert again.status_code == 409
    assert broker.http.get("/webhooks/deliveries", headers=admin, params={"state": "lost"}).status_code == 422
    assert broker.http.get("/webhooks/deliveries", headers=admin, params={"webhook": "nobody"}).status_code == 404


def _delivery(broker: BrokerProcess, admin: dict[str, str], delivery_id: str) -> dict[str, object]:
    deliveries: list[dict[str, object]] = broker.http.get("/webhooks/deliveries", headers=admin, params={"limit": 500}).json()
    for d in deliveries:
        if d["id"] == delivery_id:
            return d
    raise AssertionError(f"delivery {delivery_id} is not listed")


def _delivery_in(broker: BrokerProcess, admin: dict[str, str], delivery_id: str, state: str,
                   timeout: float = 5.0) -> dict[str, object]:
    """The delivery once it is in ``state``: the receiver has the request before the broker has its answer
    recorded (a receiver's 204 is read, then written down)."""
    deadline = time.monotonic() + timeout
    while (delivery := _delivery(broker, admin, delivery_id))["state"] != state:
        assert time.monotonic() < deadline, delivery
        time.sleep(0.05)
    return delivery


# --- inbound ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def jira(broker: BrokerProcess, admin: dict[str, str]) -> bytes:
    made = broker.http.post("/inbound-sources", headers=admin, json={"system": "jira"})
    assert made.status_code == 201, made.text
    secret = made.json()["secret"]
    assert len(secret) >= 40
    assert secret not in json.dumps(broker.http.get("/inbound-sources", headers=admin).json())
    return str(secret).encode()


def send(broker: BrokerProcess, system: str, secret: bytes, payload: object, *, at: int | None = None,
         raw: bytes | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
    body = raw if raw is not None else json.dumps(payload).encode()
    signed = signed_headers(secret, int(time.time()) if at is None else at, body)
    return broker.http.post(f"/inbound/{system}", content=body,
                            headers={"Content-Type": "application/json", **signed, **(headers or {})})


def _ticket_count(broker: BrokerProcess) -> int:
    count = broker.sql("SELECT count(*) FROM tickets")[0][0]
    assert isinstance(count, int)
    return count


def test_a_signed_request_creates_a_ticket_and_a_second_updates_it(broker, admin, jira, receiver) -> None:
    add_webhook(broker, admin, "mirror", receiver.url("/mirror"),
                events=["ticket.created", "ticket.updated", "ticket.status_changed", "ticket.commented"])
    created = send(broker, "jira", jira, {
        "external_key": "HELP-42", "subject": "VPN drops", "requester_name": "Ines",
        "requester_email": "ines@example.org", "priority": "high", "category": "network"})
    assert created.status_code == 201, created.text
    result = created.json()
    assert result["created"] is True and result["external_system"] == "jira" and result["external_key"] == "HELP-42"
    ticket = broker.http.get(f"/tickets/{result['ticket_id']}", headers=admin).json()
    assert ticket["external"] == {"system": "jira", "key": "HELP-42"}
    assert ticket["created_via"] == "inbound" and ticket["created_by"] is None and ticket["priority"] == "high"

    updated = send(broker, "jira", jira, {"external_key": "HELP-42", "subject": "VPN drops every hour",
                                          "status": "pending", "comment": "Customer says it happens at :00"})
    assert updated.status_code == 200, updated.text
    assert updated.json()["created"] is False and updated.json()["ticket_id"] == result["ticket_id"]
    assert set(updated.json()["changed"]) == {"subject", "status", "comment"}
    ticket = broker.http.get(f"/tickets/{result['ticket_id']}", headers=admin).json()
    assert ticket["subject"] == "VPN drops every hour" and ticket["status"] == "pending"
    [comment] = [c for c in ticket["comments"] if c["kind"] == "inbound"]
    assert comment["visibility"] == "public" and comment["author"] == "inbound:jira"
    assert comment["body"] == "Customer says it happens at :00"

    # The change goes out again to outbound webhooks, with the external reference in the snapshot.
    got = receiver.wait_for("/mirror", 4)
    # One endpoint's events arrive in the order they happened.
    assert [r.json["event"] for r in got] == ["ticket.created", "ticket.updated", "ticket.status_changed",
                                               "ticket.commented"]
    assert all(r.json["ticket"]["external_key"] == "HELP-42" and r.json["actor"] == "inbound:jira" for r in got)

    refused = send(broker, "jira", jira, {"external_key": "HELP-42", "status": "reopened"})
    assert refused.status_code == 409 and "cannot become reopened" in refused.json()["message"]


def test_refused_requests_are_401_alike_and_change_nothing(broker, admin, jira) -> None:
    before = _ticket_count(broker)
    payload = {"external_key": "HELP-99", "subject": "Should not exist", "requester_name": "Eve"}
    body = json.dumps(payload).encode()
    answers = [
        send(broker, "jira", b"not the shared secret at all", payload),
        send(broker, "jira", jira, payload, at=int(time.time()) - 3600),
        send(broker, "jira", jira, payload, at=int(time.time()) + 3600),
        send(broker, "zendesk", jira, payload),
        send(broker, "Not A System!", jira, payload),
        broker.http.post("/inbound/jira", content=body, headers={"Content-Type": "application/json"}),
        send(broker, "jira", jira, None, raw=body,
             headers={"X-Deskhand-Signature": sign(jira, int(time.time()), body.replace(b"Eve", b"Bob"))}),
    ]
    assert [a.status_code for a in answers] == [401] * len(answers), [a.text for a in answers]
    assert len({a.json()["message"] for a in answers}) == 1, "one message: systems cannot be enumerated"
    assert _ticket_count(broker) == before
    reasons = [r[0] for r in broker.sql("SELECT json_extract(data, '$.reason') FROM audit_events "
                                        "WHERE kind = 'inbound.refused' ORDER BY id")]
    assert {"mismatch", "stale", "unknown_source", "missing"} <= set(reasons)

    # The same signed request a second time is a replay.
    at = int(time.time())
    first = send(broker, "jira", jira, {"external_key": "HELP-7", "subject": "Once", "requester_name": "Al"}, at=at)
    assert first.status_code == 201
    second = send(broker, "jira", jira, {"external_key": "HELP-7", "subject": "Once", "requester_name": "Al"}, at=at)
    assert second.status_code == 401
    assert broker.sql("SELECT json_extract(data, '$.reason') FROM audit_events WHERE kind = 'inbound.refused' "
                      "ORDER BY id DESC LIMIT 1") == [("replayed",)]

    # A disabled source is refused like an unknown one.
    assert broker.http.patch("/inbound-sources/jira", headers=admin, json={"enabled": False}).status_code == 200
    assert send(broker, "jira", jira, {"external_key": "HELP-8", "subject": "x", "requester_name": "y"}).status_code == 401
    assert broker.http.patch("/inbound-sources/jira", headers=admin, json={"enabled": True}).status_code == 200


@pytest.mark.parametrize("raw, words", [
    (b"{not json", "not valid JSON"),
    (b'["a list"]', "body"),
    (b'{"subject": "no key"}', "external_key"),
    (b'{"external_key": "K-1", "priority": "asap"}', "priority"),
    (b'{"external_key": "K-1", "status": "lost"}', "status"),
    (b'{"external_key": "K-1", "owner": "x"}', "owner"),
    (b'{"external_key": "K-1", "requester_email": "nope"}', "requester_email"),
    (b'{"external_key": "K-NEW"}', "needs subject and requester_name"),
])
def test_malformed_bodies_are_422_naming_what_is_wrong(broker: BrokerProcess, jira: bytes, raw: bytes, words: str) -> None:
    before = _ticket_count(broker)
    answer = send(broker, "jira", jira, None, raw=raw)
    assert answer.status_code == 422 and words in answer.json()["message"], answer.text
    assert _ticket_count(broker) == before


def test_inbound_sources_are_managed_by_integration_managers_only(broker, admin, jira) -> None:
    assert broker.http.post("/inbound-sources", headers=admin, json={"system": "jira"}).status_code == 409
    given = broker.http.post("/inbound-sources", headers=admin, json={"system": "snow", "secret": "s" * 20})
    assert given.status_code == 201 and given.json()["secret"] is None
    assert broker.http.post("/inbound-sources", headers=admin, json={"system": "Bad!"}).status_code == 422
    assert broker.http.delete("/inbound-sources/snow", headers=admin).status_code == 204
    assert broker.http.delete("/inbound-sources/snow", headers=admin).status_code == 404
    assert broker.http.get("/inbound-sources", headers={}).status_code == 401


def test_the_broker_cli_manages_webhooks_and_inbound_sources_on_a_running_broker(broker, admin, receiver) -> None:
    secret = "cli secret of twenty chars"
    added = broker_cli(broker, "webhooks", "add", "from-cli", receiver.url("/cli"), "--events", "ticket.created",
                       "--secret-stdin", stdin=secret + "\n")
    assert added.returncode == 0 and "from-cli added" in added.stdout and secret not in added.stdout, added.stderr
    open_ticket(broker, admin, "Seen by the CLI's webhook")
    [got] = receiver.wait_for("/cli", 1)
    _delivery_in(broker, admin, got.json["id"], "delivered")
    headers = {k.lower(): v for k, v in got.headers.items()}
    assert verify(secret.encode(), headers["x-deskhand-timestamp"], headers["x-deskhand-signature"], got.body,
                  now=time.time(), tolerance=60) is None
    listed = broker_cli(broker, "webhooks", "list")
    assert "from-cli" in listed.stdout and "ticket.created" in listed.stdout and secret not in listed.stdout
    deliveries = json.loads(broker_cli(broker, "webhooks", "deliveries", "--webhook", "from-cli", "--json").stdout)
    assert [d["state"] for d in deliveries] == ["delivered"]
    bad = broker_cli(broker, "webhooks", "add", "bad-url", "ftp://example.org/")
    assert bad.returncode == 2 and "url" in bad.stderr and "http:// or https://" in bad.stderr
    replay = broker_cli(broker, "webhooks", "replay", deliveries[0]["id"])
    assert replay.returncode == 1 and "only a dead delivery" in replay.stderr
    assert broker_cli(broker, "webhooks", "remove", "from-cli").returncode == 0
    assert broker_cli(broker, "webhooks", "remove", "from-cli").returncode == 1

    made = broker_cli(broker, "inbound", "add", "servicedesk")
    assert made.returncode == 0, made.stderr
    generated = made.stdout.rsplit(": ", 1)[1].strip()
    answer = send(broker, "servicedesk", generated.encode(),
                  {"external_key": "SD-1", "subject": "From the CLI's source", "requester_name": "Kim"})
    assert answer.status_code == 201, answer.text
    assert broker_cli(broker, "inbound", "disable", "servicedesk").returncode == 0
    assert "servicedesk" in broker_cli(broker, "inbound", "list").stdout
    answer = send(broker, "servicedesk", generated.encode(), {"external_key": "SD-1", "comment": "still there?"})
    assert answer.status_code == 401
    assert broker_cli(broker, "inbound", "remove", "servicedesk").returncode == 0
    actors = {a for (a,) in broker.sql("SELECT actor FROM audit_events WHERE kind LIKE 'inbound_source.%' "
                                       "OR kind LIKE 'webhook.created'")}
    assert any(a.startswith("cli:") for a in actors)


def test_an_oversized_inbound_body_is_413_before_anything_else(broker, jira) -> None:
    big = json.dumps({"external_key": "BIG-1", "description": "x" * 300_000}).encode()
    assert send(broker, "jira", jira, None, raw=big).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the broker counts as it reads
        for _ in range(40):
            yield b"x" * 10_000

    streamed = broker.http.post("/inbound/jira", content=chunks(), headers=signed_headers(jira, int(time.time()), b""))
    assert streamed.status_code == 413


def test_an_endpoint_whose_secret_no_longer_unwraps_goes_dead_without_stopping_the_others(broker, admin, receiver) -> None:
    add_webhook(broker, admin, "broken", receiver.url("/broken"), events=["ticket.created"])
    add_webhook(broker, admin, "healthy", receiver.url("/healthy"), events=["ticket.created"])
    # Another endpoint's wrapped secret: bound to that endpoint's name, it does not unwrap here.
    broker.sql("UPDATE webhook_endpoints SET secret_wrapped = (SELECT secret_wrapped FROM webhook_endpoints "
               "WHERE name = 'healthy') WHERE name = 'broken'")
    open_ticket(broker, admin, "Half the endpoints can sign")
    receiver.wait_for("/healthy", 1)
    deadline = time.monotonic() + 15
    while True:
        dead = broker.http.get("/webhooks/deliveries", headers=admin, params={"state": "dead", "webhook": "broken"}).json()
        if dead:
            break
        assert time.monotonic() < deadline, "the unsendable delivery never went dead"
        time.sleep(0.1)
    assert "does not unwrap" in dead[0]["last_error"] and dead[0]["attempts"] == MAX_ATTEMPTS
    assert receiver.at("/broken") == []


def test_delivered_deliveries_are_forgotten_after_thirty_days(broker, admin, receiver) -> None:
    add_webhook(broker, admin, "kept", receiver.url("/kept"), events=["ticket.created"])
    open_ticket(broker, admin, "Delivered long ago")
    open_ticket(broker, admin, "Delivered just now")
    old, recent = (r.json["id"] for r in receiver.wait_for("/kept", 2))
    for delivery_id in (old, recent):
        _delivery_in(broker, admin, delivery_id, "delivered")
    broker.sql("UPDATE webhook_deliveries SET delivered_at = datetime('now', '-31 days') WHERE id = ?", old)
    broker.restart()  # the worker prunes when it starts, then hourly
    deadline = time.monotonic() + 10
    while old in {d["id"] for d in broker.http.get("/webhooks/deliveries", headers=admin, params={"limit": 500}).json()}:
        assert time.monotonic() < deadline, "the old delivery is still listed"
        time.sleep(0.1)
    assert recent in {d["id"] for d in broker.http.get("/webhooks/deliveries", headers=admin, params={"limit": 500}).json()}


def test_after_a_failure_an_endpoints_later_events_wait_and_keep_their_order(broker, admin, receiver) -> None:
    receiver.failures["/ordered"] = 1
    add_webhook(broker, admin, "ordered", receiver.url("/ordered"),
                events=["ticket.created", "ticket.assigned", "ticket.status_changed"])
    # One transaction, three events: opened, assigned, and so moved from new to open.
    create_ticket(broker, admin, subject="Three at once", assignee="admin")
    got = receiver.wait_for("/ordered", 4)
    assert [r.json["event"] for r in got] == ["ticket.created", "ticket.created", "ticket.assigned",
                                              "ticket.status_changed"]
    assert got[1].at - got[0].at >= BASE * (1 - JITTER) - 0.01, "the retry waited out the backoff"
    time.sleep(0.3)
    assert len(receiver.at("/ordered")) == 4, "the events held back were not sent in the failed round"
    attempts = sorted(_delivery(broker, admin, r.json["id"])["attempts"] for r in got[1:])
    assert attempts == [2, 2, 2]


def test_refusals_from_one_address_are_limited_and_the_block_audited_once(start_broker: Callable[..., BrokerProcess]) -> None:
    limited = start_broker(DESKHAND_INBOUND_FAILURES_PER_SOURCE="3")
    answers = [limited.http.post("/inbound/jira", content=b"{}", headers={"Content-Type": "application/json"})
               for _ in range(6)]
    assert [a.status_code for a in answers] == [401] * 3 + [429] * 3
    assert int(answers[3].headers["Retry-After"]) > 0
    assert answers[3].json()["error"] == "rate_limited" and "too many refused requests" in answers[3].json()["message"]
    # Each refusal audited; of the refusals while blocked, only the block's start.
    assert limited.sql("SELECT count(*) FROM audit_events WHERE kind = 'inbound.refused'") == [(3,)]
    assert limited.sql("SELECT count(*) FROM audit_events WHERE kind = 'inbound.rate_limited'") == [(1,)]
