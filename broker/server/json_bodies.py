"""JSON request bodies from peers, judged by their nesting before they are parsed.

FastAPI parses a route's JSON body before any dependency runs, with Python's
recursive parser: a body of a few thousand nested brackets ends in a
``RecursionError`` that FastAPI turns into a vague 400, and valid JSON a
few hundred levels deep reaches the route. :class:`BoundedJsonRoute` scans the
raw body first (:func:`protocol.frames.nesting_depth`, the scan every signalling
frame and data-channel message passes) and refuses one nested deeper than any
request of ours with ``422 too_deep``, in the one error shape.

The routers that peers call (a host token, a technician as a session's peer,
anyone joining or asking for help) use it: ``APIRouter(route_class=BoundedJsonRoute)``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response, params
from fastapi.routing import APIRoute

from broker.errors import ApiError
from protocol.frames import MAX_MESSAGE_DEPTH, MessageError, check_nesting


class BoundedJsonRoute(APIRoute):
    """An API route whose JSON body may nest at most :data:`~protocol.frames.MAX_MESSAGE_DEPTH` levels."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None or isinstance(self.body_field.field_info, params.Form):
            return handler

        async def bounded(request: Request) -> Response:
            try:
                # Starlette keeps the body it read: the handler parses these same bytes.
                check_nesting(await request.body(), MAX_MESSAGE_DEPTH, "the request body")
            except MessageError as refused:
                raise ApiError(422, refused.code.value, refused.message) from None
            return await handler(request)

        return bounded
