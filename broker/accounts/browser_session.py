"""Browser sign-in: the login token in an HttpOnly cookie, and CSRF protection for it.

A token the page's JavaScript cannot read cannot be stolen by a script injected
into it; but a cookie is sent by the browser with every request to the broker,
also with requests another site makes it send. So every state-changing request
authenticated by the cookie must also carry ``X-CSRF-Token``: a value derived
from the token that the login answer hands to the page and that another site
cannot know (it cannot read the cookie, nor our responses). ``SameSite=Strict``
is a second wall, not the only one.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection
from starlette.responses import Response

from broker.accounts.socket_bearer import subprotocol_token
from broker.errors import ApiError

COOKIE_NAME = "deskhand_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods that change nothing and need no CSRF token."""


def csrf_token_for(token: str) -> str:
    """The CSRF token that goes with a login token (derived: nothing to store)."""
    return hashlib.sha256(b"deskhand-csrf\x00" + token.encode()).hexdigest()


def csrf_ok(token: str, presented: str | None) -> bool:
    """Whether ``presented`` is the CSRF token of ``token`` (constant time)."""
    return presented is not None and hmac.compare_digest(csrf_token_for(token), presented)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header, or None."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def request_token(connection: HTTPConnection) -> str | None:
    """The token a request or WebSocket speaks with: its bearer header (on a WebSocket also one
    offered as a subprotocol, :mod:`broker.accounts.socket_bearer`), else the browser's cookie.

    A cookie counts only for requests our own page made: WebSockets must come from
    the broker's own origin (browsers send ``Origin``, and no other site can fake
    it), and HTTP requests that change something must carry ``X-CSRF-Token``.
    """
    bearer = bearer_token(connection.headers.get("authorization"))
    if bearer is not None:
        return bearer
    if connection.scope["type"] == "websocket":
        offered = subprotocol_token(connection.scope)
        if offered is not None:
            return offered
    cookie = connection.cookies.get(COOKIE_NAME)
    if cookie is None:
        return None
    if connection.scope["type"] == "websocket":
        origin = connection.headers.get("origin")
        if origin is None or urlsplit(origin).netloc != connection.headers.get("host"):
            raise ApiError(403, "cross_origin", "a signed-in browser may connect only from the broker's own pages")
    elif connection.scope.get("method", "GET") not in SAFE_METHODS and not csrf_ok(cookie, connection.headers.get(CSRF_HEADER)):
        raise ApiError(403, "csrf_failed", f"send the csrf_token from your sign-in as the {CSRF_HEADER} header")
    return cookie


def set_session_cookie(response: Response, token: str, expires_at: datetime, *, secure: bool) -> None:
    """Put the login token in an HttpOnly, SameSite=Strict cookie that lives as long as the token."""
    response.set_cookie(
        COOKIE_NAME, token, expires=expires_at, path="/", secure=secure, httponly=True, samesite="strict",
    )


def clear_session_cookie(response: Response, *, secure: bool) -> None:
    response.delete_cookie(COOKIE_NAME, path="/", secure=secure, httponly=True, samesite="strict")
