"""Redeeming a support code at the broker, and the host's other calls to it."""

from __future__ import annotations

import asyncio
import getpass
import platform
import socket
import time
from typing import Any, TypeVar, overload

from peer.broker_client import BrokerClient
from peer.broker_errors import BrokerRefusal
from protocol.api import API_PREFIX, JoinRequest, JoinResponse

T = TypeVar("T")


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


def host_broker(broker_url: str, token: str | None = None, *, timeout: float = 15.0) -> BrokerClient:
    """A client of the broker for the host's calls: unreachable, it tells the user to check the address."""
    return BrokerClient(broker_url, token, timeout=timeout, hint="check the address your technician or help desk gave you")


async def join_session(broker_url: str, code: str, *, timeout: float = 15.0) -> JoinResponse:
    """Redeem ``code``; raises :class:`JoinRefused` with a sentence for the user.

    A busy broker (``503``: the code was not looked at) is asked again after the
    ``Retry-After`` it gives, for up to :data:`BUSY_RETRY_SECONDS`.
    """
    machine_name, os_name, user_name = machine_description()
    body = JoinRequest(code=code, machine_name=machine_name, os=os_name, user_name=user_name)
    deadline = time.monotonic() + BUSY_RETRY_SECONDS
    async with host_broker(broker_url, timeout=timeout) as broker:
        while True:
            try:
                return await call_broker(broker, "POST", API_PREFIX + "/join", JoinResponse, body=body)
            except JoinRefused as refused:
                wait = refused.retry_after
                if refused.status != 503 or wait is None or time.monotonic() + wait > deadline:
                    raise
                await asyncio.sleep(wait)


@overload
async def call_broker(broker: BrokerClient, method: str, path: str, result: None, **options: Any) -> None: ...
@overload
async def call_broker(broker: BrokerClient, method: str, path: str, result: type[T], **options: Any) -> T: ...


async def call_broker(broker: BrokerClient, method: str, path: str, result: type[T] | None, **options: Any) -> T | None:
    """One request of the host (``options`` as :meth:`BrokerClient.send`); the answer parsed as ``result``, or
    :class:`JoinRefused` with the broker's sentence (``status`` None when the broker could not be reached).

    A busy broker's refusal (429, 503) says how long it asked to wait, at most :data:`BUSY_RETRY_SECONDS`.
    """
    try:
        return await broker.call(method, path, result, refusal=JoinRefused, **options)
    except JoinRefused as refused:
        if refused.status not in (429, 503):
            raise JoinRefused(refused.message, status=refused.status, error=refused.error) from None
        wait = None if refused.retry_after is None else min(refused.retry_after, BUSY_RETRY_SECONDS)
        said = "?" if refused.retry_after is None else f"{refused.retry_after:g}"
        raise JoinRefused(f"{refused.message} (Retry-After: {said} s)",
                          status=refused.status, error=refused.error, retry_after=wait) from None
