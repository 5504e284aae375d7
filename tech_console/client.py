"""An async client of the broker's API, for scripts and the ``deskhand-console`` CLI."""

from __future__ import annotations

import asyncio
import time
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from protocol.api import (
    API_PREFIX,
    ErrorBody,
    LoginRequest,
    LoginResponse,
    PasswordChange,
    SessionCreate,
    SessionEnd,
    SessionOut,
    SessionStarted,
    SessionState,
    TicketCreate,
    TicketOut,
    TicketSummary,
    UserInfo,
    signalling_path,
)

from .remote_view import FrameHook, RemoteView

T = TypeVar("T")


class ConsoleError(Exception):
    """The broker refused a request, or could not be reached; ``message`` is for people."""

    def __init__(self, message: str, *, status: int | None = None, error: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error = error


class TechConsole:
    """A technician's connection to one broker. Use as ``async with TechConsole(url) as tc:``."""

    def __init__(self, broker_url: str, token: str | None = None, *, timeout: float = 15.0) -> None:
        self.broker_url = broker_url.rstrip("/")
        self.token = token
        self._http = httpx.AsyncClient(base_url=self.broker_url + API_PREFIX, timeout=timeout)
        self.current_view: RemoteView | None = None

    async def __aenter__(self) -> "TechConsole":
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- accounts ---------------------------------------------------------------

    async def login(self, username: str, password: str) -> LoginResponse:
        """Sign in; the token is kept for the following calls."""
        result = await self._call(
            "POST", "/auth/login", LoginResponse, LoginRequest(username=username, password=password),
            auth=False,
        )
        self.token = result.access_token
        return result

    async def logout(self) -> None:
        await self._call("POST", "/auth/logout", None)
        self.token = None

    async def me(self) -> UserInfo:
        return await self._call("GET", "/auth/me", UserInfo)

    async def change_password(self, current: str, new: str) -> None:
        await self._call("POST", "/auth/password", None, PasswordChange(current_password=current, new_password=new))

    # --- tickets ----------------------------------------------------------------

    async def create_ticket(self, ticket: TicketCreate) -> TicketOut:
        return await self._call("POST", "/tickets", TicketOut, ticket)

    async def list_tickets(self, *, status: str | None = None, limit: int = 100) -> list[TicketSummary]:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        return await self._call("GET", "/tickets", list[TicketSummary], params=params)

    async def get_ticket(self, ticket_id: int) -> TicketOut:
        return await self._call("GET", f"/tickets/{ticket_id}", TicketOut)

    # --- sessions ---------------------------------------------------------------

    async def start_session(self, ticket_id: int) -> SessionStarted:
        """Start a session on a ticket; the answer holds the code, shown only this once."""
        return await self._call("POST", "/sessions", SessionStarted, SessionCreate(ticket_id=ticket_id))

    async def get_session(self, session_id: str) -> SessionOut:
        return await self._call("GET", f"/sessions/{session_id}", SessionOut)

    async def end_session(self, session_id: str, reason: str = "") -> SessionOut:
        return await self._call("POST", f"/sessions/{session_id}/end", SessionOut, SessionEnd(reason=reason))

    async def wait_for_host(self, session_id: str, timeout: float, poll: float = 0.5) -> SessionOut:
        """Poll until a host joined (state ``connected``); raise if the session ends first."""
        deadline = time.monotonic() + timeout
        while True:
            session = await self.get_session(session_id)
            if session.state is SessionState.connected:
                return session
            if session.state in (SessionState.ended, SessionState.expired):
                raise ConsoleError(f"session {session_id} is {session.state.value}; no host will join")
            if time.monotonic() >= deadline:
                raise ConsoleError(f"no host joined session {session_id} within {timeout:g} s")
            await asyncio.sleep(poll)

    def view(self, session_id: str, *, on_frame: FrameHook | None = None) -> RemoteView:
        """The live view of a session (signalling + WebRTC); ``await view.start()`` to connect."""
        if self.token is None:
            raise ConsoleError("sign in first: deskhand-console login")
        self.current_view = RemoteView(self.broker_url, signalling_path(session_id), self.token, on_frame=on_frame)
        return self.current_view

    # --- remote control, on the view opened last -------------------------------------------

    def _live(self) -> RemoteView:
        if self.current_view is None:
            raise ConsoleError("open a session first: view = tc.view(session_id); await view.start()")
        return self.current_view

    def move(self, x: float, y: float) -> int:
        """Move the remote pointer to (x, y), normalised to the selected monitor (0..1)."""
        return self._live().move(x, y)

    def click(self, x: float, y: float, button: str = "left") -> int:
        """Click ``button`` (left, middle, right) at (x, y)."""
        return self._live().click(x, y, button)

    def type_text(self, text: str) -> int:
        """Type ``text`` on the host, whatever its keyboard layout."""
        return self._live().type_text(text)

    def key(self, code: str, key: str = "", *, down: bool | None = None) -> int:
        """Press and release a key by W3C ``code`` (``Enter``, ``KeyA``); ``down`` sends one transition only."""
        if down is None:
            return self._live().press_key(code, key)
        return self._live().key(code, key, down=down)

    def send_chat(self, text: str) -> None:
        self._live().send_chat(text)

    def set_clipboard(self, text: str) -> None:
        """Put ``text`` on the host's clipboard."""
        self._live().set_clipboard(text)

    def select_monitor(self, index: int) -> None:
        """Stream (and aim input at) the host's monitor ``index``, counted from 1."""
        self._live().select_monitor(index)

    # --- plumbing ---------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        result: Any,
        body: BaseModel | None = None,
        *,
        params: dict[str, Any] | None = None,
        auth: bool = True,
    ) -> Any:
        headers = {}
        if auth:
            if self.token is None:
                raise ConsoleError("sign in first: deskhand-console login", status=401)
            headers["Authorization"] = f"Bearer {self.token}"
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = body.model_dump_json()
        try:
            response = await self._http.request(method, path, headers=headers, content=content, params=params)
        except httpx.HTTPError as exc:
            raise ConsoleError(
                f"cannot reach the broker at {self.broker_url} ({exc.__class__.__name__}: {exc}); "
                "is it running, and is --broker right?"
            ) from None
        if response.status_code >= 400:
            raise _error(response)
        if result is None:
            return None
        try:
            return TypeAdapter(result).validate_json(response.content)
        except ValidationError as exc:
            raise ConsoleError(f"unexpected answer from the broker for {method} {path}: {exc}") from None


def _error(response: httpx.Response) -> ConsoleError:
    try:
        body = ErrorBody.model_validate_json(response.content)
        return ConsoleError(body.message, status=response.status_code, error=body.error)
    except ValidationError:
        return ConsoleError(f"the broker answered HTTP {response.status_code}", status=response.status_code)
