"""peer.broker_errors: every client reads the broker's refusals the same way."""

from __future__ import annotations

import pytest

from host_client.join import JoinRefused
from peer.broker_errors import BrokerRefusal, refusal_from
from peer.signalling import SignallingRefused
from peer.transfers import TransferError
from tech_console.client import ConsoleError


@pytest.mark.parametrize("kind", [JoinRefused, SignallingRefused, TransferError, ConsoleError])
def test_the_error_shape_becomes_the_clients_own_refusal(kind: type[BrokerRefusal]) -> None:
    refused = refusal_from(kind, 429, b'{"error": "rate_limited", "message": "too many wrong codes"}', "30")
    assert isinstance(refused, kind) and isinstance(refused, BrokerRefusal)
    assert (refused.status, refused.error, refused.message, refused.retry_after) == (
        429, "rate_limited", "too many wrong codes", 30.0)
    assert str(refused) == "too many wrong codes"


@pytest.mark.parametrize("body", [b"<html>502 Bad Gateway</html>", b"", None, b'{"detail": "x"}', "[]"])
def test_an_answer_not_in_the_shape_says_the_status(body: bytes | str | None) -> None:
    refused = refusal_from(ConsoleError, 502, body)
    assert (refused.status, refused.error, refused.message) == (502, None, "the broker answered HTTP 502")


@pytest.mark.parametrize(("header", "wait"), [(None, None), ("5", 5.0), ("0.5", 0.5), ("-3", 0.0), ("soon", None)])
def test_retry_after_is_read_when_it_is_a_number(header: str | None, wait: float | None) -> None:
    body = b'{"error": "busy", "message": "later"}'
    assert refusal_from(BrokerRefusal, 503, body, header).retry_after == wait
