"""Everything a peer can send the broker, walked with values nested too deep, too long and of the wrong type.

Every HTTP route a host token, a help request's token, a technician as a session's
peer or anyone joining can call is taken from the broker's own route table (a new
one fails :func:`test_every_peer_route_is_walked` until it is added here), and every
message type a peer may send on signalling from :mod:`protocol.signalling`. Each
bad value must get a 4xx in the one JSON error shape or an ``error`` reply, the
broker must keep serving (and the signalling socket stay open), and nothing may be
stored: the row count of every table is the same before and after.

A real broker on 127.0.0.1; the route table is read from an app built in-process only.
"""

from __future__ import annotations

import asyncio
import copy
import json
import typing
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts

from broker.app import create_app
from broker.settings import Settings
from broker.state import build_state
from protocol.frames import MAX_MESSAGE_DEPTH
from protocol.signalling import PeerMessage
from tests.integration.test_authorization_matrix import PEER, PUBLIC, declared_access
from tests.support.api import HOST_BODY, bearer, paired_session
from tests.support.broker import BrokerProcess

NOW = datetime.now(UTC).isoformat()
SHA = "a" * 64
LONG = "x" * 100_000
"""Longer than any string field of any request."""
TOO_DEEP = json.loads("[" * (MAX_MESSAGE_DEPTH + 1) + "]" * (MAX_MESSAGE_DEPTH + 1))
WRONG_FOR_TEXT = 12345
WRONG_FOR_OTHERS = "not the right type"
API = "/api/v1"

Path_ = tuple[str | int, ...]

JSON_ROUTES: dict[tuple[str, str], tuple[dict[str, Any], list[Path_]]] = {
    ("POST", "/join"): ({"code": "123456789", **HOST_BODY}, [("code",), ("machine_name",), ("os",), ("user_name",)]),
    ("POST", "/requests"): (
        {**HOST_BODY, "name": "Ann", "summary": "Printer", "details": "", "email": "ann@example.com", "priority": "normal"},
        [("machine_name",), ("name",), ("summary",), ("details",), ("email",), ("priority",)],
    ),
    ("POST", "/sessions/{session_id}/events"): (
        {"events": [{"id": "walk-0001", "kind": "chat.sent", "at": NOW, "data": {"text": "hi"}}]},
        [("events",), ("events", 0), ("events", 0, "id"), ("events", 0, "kind"), ("events", 0, "at"),
         ("events", 0, "data"), ("events", 0, "data", "text")],
    ),
    ("POST", "/sessions/{session_id}/transfers"): (
        {"name": "a.txt", "size": 3, "direction": "to_technician", "request_id": str(uuid.uuid4())},
        [("name",), ("size",), ("direction",), ("request_id",)],
    ),
    ("POST", "/sessions/{session_id}/transfers/{transfer_id}/decision"): (
        {"accept": True, "saved_as": "a.txt", "reason": ""}, [("accept",), ("saved_as",), ("reason",)],
    ),
    ("POST", "/sessions/{session_id}/transfers/{transfer_id}/finish"): ({"sha256": SHA}, [("sha256",)]),
    ("POST", "/sessions/{session_id}/transfers/{transfer_id}/complete"): ({"sha256": SHA}, [("sha256",)]),
    ("POST", "/sessions/{session_id}/transfers/{transfer_id}/cancel"): ({"reason": "no"}, [("reason",)]),
    ("POST", "/sessions/{session_id}/file-requests"): ({"path": "/tmp/a", "note": ""}, [("path",), ("note",)]),
    ("POST", "/sessions/{session_id}/file-requests/{request_id}/answer"): (
        {"approve": False, "reason": "no"}, [("approve",), ("reason",)],
    ),
    ("POST", "/sessions/{session_id}/survey"): ({"rating": 5, "comment": ""}, [("rating",), ("comment",)]),
    ("PUT", "/sessions/{session_id}/recording/{index}/repeat"): (
        {"source": 0, "sha256": SHA, "offset_ms": 1000, "duration_ms": 1000, "origin_ms": 1, "fps": 2.0,
         "frames_ms": [0, 500]},
        [("source",), ("sha256",), ("offset_ms",), ("duration_ms",), ("origin_ms",), ("fps",), ("frames_ms",),
         ("frames_ms", 0)],
    ),
}
"""Each route with a JSON body: a valid body, and the places in it that get bad values."""

QUERY_ROUTES: dict[tuple[str, str], list[dict[str, str]]] = {
    ("GET", "/requests/{request_id}"): [{"wait": "soon"}, {"wait": "-1"}, {"wait": "99999999999"}, {"position": "0"},
                                        {"position": "[]"}],
    ("GET", "/sessions/{session_id}/transfers/{transfer_id}"): [{"wait": "soon"}, {"wait": "-5"}, {"known": LONG[:300]}],
    ("GET", "/sessions/{session_id}/transfers/{transfer_id}/chunks/{index}"): [{"wait": "soon"}, {"wait": "1e9"}],
}
"""Each route whose input is its query: bad values for its parameters."""

HEADER_ROUTES: dict[tuple[str, str], list[dict[str, str]]] = {
    ("PUT", "/sessions/{session_id}/recording/{index}"): [
        {"X-Segment-SHA256": "zz", "X-Segment-Offset-Ms": "0", "X-Segment-Duration-Ms": "1000"},
        {"X-Segment-SHA256": SHA, "X-Segment-Offset-Ms": "soon", "X-Segment-Duration-Ms": "1000"},
        {"X-Segment-SHA256": SHA, "X-Segment-Offset-Ms": "0", "X-Segment-Duration-Ms": "-1"},
        {"X-Segment-SHA256": SHA, "X-Segment-Offset-Ms": "0", "X-Segment-Duration-Ms": "1000",
         "X-Recording-Origin-Ms": "[1]"},
        {"X-Segment-SHA256": SHA, "X-Segment-Offset-Ms": "0", "X-Segment-Duration-Ms": "1000",
         "X-Segment-Recorder": "broker"},
        {"X-Segment-SHA256": SHA, "X-Segment-Offset-Ms": "0", "X-Segment-Duration-Ms": "1000",
         "X-Segment-Recorder": "browser" + "x" * 5000},
    ],
    ("PUT", "/sessions/{session_id}/recording/{index}/continue"): [
        {"X-Segment-Source": "0", "X-Segment-SHA256": "zz", "X-Segment-Offset-Ms": "0", "X-Segment-Duration-Ms": "1000"},
        {"X-Segment-Source": "[0]", "X-Segment-SHA256": SHA, "X-Segment-Offset-Ms": "0", "X-Segment-Duration-Ms": "1000"},
        {"X-Segment-Source": "-1", "X-Segment-SHA256": SHA, "X-Segment-Offset-Ms": "0", "X-Segment-Duration-Ms": "1000"},
        {"X-Segment-SHA256": SHA, "X-Segment-Offset-Ms": "0", "X-Segment-Duration-Ms": "1000"},
        {"X-Segment-Source": "0", "X-Segment-SHA256": SHA, "X-Segment-Offset-Ms": "0", "X-Segment-Duration-Ms": "1e9"},
    ],
    ("PUT", "/sessions/{session_id}/transfers/{transfer_id}/chunks/{index}"): [{"X-Chunk-SHA256": "zz"}, {}],
}
"""Each route whose input is its headers and raw body (segments and chunks: see test_peer_abuse)."""

NO_INPUT = {
    ("GET", "/health"), ("GET", "/auth/session"), ("GET", "/sessions/{session_id}/transfers"),
    ("GET", "/sessions/{session_id}/file-requests"), ("GET", "/sessions/{session_id}/recording"),
    ("DELETE", "/requests/{request_id}"), ("DELETE", "/sessions/{session_id}/transfers/{transfer_id}/chunks/{index}"),
    ("GET", "/downloads"),
}
"""Routes that take nothing but ids in their path (walked by the authorization matrix)."""

WALKED_ELSEWHERE = {("GET", "/downloads/{platform}")}
"""Public routes whose input has a walk of its own: a build's platform name (traversal, odd names, unknown
platforms) in tests/integration/test_host_downloads.py."""

NOT_PEER_ROUTES = {("POST", "/auth/login")}
"""Public, but for staff signing in: not what a peer sends (the HTTP edge's limits cover it)."""

SIGNAL = ("WS", "/sessions/{session_id}/signal")
"""Walked by :func:`test_every_signalling_message_type_refuses_bad_values_and_stays_open`."""


@pytest.fixture(scope="module")
def peer_routes(tmp_path_factory: pytest.TempPathFactory) -> set[tuple[str, str]]:
    """(method, path without /api/v1) of every route a peer or anyone may call."""
    data_dir: Path = tmp_path_factory.mktemp("walk-routes")
    app = create_app(build_state(Settings(data_dir=data_dir)))
    found = set()
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, (APIRoute, APIWebSocketRoute)) and declared_access(route) in (PUBLIC, PEER):
            for method in route.methods or ["WS"]:
                found.add((method, route.path.removeprefix(API)))
    return found


def test_every_peer_route_is_walked(peer_routes: set[tuple[str, str]]) -> None:
    walked = set(JSON_ROUTES) | set(QUERY_ROUTES) | set(HEADER_ROUTES) | NO_INPUT | WALKED_ELSEWHERE | NOT_PEER_ROUTES | {SIGNAL}
    assert peer_routes - walked == set(), "peer routes this walk does not cover: add them"
    assert walked - peer_routes == set(), "routes walked that are no longer peer routes"


SEALER_ROWS = {"audit_heads": "0", "audit_events": "NOT (actor = 'broker' AND session_id IS NULL)"}
"""What the sealer adds on its own, any time, is not counted: signed heads, and its events in the broker's
chain (``chain.opened`` when a new session's chain is first sealed)."""


def table_counts(broker: BrokerProcess) -> dict[str, object]:
    """Rows of every table, but what the sealer adds on its own."""
    tables = [str(t) for (t,) in broker.sql("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    return {t: broker.sql(f'SELECT count(*) FROM "{t}" WHERE {SEALER_ROWS.get(t, "1")}')[0][0] for t in tables}


def with_value(body: Any, path: Path_, value: Any) -> Any:
    changed = copy.deepcopy(body)
    target = changed
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return changed


def at(body: Any, path: Path_) -> Any:
    for step in path:
        body = body[step]
    return body


def bad_values(valid: Any) -> Iterator[tuple[str, Any]]:
    yield "nested too deep", TOO_DEEP
    yield "too long", LONG
    yield "of the wrong type", WRONG_FOR_TEXT if isinstance(valid, str) else WRONG_FOR_OTHERS


@pytest.fixture(scope="module")
def ids(broker: BrokerProcess, admin: dict[str, str]) -> dict[str, str]:
    """Path ids: a joined session (its host token is the bearer); the other ids need not exist,
    as every bad value is refused before the route looks anything up."""
    session_id, host_token = paired_session(broker, admin)
    return {"session_id": session_id, "transfer_id": str(uuid.uuid4()), "request_id": str(uuid.uuid4()),
            "index": "0", "token": host_token}


def assert_refused(response: httpx.Response, what: object = "") -> dict[str, Any]:
    """The answer is a 4xx in the one error shape; its body."""
    assert 400 <= response.status_code < 500, (what, response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert isinstance(body.get("error"), str) and isinstance(body.get("message"), str), body
    return body


@pytest.mark.parametrize("route", JSON_ROUTES, ids=lambda r: f"{r[0]} {r[1]}")
def test_every_json_body_refuses_bad_values_and_stores_nothing(
    broker: BrokerProcess, ids: dict[str, str], route: tuple[str, str]
) -> None:
    method, template = route
    valid, places = JSON_ROUTES[route]
    path = template.format(**ids)
    headers = bearer(ids["token"])
    before = table_counts(broker)
    cases = [(f"{'.'.join(map(str, place))} {what}", with_value(valid, place, value))
             for place in places for what, value in bad_values(at(valid, place))]
    cases += [("the body nested too deep", TOO_DEEP), ("a list for a body", [valid]), ("a string for a body", "x")]
    for what, body in cases:
        answer = broker.http.request(method, path, json=body, headers=headers)
        refused = assert_refused(answer, what)
        if "too deep" in what:
            assert refused["error"] == "too_deep", (what, refused)
        else:
            assert refused["error"] == "invalid_request", (what, refused)
    # 30,000 levels: a RecursionError in the parser before, a plain refusal now.
    raw = "[" * 30_000 + "]" * 30_000
    answer = broker.http.request(method, path, content=raw, headers={**headers, "Content-Type": "application/json"})
    assert assert_refused(answer)["error"] == "too_deep"
    assert table_counts(broker) == before
    assert broker.http.get("/health").status_code == 200


@pytest.mark.parametrize("route", QUERY_ROUTES, ids=lambda r: f"{r[0]} {r[1]}")
def test_every_query_refuses_bad_values(broker: BrokerProcess, ids: dict[str, str], route: tuple[str, str]) -> None:
    method, template = route
    before = table_counts(broker)
    for params in QUERY_ROUTES[route]:
        answer = broker.http.request(method, template.format(**ids), params=params, headers=bearer(ids["token"]))
        assert assert_refused(answer, params)["error"] == "invalid_request", params
    assert table_counts(broker) == before


@pytest.mark.parametrize("route", HEADER_ROUTES, ids=lambda r: f"{r[0]} {r[1]}")
def test_every_upload_refuses_bad_headers(broker: BrokerProcess, ids: dict[str, str], route: tuple[str, str]) -> None:
    method, template = route
    before = table_counts(broker)
    for headers in HEADER_ROUTES[route]:
        answer = broker.http.request(method, template.format(**ids), content=b"\x00" * 100,
                                     headers={**bearer(ids["token"]), **headers})
        assert assert_refused(answer, headers)["error"] == "invalid_request", headers
    assert table_counts(broker) == before


# --- signalling -------------------------------------------------------------------------

SIGNAL_EXAMPLES: dict[str, dict[str, Any]] = {
    "offer": {"type": "offer", "sdp": "v=0", "attempt": 1},
    "answer": {"type": "answer", "sdp": "v=0", "attempt": 1},
    "ice": {"type": "ice", "candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdp_mid": "0", "sdp_mline_index": 0},
    "ice_failed": {"type": "ice_failed", "attempt": 1, "seconds": 15.0, "local_types": ["host", "relay"],
                   "remote_types": ["host"], "turn_failures": [{"url": "turn:198.18.0.1:3478", "reason": "refused"}]},
    "end": {"type": "end", "reason": "done"},
    "consent": {"type": "consent", "permissions": ["view"], "source": "window"},
}
"""A valid message of each type a peer may send."""


def test_every_peer_message_type_has_an_example() -> None:
    union = typing.get_args(typing.get_args(PeerMessage)[0])
    types = {model.model_fields["type"].default for model in union}
    assert types == set(SIGNAL_EXAMPLES)


async def receive(ws: websockets.ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    return message


async def next_of(ws: websockets.ClientConnection, kind: str) -> dict[str, Any]:
    while (message := await receive(ws))["type"] != kind:
        pass
    return message


@pytest.mark.parametrize("kind", SIGNAL_EXAMPLES)
async def test_every_signalling_message_type_refuses_bad_values_and_stays_open(
    broker: BrokerProcess, admin: dict[str, str], kind: str
) -> None:
    session_id, host_token = paired_session(broker, admin)
    valid = SIGNAL_EXAMPLES[kind]
    frames = [json.dumps(with_value(valid, (field,), value))
              for field in valid if field != "type" for _what, value in bad_values(valid[field])]
    frames += [json.dumps({**valid, "extra": 1}), '{{"type": "{}", "x": {}}}'.format(kind, "[" * 30_000 + "]" * 30_000),
               json.dumps({**valid, "padding": "x" * 70_000}), json.dumps([valid]), "{", '{"type": "welcome"}']
    before = table_counts(broker)
    rows_before = set(broker.sql("SELECT id FROM audit_events WHERE session_id = ?", session_id))
    async with websockets.connect(broker.ws_url(session_id), additional_headers=bearer(host_token), max_size=2**21) as host:
        await next_of(host, "grant")
        for frame in frames:
            await host.send(frame)
            error = await next_of(host, "error")
            assert error["code"] in ("too_deep", "too_large", "invalid_message", "invalid_json", "unknown_type"), error
        # Still open and still serving: a good message gets its usual answer (the technician is not here).
        await host.send(json.dumps(SIGNAL_EXAMPLES["ice"]))
        assert (await next_of(host, "error"))["code"] == "peer_absent"
    after = table_counts(broker)
    assert {t: n for t, n in after.items() if t != "audit_events"} == {t: n for t, n in before.items() if t != "audit_events"}
    added = [kind for (row_id, kind) in broker.sql("SELECT id, kind FROM audit_events WHERE session_id = ?", session_id)
             if (row_id,) not in rows_before]
    assert set(added) <= {"signal.connected", "signal.disconnected", "grant.issued"}, added
    assert broker.sql("SELECT state, consent FROM support_sessions WHERE id = ?", session_id) == [("connected", None)]
