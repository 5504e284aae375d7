"""How the packages may depend on each other: a route module is a leaf, the wire is pure (issue 17).

What two routes share lives in a module of its own (``broker/serializers.py``, the rules'
modules), so a route can be read, moved or removed without another one changing."""

from __future__ import annotations

import ast
import sys
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


def test_protocol_imports_only_pydantic_and_the_standard_library() -> None:
    # The wire is shared by broker and clients: no cryptography, TLS state or I/O libraries in it
    # (signing is the broker's, checking signatures and TLS trust the clients').
    allowed = set(sys.stdlib_module_names) | {"pydantic", "protocol", "__future__"}
    # The exceptions: a repeated or continued recording segment's bytes are part of what host and
    # broker exchange, and both must make them with the same muxer (PyAV, a dependency of both).
    also_allowed = {"segment_repeat.py": {"av"}, "segment_continuation.py": {"av"}}
    protocol = ROUTES.parent.parent / "protocol"
    found = {}
    for path in protocol.glob("*.py"):
        outside = ({m.split(".")[0] for m in imported_modules(path) if not m.startswith(".")}
                   - allowed - also_allowed.get(path.name, set()))
        if outside:
            found[path.name] = sorted(outside)
    assert found == {}


def test_only_the_application_gathers_the_routes() -> None:
    broker = ROUTES.parent
    gatherers = sorted(
        str(path.relative_to(broker))
        for path in broker.rglob("*.py")
        if ROUTES not in path.parents and "migrations" not in path.parts
        and any(m.startswith("broker.routes") for m in imported_modules(path))
    )
    assert gatherers == ["app.py"]


def test_every_broker_folder_and_top_module_is_in_the_architecture_doc() -> None:
    # The broker is read folder by folder (docs/architecture.md): a new folder or a new module at
    # the top must be placed there too, or a reader will not find it.
    broker = ROUTES.parent
    doc = (broker.parent / "docs" / "architecture.md").read_text()
    table = doc.split("### The broker, folder by folder", 1)[1].split("\n\n", 3)[2]
    rows = {line.split("|")[1].strip(): line.split("|")[2] for line in table.splitlines()[2:]}
    folders = {f"`{p.name}/`" for p in broker.iterdir() if (p / "__init__.py").exists()}
    assert folders <= set(rows), sorted(folders - set(rows))
    top = {p.name for p in broker.glob("*.py") if p.name != "__init__.py"}
    assert {name for name in top if f"`{name}`" not in rows["`broker/` (top)"]} == set()
