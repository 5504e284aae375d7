"""Redeeming a support code at the broker, and the host's other calls to it."""

from __future__ import annotations

import asyncio
import getpass
import platform
import socket
import time
from typing import Any

import httpx
from pydantic import BaseModel, ValidationError

from peer.broker_errors import BrokerRefusal, refusal_from
from peer.transport import tls_context
from protocol.api import API_PREFIX, JoinRequest, JoinResponse


class JoinRefused(BrokerRefusal):
    """The broker would not let this host join; ``message`` is for the user."""


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
    refused = refusal_from(JoinRefused, response.status_code, response.content, response.headers.get("retry-after"))
    if refused.status not in (429, 503):
        raise JoinRefused(refused.message, status=refused.status, error=refused.error)
    wait = None if refused.retry_after is None else min(refused.retry_after, BUSY_RETRY_SECONDS)
    raise JoinRefused(f"{refused.message} (Retry-After: {response.headers.get('retry-after', '?')} s)",
                      status=refused.status, error=refused.error, retry_after=wait)
