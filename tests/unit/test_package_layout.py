"""How the broker's modules may depend on each other: a route module is a leaf (issue 17).

What two routes share lives in a module of its own (``broker/serializers.py``, the rules'
modules), so a route can be read, moved or removed without another one changing."""

from __future__ import annotations

import ast
from pathlib import Path

ROUTES = Path(__file__).resolve().parents[2] / "broker" / "routes"


def imported_modules(path: Path) -> list[str]:
    """The modules ``path`` imports, relative ones written as they appear (``.join``, ``..deps``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            found.append("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return found


def test_no_route_module_imports_another() -> None:
    routes = {p.stem for p in ROUTES.glob("*.py") if p.stem != "__init__"}
    assert len(routes) > 10
    offenders = {}
    for path in ROUTES.glob("*.py"):
        mine = [m for m in imported_modules(path)
                if (m.startswith(".") and not m.startswith("..")) or m.startswith("broker.routes")]
        if mine:
            offenders[path.name] = mine
    assert offenders == {}
