"""The one mapping from a rule's refusal to its HTTP answer (broker/refusals.py, broker/errors.py)."""

from __future__ import annotations

import json

import pytest

from broker import refusals
from broker.errors import REFUSAL_STATUS, refusal_error
from broker.sessions.codes import Verdict
from broker.sessions.spool import ChunkRejected
from broker.sessions.support_sessions import CodeRejected

KINDS = [
    (refusals.Unreadable, 400), (refusals.Unauthenticated, 401), (refusals.Forbidden, 403),
    (refusals.NotFound, 404), (refusals.Conflict, 409), (refusals.Gone, 410), (refusals.TooLarge, 413),
    (refusals.Invalid, 422), (refusals.RateLimited, 429), (refusals.Busy, 503), (refusals.OutOfSpace, 507),
]


@pytest.mark.parametrize(("kind", "status"), KINDS)
def test_each_kind_answers_with_its_status_code_and_message(kind: type[refusals.Refusal], status: int) -> None:
    answer = refusal_error(kind("some_code", "a sentence naming the fix")).response()
    assert answer.status_code == status
    assert json.loads(answer.body) == {"error": "some_code", "message": "a sentence naming the fix"}
    assert "retry-after" not in answer.headers


def test_every_kind_in_the_module_has_a_status() -> None:
    kinds = {k for k in vars(refusals).values()
             if isinstance(k, type) and issubclass(k, refusals.Refusal) and k not in (refusals.Refusal, refusals.Retryable)}
    assert kinds == set(REFUSAL_STATUS)


def test_a_retry_after_becomes_the_header_and_detail_the_body_field() -> None:
    answer = refusal_error(refusals.RateLimited("rate_limited", "wait", retry_after=7, detail={"n": 1})).response()
    assert answer.headers["retry-after"] == "7"
    assert json.loads(answer.body) == {"error": "rate_limited", "message": "wait", "detail": {"n": 1}}


def test_a_rules_own_refusal_answers_as_the_kind_it_derives_from() -> None:
    answer = refusal_error(ChunkRejected("chunk 3 has 2 bytes instead of 4"))
    assert (answer.status, answer.error, answer.message) == (422, "chunk_rejected", "chunk 3 has 2 bytes instead of 4")


@pytest.mark.parametrize(("verdict", "status", "code"), [
    (Verdict.unknown, 404, "code_unknown"), (Verdict.expired, 410, "code_expired"),
    (Verdict.used, 409, "code_used"), (Verdict.cancelled, 410, "code_cancelled"),
])
def test_a_rejected_code_tells_the_host_by_its_verdict(verdict: Verdict, status: int, code: str) -> None:
    answer = refusal_error(CodeRejected(verdict).refusal())
    assert (answer.status, answer.error) == (status, code)


def test_not_found_has_one_wording() -> None:
    missing = refusals.not_found("ticket 7")
    assert (missing.code, missing.message) == ("not_found", "ticket 7 does not exist or is not visible to you")
