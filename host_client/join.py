"""Redeeming a support code at the broker, and the host's other calls to it."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import platform
import socket
import time
from typing import Any

import httpx
from pydantic import BaseModel, ValidationError

from peer.transport import tls_context
from protocol.api import API_PREFIX, ErrorBody, JoinRequest, JoinResponse


class JoinRefused(Exception):
    """The broker would not let this host join; ``message`` is for the user."""

    def __init__(
        self, message: str, *, status: int | None = None, error: str | None = None, retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error = error
        self.retry_after = retry_after
        """Seconds the broker asked to wait before asking again (``Retry-After``), if it said."""


def machine_description() -> tuple[str, str, str]:
    """This machine's name, operating system and user, as shown to the technician."""
    name = (socket.gethostname() or "unknown")[:253]
    system = f"{platform.system()} {platform.release()}".strip() or "unknown"
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name is not fatal
        user = "unknown"
    return name, system[:128], user[:256]


BUSY_RETRY_SECONDS = 60.0
"""How long a join keeps asking a busy broker (``503`` with ``Retry-After``) before it gives up."""


async def join_session(broker_url: str, code: str, *, timeout: float = 15.0) -> JoinResponse:
    """Redeem ``code``; raises :class:`JoinRefused` with a sentence for the user.

    A busy broker (``503``: the code was not looked at) is asked again after the
    ``Retry-After`` it gives, for up to :data:`BUSY_RETRY_SECONDS`.
    """
    machine_name, os_name, user_name = machine_description()
    body = JoinRequest(code=code, machine_name=machine_name, os=os_name, user_name=user_name)
    deadline = time.monotonic() + BUSY_RETRY_SECONDS
    async with httpx.AsyncClient(base_url=broker_url.rstrip("/"), timeout=timeout, verify=tls_context()) as client:
        while True:
            try:
                joined: JoinResponse = await call_broker(
                    client, broker_url, "POST", API_PREFIX + "/join", JoinResponse,
                    content=body.model_dump_json(), headers={"content-type": "application/json"},
                )
                return joined
            except JoinRefused as refused:
                wait = refused.retry_after
                if refused.status != 503 or wait is None or time.monotonic() + wait > deadline:
                    raise
                await asyncio.sleep(wait)


async def call_broker(
    http: httpx.AsyncClient, broker_url: str, method: str, path: str, result: type[BaseModel] | None, **kwargs: Any
) -> Any:
    """One request; the answer parsed as ``result``, or :class:`JoinRefused` with the broker's sentence
    (``status`` None when the broker could not be reached)."""
    try:
        response = await http.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        raise JoinRefused(
            f"cannot reach the broker at {broker_url} ({exc.__class__.__name__}: {exc}); "
            "check the address your technician or help desk gave you"
        ) from None
    if response.status_code < 400:
        if result is None:
            return None
        try:
            return result.model_validate_json(response.content)
        except ValidationError:
            raise JoinRefused(f"{broker_url} answered with something that is not a Deskhand broker") from None
    try:
        error = ErrorBody.model_validate_json(response.content)
        message, code = error.message, error.error
    except ValidationError:
        message, code = f"the broker answered HTTP {response.status_code}", None
    retry_after = None
    if response.status_code in (429, 503):
        message += f" (Retry-After: {response.headers.get('retry-after', '?')} s)"
        with contextlib.suppress(ValueError):
            retry_after = min(max(float(response.headers.get("retry-after", "")), 0.0), BUSY_RETRY_SECONDS)
    raise JoinRefused(message, status=response.status_code, error=code, retry_after=retry_after)
