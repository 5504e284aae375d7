"""Redeeming a support code at the broker."""

from __future__ import annotations

import getpass
import platform
import socket

import httpx
from pydantic import ValidationError

from protocol.api import API_PREFIX, ErrorBody, JoinRequest, JoinResponse
from protocol.transport import tls_context


class JoinRefused(Exception):
    """The broker would not let this host join; ``message`` is for the user."""

    def __init__(self, message: str, *, status: int | None = None, error: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error = error


def machine_description() -> tuple[str, str, str]:
    """This machine's name, operating system and user, as shown to the technician."""
    name = (socket.gethostname() or "unknown")[:253]
    system = f"{platform.system()} {platform.release()}".strip() or "unknown"
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name is not fatal
        user = "unknown"
    return name, system[:128], user[:256]


async def join_session(broker_url: str, code: str, *, timeout: float = 15.0) -> JoinResponse:
    """Redeem ``code``; raises :class:`JoinRefused` with a sentence for the user."""
    machine_name, os_name, user_name = machine_description()
    body = JoinRequest(code=code, machine_name=machine_name, os=os_name, user_name=user_name)
    url = broker_url.rstrip("/") + API_PREFIX + "/join"
    try:
        async with httpx.AsyncClient(timeout=timeout, verify=tls_context()) as client:
            response = await client.post(url, content=body.model_dump_json(), headers={"content-type": "application/json"})
    except httpx.HTTPError as exc:
        raise JoinRefused(
            f"cannot reach the broker at {broker_url} ({exc.__class__.__name__}: {exc}); "
            "check the address your technician gave you"
        ) from None
    if response.status_code == 200:
        try:
            return JoinResponse.model_validate_json(response.content)
        except ValidationError:
            raise JoinRefused(f"{broker_url} answered with something that is not a Deskhand broker") from None
    try:
        error = ErrorBody.model_validate_json(response.content)
        message, code_name = error.message, error.error
    except ValidationError:
        message, code_name = f"the broker answered HTTP {response.status_code}", None
    if response.status_code == 429:
        message += f" (Retry-After: {response.headers.get('retry-after', '?')} s)"
    raise JoinRefused(message, status=response.status_code, error=code_name)
