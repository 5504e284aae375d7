"""What a technician may do in a session, by name.

The same names appear in the broker's signed grant, in the end user's consent
and in every refusal, so a person reading any of them sees one vocabulary.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable


class Permission(str, enum.Enum):
    view = "view"
    control = "control"
    clipboard = "clipboard"
    chat = "chat"
    files_send = "files.send"
    files_receive = "files.receive"

    @property
    def question(self) -> str:
        """How the consent prompt asks for it, after "Allow <technician> to ..."."""
        return _QUESTIONS[self]


_QUESTIONS = {
    Permission.view: "see your screen",
    Permission.control: "control your mouse and keyboard",
    Permission.clipboard: "read and set your clipboard text",
    Permission.chat: "chat with you",
    Permission.files_send: "send files to your computer",
    Permission.files_receive: "ask for files from your computer",
}

ALL_PERMISSIONS: frozenset[Permission] = frozenset(Permission)

PERMISSION_ORDER: tuple[Permission, ...] = tuple(Permission)
"""The order in which prompts and reports list permissions."""


class PermissionListError(ValueError):
    """A permission list names something that is not a permission."""


def parse_permissions(text: str) -> frozenset[Permission]:
    """``"view,control"`` to a set; empty text is the empty set; unknown names are refused."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in {p.value for p in Permission}]
    if unknown:
        raise PermissionListError(
            f"unknown permission {unknown[0]!r}; choose from {', '.join(p.value for p in PERMISSION_ORDER)}"
        )
    return frozenset(Permission(n) for n in names)


def ordered(permissions: Iterable[Permission]) -> list[Permission]:
    """The permissions in :data:`PERMISSION_ORDER`, each once."""
    chosen = set(permissions)
    return [p for p in PERMISSION_ORDER if p in chosen]


def describe(permissions: Iterable[Permission]) -> str:
    names = [p.value for p in ordered(permissions)]
    return ", ".join(names) if names else "nothing"


class AccountPermission(str, enum.Enum):
    """What an account may do at the broker, granted through its roles.

    Session permissions (:class:`Permission`) are account permissions too: a
    role that lacks ``control`` yields grants without it, whatever the console asks.
    """

    session_start = "session.start"
    tickets_read = "tickets.read"
    tickets_write = "tickets.write"
    tickets_assign = "tickets.assign"
    recordings_view = "recordings.view"
    audit_read = "audit.read"
    audit_export = "audit.export"
    users_manage = "users.manage"
    roles_manage = "roles.manage"
    policies_manage = "policies.manage"
    reports_read = "reports.read"
    integrations_manage = "integrations.manage"


ROLE_PERMISSION_NAMES: tuple[str, ...] = tuple(p.value for p in AccountPermission) + tuple(p.value for p in Permission)
"""Every name a role may carry, in the order admin screens list them."""


def parse_role_permissions(names: Iterable[str]) -> list[str]:
    """Validate the permission names of a role; unknown names are refused, duplicates dropped."""
    chosen = []
    for name in names:
        if name not in ROLE_PERMISSION_NAMES:
            raise PermissionListError(f"unknown permission {name!r}; choose from {', '.join(ROLE_PERMISSION_NAMES)}")
        if name not in chosen:
            chosen.append(name)
    return [n for n in ROLE_PERMISSION_NAMES if n in chosen]
