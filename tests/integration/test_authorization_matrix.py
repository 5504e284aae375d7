"""Every route times every role: the answer each identity gets follows from what the route declares.

Built from the broker's own route table, so a new route is covered the day it
is added; a route that declares no access at all fails the test. Requests go
to a real broker; the app is only built in-process to read its route table.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext

from broker.accounts.access import Requires, public_access, session_peer_access, signature_access
from broker.deps import current_token, current_user
from tests.support.accounts import make_user, require_password_change
from tests.support.api import bearer
from tests.support.route_table import broker_routes, fill

PASSWORD = "Matrix-test passphrase 7"
PUBLIC, PEER, SIGNED_IN, SIGNATURE = "public", "session peer", "signed in", "signed request"
FIRST_PASSWORD = "first password"
"""The identity of an admin whose password someone else set: refused all but setting up its account."""
ACCOUNT_SETUP_PATHS = frozenset({"/auth/me", "/auth/logout", "/auth/password"})
"""What such an account may still do: see who it is, sign out, change the password."""


def declared_access(route: RouteContext) -> str | None:
    """What the route declares: a permission name, PUBLIC, PEER, SIGNED_IN, SIGNATURE, or None."""
    found: set[str] = set()

    def walk(dependant: Dependant) -> None:
        for dependency in dependant.dependencies:
            call = dependency.call
            if isinstance(call, Requires):
                found.add(call.permission)
            elif call is public_access:
                found.add(PUBLIC)
            elif call is session_peer_access:
                found.add(PEER)
            elif call is signature_access:
                found.add(SIGNATURE)
            elif call in (current_user, current_token):
                found.add(SIGNED_IN)
            walk(dependency)

    walk(route.dependant)
    declared = found - {SIGNED_IN} or found
    assert len(declared) <= 1, f"{route.path} declares more than one kind of access: {declared}"
    return next(iter(declared), None)


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> list[RouteContext]:
    return broker_routes(tmp_path_factory.mktemp("routes-data"))


def test_every_route_declares_who_may_call_it(routes) -> None:
    undeclared = [f"{sorted(r.methods or ['WS'])} {r.path}" for r in routes if declared_access(r) is None]
    assert undeclared == [], "routes without a declared access (use broker.accounts.access): " + ", ".join(undeclared)


@pytest.fixture(scope="module")
def identities(broker) -> Iterator[dict[str, tuple[dict[str, str], frozenset[str]]]]:
    """name -> (headers, permissions): the built-in roles, a custom role, anonymous, a disabled
    account, and an admin that has not changed the password someone else set (FIRST_PASSWORD)."""
    admin = bearer(broker.login())
    roles = {r["name"]: frozenset(r["permissions"]) for r in broker.http.get("/roles", headers=admin).json()}
    custom = broker.http.post("/roles", headers=admin, json={"name": "ticket-reader", "permissions": ["tickets.read"]})
    assert custom.status_code == 201, custom.text
    roles["ticket-reader"] = frozenset(["tickets.read"])
    found: dict[str, tuple[dict[str, str], frozenset[str]]] = {
        "admin": (admin, roles["admin"]), "anonymous": ({}, frozenset()),
    }
    for role in ("technician", "auditor", "ticket-reader"):
        make_user(broker, f"m-{role}", role=role, password=PASSWORD)
        found[role] = (bearer(broker.login(f"m-{role}", PASSWORD)), roles[role])
    make_user(broker, "m-disabled", role="admin", password=PASSWORD)
    disabled = bearer(broker.login("m-disabled", PASSWORD))
    assert broker.http.patch("/users/m-disabled", headers=admin, json={"disabled": True}).status_code == 200
    found["disabled"] = (disabled, frozenset())
    made = broker.http.post("/users", headers=admin, json={
        "username": "m-first", "display_name": "first", "password": PASSWORD, "roles": ["admin"]})
    assert made.status_code == 201, made.text
    require_password_change(broker, "m-first")  # as POST /users left it; said here for the reader
    found[FIRST_PASSWORD] = (bearer(broker.login("m-first", PASSWORD)), roles["admin"])
    yield found


def test_each_identity_gets_what_each_route_declares(broker, routes, identities) -> None:
    problems = []
    for route in routes:
        if not isinstance(route.original_route, APIRoute) or not route.path.startswith("/api/v1"):
            continue
        access = declared_access(route)
        for method in sorted(route.methods - {"HEAD"}):
            path = fill(route.path)
            for name, (headers, permissions) in identities.items():
                if route.path.endswith("/auth/logout") and headers:
                    continue  # signing out would revoke the token the rest of the matrix uses
                response = broker.http.request(method, path, headers=headers, json={} if method in ("POST", "PUT", "PATCH") else None)
                status = response.status_code
                anonymous = name in ("anonymous", "disabled")
                held_back = name == FIRST_PASSWORD and access not in (PUBLIC, SIGNATURE, PEER) and \
                    route.path.removeprefix("/api/v1") not in ACCOUNT_SETUP_PATHS
                if held_back:
                    expected_ok = status == 403 and response.json().get("error") == "password_change_required"
                elif access == PUBLIC:
                    expected_ok = status not in (401, 403)
                elif access == SIGNATURE:
                    # Nobody here signs with an inbound source's secret: refused alike, signed in or not.
                    expected_ok = status == 401
                elif access == PEER:
                    # The token is checked inside, after the body: nobody here is a peer of a
                    # session that does not exist, so the answer is a refusal of some kind.
                    expected_ok = status in (401, 403, 404, 422) and (status != 403 or not anonymous)
                elif anonymous:
                    expected_ok = status == 401
                elif access == SIGNED_IN:
                    expected_ok = status not in (401, 403)
                else:
                    expected_ok = (status == 403) if access not in permissions else status not in (401, 403)
                if status >= 500 or not expected_ok:
                    problems.append(f"{method} {route.path} as {name} ({access}): {status} {response.text[:120]}")
    assert problems == [], "\n".join(problems)


def test_logout_is_for_signed_in_accounts_only(broker) -> None:
    assert broker.http.post("/auth/logout").status_code == 401
    token = broker.login()
    assert broker.http.post("/auth/logout", headers=bearer(token)).status_code == 204
    assert broker.http.get("/auth/me", headers=bearer(token)).status_code == 401
