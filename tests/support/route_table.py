"""The broker's route table, read from an app built in-process (no server runs), and paths to call.

    routes = broker_routes(tmp_path)                  # every HTTP and WebSocket route
    fill(route.path, {**NOWHERE, "session_id": sid})  # "/sessions/<sid>/transfers/<uuid>"
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from pathlib import Path

from fastapi.routing import APIRoute, APIWebSocketRoute, RouteContext, iter_route_contexts

from broker.app import create_app
from broker.settings import Settings
from broker.state import build_state

NOWHERE = {"session_id": str(uuid.uuid4()), "transfer_id": str(uuid.uuid4()), "request_id": str(uuid.uuid4()),
           "ticket_id": "987654", "index": "0", "username": "nobody-here", "name": "nobody-here",
           "delivery_id": str(uuid.uuid4()), "system": "nobody-here", "platform": "nobody-here"}
"""A value for each path parameter of the API that names nothing that exists."""


def broker_routes(data_dir: Path) -> list[RouteContext]:
    """Every HTTP and WebSocket route of the app, with the dependencies its routers add."""
    app = create_app(build_state(Settings(data_dir=data_dir)))
    found = [r for r in iter_route_contexts(app.routes) if isinstance(r.original_route, (APIRoute, APIWebSocketRoute))]
    assert len(found) > 40, "the route table was not read"
    return found


def fill(path: str, values: Mapping[str, str] = NOWHERE) -> str:
    """``path`` with its parameters filled from ``values``, relative to ``/api/v1``."""
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path).removeprefix("/api/v1")
