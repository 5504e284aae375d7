"""Webhook signing, verification, replay memory, the retry schedule and the admin payloads (pure logic)."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from pydantic import ValidationError

from broker.integrations.inbound import SeenSignatures
from protocol.webhooks import (
    EVENT_OF_AUDIT_KIND,
    WEBHOOK_EVENTS,
    InboundTicket,
    Refusal,
    WebhookCreate,
    generate_secret,
    retry_delay,
    sign,
    signed_headers,
    verify,
)

SECRET = b"a shared secret of some length"
BODY = b'{"event":"ticket.created","id":"x"}'
NOW = 1_800_000_000


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET, f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, NOW, BODY) == f"sha256={expected}"
    headers = signed_headers(SECRET, NOW, BODY)
    assert headers == {"X-Deskhand-Timestamp": str(NOW), "X-Deskhand-Signature": f"sha256={expected}"}


def test_a_fresh_authentic_request_verifies() -> None:
    assert verify(SECRET, str(NOW), sign(SECRET, NOW, BODY), BODY, now=NOW + 5, tolerance=300) is None


@pytest.mark.parametrize("offset, ok", [(300, True), (-300, True), (301, False), (-301, False), (86400, False)])
def test_the_timestamp_must_be_within_the_tolerance_either_way(offset: int, ok: bool) -> None:
    signature = sign(SECRET, NOW, BODY)
    verdict = verify(SECRET, str(NOW), signature, BODY, now=NOW + offset, tolerance=300)
    assert verdict is (None if ok else Refusal.stale)


def test_a_tampered_body_wrong_secret_or_moved_timestamp_is_a_mismatch() -> None:
    signature = sign(SECRET, NOW, BODY)
    assert verify(SECRET, str(NOW), signature, BODY.replace(b"created", b"updated"), now=NOW, tolerance=300) \
        is Refusal.mismatch
    assert verify(b"another secret entirely!", str(NOW), signature, BODY, now=NOW, tolerance=300) is Refusal.mismatch
    # The timestamp is inside the MAC: re-dating a captured request breaks it.
    assert verify(SECRET, str(NOW + 1), signature, BODY, now=NOW, tolerance=300) is Refusal.mismatch


@pytest.mark.parametrize("timestamp, signature, reason", [
    (None, "sha256=" + "0" * 64, Refusal.missing),
    (str(NOW), None, Refusal.missing),
    ("", "", Refusal.missing),
    ("12.5", "sha256=" + "0" * 64, Refusal.malformed),
    ("-5", "sha256=" + "0" * 64, Refusal.malformed),
    ("１２３", "sha256=" + "0" * 64, Refusal.malformed),  # non-ASCII digits
    (str(NOW), "0" * 64, Refusal.malformed),  # no prefix
    (str(NOW), "sha1=" + "0" * 40, Refusal.malformed),
    (str(NOW), "sha256=" + "0" * 63, Refusal.malformed),
    (str(NOW), "sha256=" + "G" * 64, Refusal.malformed),
    (str(NOW), "sha256=" + "A" * 64, Refusal.malformed),  # upper-case hex is not what sign() makes
])
def test_missing_or_malformed_headers_are_named(timestamp: str | None, signature: str | None, reason: Refusal) -> None:
    assert verify(SECRET, timestamp, signature, BODY, now=NOW, tolerance=300) is reason


def test_seen_signatures_refuse_a_second_copy_within_twice_the_window() -> None:
    seen = SeenSignatures(window=300)
    assert seen.first_time("jira:sig", now=1000)
    assert not seen.first_time("jira:sig", now=1001)
    assert not seen.first_time("jira:sig", now=1599)
    assert seen.first_time("jira:sig", now=1601)  # the request itself is stale by then
    seen.forget("jira:sig")
    assert seen.first_time("jira:sig", now=1602)


def test_seen_signatures_stay_bounded() -> None:
    seen = SeenSignatures(window=300, max_entries=3)
    for i in range(10):
        assert seen.first_time(f"k{i}", now=1000)
    assert len(seen._seen) <= 3
    assert not seen.first_time("k9", now=1000)


def test_the_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    delays = [retry_delay(n, base=10, cap=3600) for n in range(1, 11)]
    assert delays == [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600]
    assert retry_delay(1000, base=10, cap=3600) == 3600  # no overflow for absurd attempt numbers


def test_jitter_only_shortens_the_delay_by_at_most_its_fraction() -> None:
    assert retry_delay(3, base=1, cap=100, jitter=0.2, rand=0.0) == 4
    assert retry_delay(3, base=1, cap=100, jitter=0.2, rand=0.5) == pytest.approx(3.6)
    assert retry_delay(3, base=1, cap=100, jitter=0.2, rand=0.999999) == pytest.approx(3.2, abs=1e-5)
    for _ in range(100):
        assert 3.2 <= retry_delay(3, base=1, cap=100, jitter=0.2) <= 4


@pytest.mark.parametrize("attempt, jitter", [(0, 0.0), (-1, 0.0), (1, 1.5), (1, -0.1)])
def test_bad_backoff_arguments_are_refused(attempt: int, jitter: float) -> None:
    with pytest.raises(ValueError):
        retry_delay(attempt, base=1, cap=10, jitter=jitter)


def test_every_webhook_event_comes_from_an_audit_kind() -> None:
    assert set(WEBHOOK_EVENTS) == set(EVENT_OF_AUDIT_KIND.values())
    assert EVENT_OF_AUDIT_KIND["code.redeemed"] == "session.connected"
    assert "ticket.created" in WEBHOOK_EVENTS and "request.picked" in WEBHOOK_EVENTS


def test_generated_secrets_are_long_and_different() -> None:
    one, two = generate_secret(), generate_secret()
    assert one != two and len(one) >= 40


def test_webhook_create_takes_http_urls_and_known_events_only() -> None:
    ok = WebhookCreate(name="crm", url="https://hooks.example.org/deskhand?x=1",
                       events=["ticket.created", "ticket.created"])
    assert ok.events == ["ticket.created"] and ok.secret is None
    for url, words in [("ftp://example.org/x", "http:// or https://"), ("file:///etc/passwd", "http:// or https://"),
                       ("https://user:pw@example.org/", "user name or password"), ("http:///nohost", "no host"),
                       ("https://example.org/#frag", "fragment"), ("https://example.org:99999/", "port")]:
        with pytest.raises(ValidationError, match=words):
            WebhookCreate(name="crm", url=url)
    with pytest.raises(ValidationError, match=r"unknown event 'ticket\.exploded'"):
        WebhookCreate(name="crm", url="https://example.org/", events=["ticket.exploded"])
    with pytest.raises(ValidationError, match="at least 16"):
        WebhookCreate(name="crm", url="https://example.org/", secret="short")
    with pytest.raises(ValidationError, match="reserved"):
        WebhookCreate(name="deliveries", url="https://example.org/")
    with pytest.raises(ValidationError, match="Extra inputs"):
        WebhookCreate(name="crm", url="https://example.org/", colour="red")  # type: ignore[call-arg]  # the point: an unknown field


def test_inbound_ticket_is_strict() -> None:
    ticket = InboundTicket.model_validate_json(b'{"external_key": "HELP-1", "subject": "Printer", "status": "open"}')
    assert ticket.external_key == "HELP-1" and ticket.status is not None
    for body, words in [(b'{"subject": "x"}', "external_key"), (b'{"external_key": "A", "owner": "x"}', "owner"),
                        (b'{"external_key": "A", "status": "lost"}', "status"),
                        (b'{"external_key": "A", "priority": "asap"}', "priority"),
                        (b'{"external_key": "A", "requester_email": "not mail"}', "requester_email"),
                        (b'{"external_key": " A"}', "whitespace")]:
        with pytest.raises(ValidationError, match=words):
            InboundTicket.model_validate_json(body)
