"""An async client of the broker's API, for scripts and the ``deskhand-console`` CLI."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, overload

from pydantic import BaseModel, ValidationError

from peer.broker_client import BrokerClient
from peer.broker_errors import BrokerRefusal
from peer.landing import LandingFolder
from peer.transfers import ProgressHook, TransferClient, TransferError
from protocol.api import (
    API_PREFIX,
    CommentCreate,
    CommentOut,
    LoginRequest,
    LoginResponse,
    PasswordChange,
    PlaybackStarted,
    Priority,
    RecoveryCodes,
    SessionCreate,
    SessionEnd,
    SessionOut,
    SessionStarted,
    SessionState,
    SlaTargetIn,
    SlaTargetsOut,
    SlaTargetsUpdate,
    TicketCreate,
    TicketOut,
    TicketSummary,
    TicketUpdate,
    TotpConfirm,
    TotpDisable,
    TotpEnrollment,
    UserInfo,
)
from protocol.helpdesk import SlaFilter, TicketOrder, TicketStatus, Visibility
from protocol.requests import HelpRequestOut, HelpRequestPicked
from protocol.transfers import Direction, FileRequestState, TransferOut, TransferState

from .remote_view import FrameHook, RemoteView

T = TypeVar("T")


class ConsoleError(BrokerRefusal):
    """The broker refused a request, or could not be reached; ``message`` is for people."""


class TechConsole:
    """A technician's connection to one broker. Use as ``async with TechConsole(url) as tc:``.

    One pool of connections serves its calls and its file transfers, until :meth:`aclose`.
    """

    def __init__(self, broker_url: str, token: str | None = None, *, timeout: float = 15.0) -> None:
        self.broker_url = broker_url.rstrip("/")
        self._broker = BrokerClient(self.broker_url, token, timeout=timeout, hint="is it running, and is --broker right?")
        self.current_view: RemoteView | None = None

    @property
    def token(self) -> str | None:
        """The technician's token (set by :meth:`login`), sent with every call that needs one."""
        return self._broker.token

    @token.setter
    def token(self, token: str | None) -> None:
        self._broker.token = token

    async def __aenter__(self) -> TechConsole:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections to the broker."""
        await self._broker.aclose()

    # --- accounts ---------------------------------------------------------------

    async def login(
        self, username: str, password: str, *, totp_code: str | None = None, recovery_code: str | None = None
    ) -> LoginResponse:
        """Sign in; the token is kept for the following calls.

        An account with TOTP needs ``totp_code`` or ``recovery_code``; without one the
        broker answers ``totp_required`` (a :class:`ConsoleError` with that ``error``).
        """
        try:
            body = LoginRequest(username=username, password=password, totp_code=totp_code, recovery_code=recovery_code)
        except ValidationError as exc:
            raise ConsoleError(_first_problem(exc)) from None
        result = await self._call("POST", "/auth/login", LoginResponse, body, auth=False)
        self.token = result.access_token
        return result

    async def logout(self) -> None:
        await self._call("POST", "/auth/logout", None)
        self.token = None

    async def me(self) -> UserInfo:
        return await self._call("GET", "/auth/me", UserInfo)

    async def change_password(self, current: str, new: str) -> None:
        await self._call("POST", "/auth/password", None, PasswordChange(current_password=current, new_password=new))

    async def enroll_totp(self) -> TotpEnrollment:
        """Start TOTP enrolment: a new secret, in force once :meth:`confirm_totp` succeeds."""
        return await self._call("POST", "/auth/totp/enroll", TotpEnrollment)

    async def confirm_totp(self, code: str) -> RecoveryCodes:
        """Turn TOTP on with a code from the new secret; the recovery codes are shown only this once."""
        try:
            body = TotpConfirm(code=code)
        except ValidationError as exc:
            raise ConsoleError(_first_problem(exc)) from None
        return await self._call("POST", "/auth/totp/confirm", RecoveryCodes, body)

    async def disable_totp(self, password: str, code: str) -> None:
        """Turn TOTP off with the password and a current code or a recovery code."""
        try:
            body = TotpDisable(password=password, code=code)
        except ValidationError as exc:
            raise ConsoleError(_first_problem(exc)) from None
        await self._call("POST", "/auth/totp/disable", None, body)

    # --- tickets ----------------------------------------------------------------

    async def create_ticket(self, ticket: TicketCreate) -> TicketOut:
        return await self._call("POST", "/tickets", TicketOut, ticket)

    async def list_tickets(
        self,
        *,
        status: TicketStatus | str | Iterable[TicketStatus | str] | None = None,
        priority: Priority | str | Iterable[Priority | str] | None = None,
        assignee: str | None = None,
        team: str | None = None,
        category: str | None = None,
        sla: SlaFilter | str | None = None,
        q: str | None = None,
        external_system: str | None = None,
        external_key: str | None = None,
        order: TicketOrder | str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[TicketSummary]:
        """Tickets matching every filter given, newest first unless ``order`` says otherwise.

        ``status`` and ``priority`` take one value or several (any of them matches);
        ``assignee`` is a username, ``"me"`` or ``"none"`` (neither a technician nor a team);
        ``sla`` is ``breached``, ``at_risk`` or ``on_track``; ``q`` is text in the subject,
        requester name or e-mail; ``order`` is ``newest``, ``oldest``, ``due`` (soonest SLA
        breach first) or ``updated``. The broker refuses unknown values, naming the choices.
        """
        params: dict[str, Any] = {
            "status": _csv(status), "priority": _csv(priority), "assignee": assignee, "team": team,
            "category": category, "sla": _value(sla), "q": q, "external_system": external_system,
            "external_key": external_key, "order": _value(order), "limit": limit, "offset": offset,
        }
        return await self._call(
            "GET", "/tickets", list[TicketSummary], params={k: v for k, v in params.items() if v is not None}
        )

    async def get_ticket(self, ticket_id: int) -> TicketOut:
        return await self._call("GET", f"/tickets/{ticket_id}", TicketOut)

    async def update_ticket(self, ticket_id: int, changes: TicketUpdate | None = None, **fields: Any) -> TicketOut:
        """Change a ticket: only what is given changes (a :class:`TicketUpdate`, or its fields as keywords).

        ``assignee=None``, ``team=None`` or ``external=None`` given explicitly clears it; a
        field left out stays as it is. ``status`` must be one of the ticket's
        ``allowed_statuses``, else :class:`ConsoleError` with ``error`` ``transition_refused``.
        """
        if changes is None:
            try:
                changes = TicketUpdate(**fields)
            except ValidationError as exc:
                raise ConsoleError(_first_problem(exc)) from None
        elif fields:
            raise TypeError("give a TicketUpdate or keyword fields, not both")
        return await self._call("PATCH", f"/tickets/{ticket_id}", TicketOut, changes, only_set=True)

    async def add_comment(self, ticket_id: int, body: str, *, public: bool = False) -> CommentOut:
        """Add an internal note, or with ``public`` a reply to the requester (which is a first response)."""
        try:
            comment = CommentCreate(body=body, visibility=Visibility.public if public else Visibility.internal)
        except ValidationError as exc:
            raise ConsoleError(_first_problem(exc)) from None
        return await self._call("POST", f"/tickets/{ticket_id}/comments", CommentOut, comment)

    async def sla_targets(self) -> SlaTargetsOut:
        """The SLA targets per priority, the business hours they may count in, and the warning share."""
        return await self._call("GET", "/sla/targets", SlaTargetsOut)

    async def set_sla_targets(self, targets: Iterable[SlaTargetIn]) -> SlaTargetsOut:
        """Replace the targets of the priorities given (needs ``policies.manage``); open tickets keep theirs."""
        try:
            body = SlaTargetsUpdate(targets=list(targets))
        except ValidationError as exc:
            raise ConsoleError(_first_problem(exc)) from None
        return await self._call("PUT", "/sla/targets", SlaTargetsOut, body)

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
        return await self._wait_session(
            session_id, lambda s: s.state is SessionState.connected, timeout, poll,
            over="no host will join", late="no host joined",
        )

    async def wait_for_consent(self, session_id: str, timeout: float, poll: float = 0.5) -> SessionOut:
        """Poll until the user answered the consent prompt; raise if the session ends first."""
        return await self._wait_session(
            session_id, lambda s: s.consent is not None, timeout, poll,
            over="the user did not consent", late="the user did not answer the consent prompt",
        )

    async def _wait_session(
        self, session_id: str, done: Callable[[SessionOut], bool], timeout: float, poll: float, *, over: str, late: str
    ) -> SessionOut:
        deadline = time.monotonic() + timeout
        while True:
            session = await self.get_session(session_id)
            if done(session):
                return session
            if session.state in (SessionState.ended, SessionState.expired):
                raise ConsoleError(f"session {session_id} is {session.state.value}; {over}")
            if time.monotonic() >= deadline:
                raise ConsoleError(f"{late} in session {session_id} within {timeout:g} s")
            await asyncio.sleep(poll)

    # --- help requests (no code) ------------------------------------------------------

    async def list_requests(self, *, limit: int = 200) -> list[HelpRequestOut]:
        """The help requests waiting in the queue, next first."""
        return await self._call("GET", "/requests", list[HelpRequestOut], params={"limit": limit})

    async def pick_up(self, request_id: str) -> HelpRequestPicked:
        """Answer a waiting request: its session starts connected (the user still consents).

        Someone faster gets the request: :class:`ConsoleError` with ``error`` ``request_taken``.
        """
        return await self._call("POST", f"/requests/{request_id}/pickup", HelpRequestPicked)

    def view(self, session_id: str, *, on_frame: FrameHook | None = None) -> RemoteView:
        """The live view of a session (signalling + WebRTC); ``await view.start()`` to connect."""
        if self.token is None:
            raise ConsoleError("sign in first: deskhand-console login")
        self.current_view = RemoteView(self.broker_url, session_id, self.token, on_frame=on_frame)
        return self.current_view

    # --- auditing ----------------------------------------------------------------------

    async def audit_sessions(
        self, *, technician: str | None = None, ticket: int | None = None, host: str | None = None,
        since: datetime | None = None, until: datetime | None = None, limit: int = 100,
    ) -> list[SessionOut]:
        """Sessions, newest first, filtered by technician username, ticket, host name part and date."""
        params = {
            "technician": technician, "ticket": ticket, "host": host, "limit": limit,
            "since": since.isoformat() if since else None, "until": until.isoformat() if until else None,
        }
        return await self._call(
            "GET", "/audit/sessions", list[SessionOut], params={k: v for k, v in params.items() if v is not None}
        )

    async def audit_report(self, session_id: str) -> dict[str, Any]:
        """Participants, consent, chat, files, recording, timeline and integrity of one session."""
        return await self._call("GET", f"/audit/sessions/{session_id}/report", dict[str, Any])

    async def audit_verify(self) -> dict[str, Any]:
        """Have the broker verify its whole trail and every stored recording segment."""
        return await self._call("POST", "/audit/verify", dict[str, Any])

    async def start_playback(self, session_id: str) -> PlaybackStarted:
        """Start a playback of the session's recording (audited as ``recording.played``): its id
        and the address whose bytes (and byte ranges) it may fetch."""
        return await self._call("POST", f"/audit/sessions/{session_id}/playbacks", PlaybackStarted)

    async def save_recording(self, session_id: str, destination: Path, progress: ProgressHook | None = None) -> Path:
        """Download the session's recording as one WebM: one playback, audited when it starts."""
        playback = await self.start_playback(session_id)
        return await self._download("GET", f"/audit/sessions/{session_id}/recording", destination, progress,
                                    params={"playback": playback.playback_id})

    async def save_export(self, session_id: str, destination: Path, progress: ProgressHook | None = None) -> Path:
        """Download the session's bundle (audited), which ``deskhand-broker audit verify-bundle`` checks offline."""
        return await self._download("POST", f"/audit/sessions/{session_id}/export", destination, progress)

    async def save_heads(self, destination: Path, progress: ProgressHook | None = None) -> Path:
        """Download every chain's signed head, to keep outside the broker (``verify --heads``)."""
        return await self._download("GET", "/audit/heads", destination, progress)

    async def _download(
        self, method: str, path: str, destination: Path, progress: ProgressHook | None,
        params: dict[str, str] | None = None,
    ) -> Path:
        """Stream a response body into ``destination`` (through a ``.part`` file: never half a file)."""
        self._require_sign_in()
        partial = destination.with_name(destination.name + ".part")
        try:
            async with self._broker.stream(method, API_PREFIX + path, refusal=ConsoleError, params=params, timeout=300) as answer:
                total = answer.length or 0
                done = 0
                with partial.open("wb") as out:
                    async for piece in answer.chunks(1 << 20):
                        await asyncio.to_thread(out.write, piece)
                        done += len(piece)
                        if progress is not None:
                            progress(done, total or done)
            os.replace(partial, destination)
        except OSError as exc:
            raise ConsoleError(f"cannot write {destination}: {exc.strerror or exc}") from None
        finally:
            partial.unlink(missing_ok=True)
        return destination

    # --- files -------------------------------------------------------------------------

    def transfers(self, session_id: str) -> TransferClient:
        """The file-transfer API of a session (close it when done, or use ``async with``)."""
        if self.token is None:
            raise ConsoleError("sign in first: deskhand-console login")
        return TransferClient(self.broker_url, self.token, session_id, broker=self._broker)

    async def send_file(
        self, session_id: str, path: Path, *, progress: ProgressHook | None = None, accept_timeout: float = 300
    ) -> TransferOut:
        """Send ``path`` to the host; returns the completed transfer, or raises :class:`ConsoleError` saying why not."""
        try:
            size = path.stat().st_size
            if not path.is_file():
                raise ConsoleError(f"{path} is not a file")
        except OSError as exc:
            raise ConsoleError(f"cannot read {path}: {exc.strerror or exc}") from None
        async with self.transfers(session_id) as files:
            try:
                offered = await files.offer(path.name, size, Direction.to_host)
                decided = await files.wait(offered, lambda t: t.state is not TransferState.offered, accept_timeout)
                if decided.state is not TransferState.accepted:
                    raise ConsoleError(f"the host did not take {path.name}: {decided.reason or decided.state.value}")
                result = await files.send(decided, path, progress)
            except TransferError as error:
                raise ConsoleError(error.message, status=error.status, error=error.error) from None
        if result.state is not TransferState.completed:
            raise ConsoleError(f"{path.name} was not delivered: {result.reason or result.state.value}")
        return result

    async def fetch_file(
        self, session_id: str, remote_path: str, destination: Path, *, note: str = "",
        progress: ProgressHook | None = None, answer_timeout: float = 600,
    ) -> Path:
        """Ask the host for a file (the user picks or approves it) and save it in ``destination``.

        Returns where the file was saved; never overwrites an existing file.
        """
        landing = LandingFolder(destination)
        async with self.transfers(session_id) as files:
            try:
                request = await files.request_file(remote_path, note)
                offered = await self._answered(files, request.id, answer_timeout)
                reason = landing.refusal(offered.name, offered.size)
                if reason is not None:
                    await files.decide(offered.id, False, reason=reason)
                    raise ConsoleError(f"cannot take {offered.name}: {reason}")
                saved_as = landing.choose_name(offered.name)
                accepted = await files.decide(offered.id, True, saved_as=saved_as)
                received = await files.receive(accepted, landing, saved_as, progress)
            except TransferError as error:
                raise ConsoleError(error.message, status=error.status, error=error.error) from None
            if received.path is None:
                result = received.transfer
                raise ConsoleError(f"the file was not delivered: {result.reason or result.state.value}")
            return received.path

    @staticmethod
    async def _answered(files: TransferClient, request_id: str, timeout: float) -> TransferOut:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            request = next(r for r in await files.file_requests() if r.id == request_id)
            if request.state is FileRequestState.refused:
                raise ConsoleError(f"the host declined the file request: {request.reason}")
            if request.transfer_id is not None:
                return await files.get(request.transfer_id)
            await asyncio.sleep(0.3)
        raise ConsoleError(f"the host did not answer the file request within {timeout:g} s")

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

    def _require_sign_in(self) -> None:
        if self.token is None:
            raise ConsoleError("sign in first: deskhand-console login", status=401)

    @overload
    async def _call(
        self, method: str, path: str, result: None, body: BaseModel | None = None, *,
        params: dict[str, Any] | None = None, auth: bool = True, only_set: bool = False,
    ) -> None: ...
    @overload
    async def _call(
        self, method: str, path: str, result: type[T], body: BaseModel | None = None, *,
        params: dict[str, Any] | None = None, auth: bool = True, only_set: bool = False,
    ) -> T: ...

    async def _call(
        self,
        method: str,
        path: str,
        result: type[T] | None,
        body: BaseModel | None = None,
        *,
        params: dict[str, Any] | None = None,
        auth: bool = True,
        only_set: bool = False,
    ) -> T | None:
        """A call to ``API_PREFIX + path``; ``only_set``: send only the body's fields that were set (a PATCH,
        where absent and null differ)."""
        if auth:
            self._require_sign_in()
        return await self._broker.call(
            method, API_PREFIX + path, result, refusal=ConsoleError, body=body, exclude_unset=only_set, params=params, auth=auth,
        )


def _value(choice: str | None) -> str | None:
    """An enum member's value (or the text as given)."""
    return getattr(choice, "value", choice)


def _csv(choices: str | Iterable[str] | None) -> str | None:
    """One value or several as the comma-separated query value the broker reads; None for none."""
    if choices is None or isinstance(choices, str):
        return _value(choices) or None
    joined = ",".join(str(_value(c)) for c in choices)
    return joined or None


def _first_problem(exc: ValidationError) -> str:
    """The sentence of the first validation error, without pydantic's decoration."""
    error = exc.errors()[0]
    return str(error["msg"]).removeprefix("Value error, ")
