"""A bearer token offered as a WebSocket subprotocol (the join page's signalling)."""

from __future__ import annotations

import pytest
from starlette.requests import HTTPConnection

from broker.accounts.browser_session import request_token
from broker.accounts.socket_bearer import BEARER_SUBPROTOCOL, chosen_subprotocol, subprotocol_token


def websocket_scope(subprotocols: list[str], headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, object]:
    return {"type": "websocket", "subprotocols": subprotocols, "headers": headers or [], "path": "/", "query_string": b""}


@pytest.mark.parametrize(
    ("offered", "token"),
    [
        ([BEARER_SUBPROTOCOL, "dhh_abc"], "dhh_abc"),
        (["dhh_abc", BEARER_SUBPROTOCOL], "dhh_abc"),
        (["dhh_abc"], None),  # without the marker a subprotocol is no token
        ([BEARER_SUBPROTOCOL], None),
        ([BEARER_SUBPROTOCOL, "dhh_a", "dhh_b"], None),  # which one? neither
        ([BEARER_SUBPROTOCOL, "x" * 257], None),
        ([], None),
    ],
)
def test_the_token_is_the_one_other_subprotocol(offered: list[str], token: str | None) -> None:
    assert subprotocol_token(websocket_scope(offered)) == token


def test_the_marker_is_accepted_only_when_offered() -> None:
    assert chosen_subprotocol(websocket_scope([BEARER_SUBPROTOCOL, "dhh_abc"])) == BEARER_SUBPROTOCOL
    assert chosen_subprotocol(websocket_scope(["chat"])) is None
    assert chosen_subprotocol({"type": "websocket"}) is None


def test_a_websocket_token_header_wins_over_a_subprotocol_and_a_subprotocol_over_the_cookie() -> None:
    offered = [BEARER_SUBPROTOCOL, "dhh_offered"]
    assert request_token(HTTPConnection(websocket_scope(offered, [(b"authorization", b"Bearer dhh_header")]))) == "dhh_header"
    # A foreign page cannot offer a token it does not know; the cookie's Origin check is not needed for it.
    cookie = [(b"cookie", b"deskhand_session=dht_cookie"), (b"origin", b"https://elsewhere.example")]
    assert request_token(HTTPConnection(websocket_scope(offered, cookie))) == "dhh_offered"
