"""Who may call a route, declared on the route itself.

Every API route declares exactly one kind of access, so that a route nobody
thought about cannot slip through (``tests/integration/test_authorization_matrix.py``
walks the route table and fails on a route without a declaration):

* :func:`requires` a permission of the signed-in account's roles;
* :data:`SignedIn`: any signed-in, enabled account (its own profile, signing out);
* :data:`SessionPeerAccess`: one of a session's two peers, checked inside the
  route against its login or host token (``broker.sessions.peers.identify_peer``);
* :data:`PublicAccess`: anyone (signing in, joining with a code, health);
* :data:`SignatureAccess`: an external system that signs the request with its
  shared secret, checked inside the route (the inbound webhook, ``broker.integrations.inbound``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from broker.deps import CurrentUser
from broker.refusals import Forbidden
from broker.storage.models import User
from protocol.permissions import ROLE_PERMISSION_NAMES


class Requires:
    """Dependency: the current user, if one of their roles grants ``permission``."""

    def __init__(self, permission: str) -> None:
        if permission not in ROLE_PERMISSION_NAMES:
            raise ValueError(f"unknown permission {permission!r}")
        self.permission = permission

    async def __call__(self, user: CurrentUser) -> User:
        if self.permission not in user.permissions:
            raise Forbidden(
                "forbidden",
                f"this needs the {self.permission!r} permission, which none of your roles grants; ask an admin",
            )
        return user

    def __repr__(self) -> str:
        return f"Requires({self.permission!r})"


_REQUIREMENTS: dict[str, Requires] = {name: Requires(name) for name in ROLE_PERMISSION_NAMES}


def requires(permission: str) -> object:
    """``user: Annotated[User, requires("tickets.read")]`` on a route."""
    return Depends(_REQUIREMENTS[permission])


async def public_access() -> None:
    """Marker: the route is open to anyone."""


async def session_peer_access() -> None:
    """Marker: the route checks the session peer's token itself."""


async def signature_access() -> None:
    """Marker: the route checks the request's HMAC signature itself (``broker.integrations.inbound.authenticate``)."""


PublicAccess = Depends(public_access)
SignatureAccess = Depends(signature_access)
SessionPeerAccess = Depends(session_peer_access)
SignedIn = CurrentUser

TicketReader = Annotated[User, requires("tickets.read")]
TicketWriter = Annotated[User, requires("tickets.write")]
SessionStarter = Annotated[User, requires("session.start")]
AuditReader = Annotated[User, requires("audit.read")]
AuditExporter = Annotated[User, requires("audit.export")]
RecordingViewer = Annotated[User, requires("recordings.view")]
UserManager = Annotated[User, requires("users.manage")]
RoleManager = Annotated[User, requires("roles.manage")]
PolicyManager = Annotated[User, requires("policies.manage")]
TicketAssigner = Annotated[User, requires("tickets.assign")]
ReportReader = Annotated[User, requires("reports.read")]
IntegrationManager = Annotated[User, requires("integrations.manage")]
