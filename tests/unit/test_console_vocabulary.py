"""The browser console's lists of ticket statuses, priorities and permission names are the
broker's, in the broker's order: a name missing from the console cannot be chosen there, and
a role's permission the admin page does not list would be dropped when the role is saved."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from protocol.api import Priority
from protocol.helpdesk import TicketStatus
from protocol.permissions import ROLE_PERMISSION_NAMES, AccountPermission, Permission

PAGES = Path(__file__).resolve().parents[2] / "tech_console" / "web" / "js" / "pages"


def exported_list(module: str, name: str) -> list[str]:
    """The string array ``export const <name> = [...]`` of a console module."""
    source = (PAGES / module).read_text()
    found = re.search(rf"^export const {name} = (\[[^\]]*\]);", source, re.MULTILINE)
    assert found, f"{module} no longer exports {name} as a list of names"
    return json.loads(re.sub(r",\s*\]$", "]", found.group(1)))


@pytest.mark.parametrize(("module", "name", "names"), [
    ("ticket_common.js", "STATUSES", [s.value for s in TicketStatus]),
    ("ticket_common.js", "PRIORITIES", [p.value for p in Priority]),
    ("admin_common.js", "SESSION_PERMISSIONS", [p.value for p in Permission]),
    ("admin_common.js", "ACCOUNT_PERMISSIONS", [p.value for p in AccountPermission]),
])
def test_the_console_lists_the_brokers_names(module: str, name: str, names: list[str]) -> None:
    assert exported_list(module, name) == names


def test_a_role_can_be_given_every_permission_the_broker_knows() -> None:
    source = (PAGES / "admin_common.js").read_text()
    assert "export const ROLE_PERMISSIONS = [...ACCOUNT_PERMISSIONS, ...SESSION_PERMISSIONS];" in source
    assert [*exported_list("admin_common.js", "ACCOUNT_PERMISSIONS"),
            *exported_list("admin_common.js", "SESSION_PERMISSIONS")] == list(ROLE_PERMISSION_NAMES)
