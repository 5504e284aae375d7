"""A bearer token offered as a WebSocket subprotocol: how a browser page that holds a token
(the browser join's host token) authenticates its signalling.

Browsers cannot set ``Authorization`` on a WebSocket, and a token in the URL would be
written to every access log on the way. So the page offers two subprotocols,
:data:`BEARER_SUBPROTOCOL` and the token; the broker reads the token from the second and
accepts the first (a browser drops a connection whose server chose none of the offered
subprotocols). Unlike a cookie, such a token is never sent by the browser on its own, so
no Origin check is needed for it.
"""

from __future__ import annotations

from starlette.types import Scope

BEARER_SUBPROTOCOL = "deskhand.bearer"
"""The subprotocol that says: the other one offered is a bearer token."""

MAX_TOKEN_CHARS = 256
"""Longer than any token the broker issues; a longer offer is no token of ours."""


def subprotocol_token(scope: Scope) -> str | None:
    """The token offered beside :data:`BEARER_SUBPROTOCOL`, or None when it was not offered as exactly one more."""
    offered = [p for p in scope.get("subprotocols") or () if isinstance(p, str)]
    if BEARER_SUBPROTOCOL not in offered:
        return None
    others = [p for p in offered if p != BEARER_SUBPROTOCOL]
    if len(others) != 1 or not 0 < len(others[0]) <= MAX_TOKEN_CHARS:
        return None
    return others[0]


def chosen_subprotocol(scope: Scope) -> str | None:
    """The subprotocol to accept the WebSocket with: :data:`BEARER_SUBPROTOCOL` when it was offered."""
    return BEARER_SUBPROTOCOL if BEARER_SUBPROTOCOL in (scope.get("subprotocols") or ()) else None
