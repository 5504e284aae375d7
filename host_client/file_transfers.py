"""The host's side of file transfers: accepting files, answering file requests, resuming.

Incoming files are accepted only while the broker's grant and the user's
consent allow ``files.send``, and only if they fit (size limit, free space);
they land in the session's :class:`~host_client.files.LandingFolder`. A file
request is answered by the user (window or terminal), or, when consent was
given with ``--consent``, by sending the suggested file if it exists. Every
running transfer reports progress to the UI and can be cancelled from there.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peer.background import BackgroundTasks
from peer.landing import LandingFolder
from peer.transfer_rate import TransferRate
from peer.transfers import TransferClient, TransferError
from protocol.permissions import Permission
from protocol.transfers import (
    Direction,
    FileRequestOut,
    FileRequestState,
    TransferOut,
    TransferState,
)

from .authority import Authority
from .files import readable_file
from .state import SavedSession
from .ui import HostUI

log = logging.getLogger(__name__)

UPDATE_INTERVAL = 0.25
"""Seconds between progress updates to the UI."""


@dataclass
class ProgressMeter:
    """When to tell the UI how a transfer is going, and at what rate (:class:`~peer.transfer_rate.TransferRate`)."""

    interval: float = UPDATE_INTERVAL
    rate: TransferRate = field(default_factory=TransferRate)
    _last_emit: float = -1e9

    def update(self, done: int, total: int, now: float) -> tuple[bool, float]:
        """Record that ``done`` of ``total`` bytes are through at ``now``; returns (report now?, bytes per second).

        The first report and the one that completes the file are always made, the others at most
        once per :attr:`interval`."""
        rate = self.rate.update(done, total, now)
        if now - self._last_emit >= self.interval or done >= total:
            self._last_emit = now
            return True, rate
        return False, rate


class HostTransfers:
    """All transfers of one session, as the host sees them."""

    def __init__(
        self,
        client: TransferClient,
        landing: LandingFolder,
        authority: Authority,
        ui: HostUI,
        *,
        unattended: bool,
        saved: SavedSession | None,
        technician: Callable[[], str],
    ) -> None:
        self._client = client
        self._landing = landing
        self._authority = authority
        self._ui = ui
        self._unattended = unattended
        self._saved = saved
        self._technician = technician
        self._background = BackgroundTasks("file transfers", log)
        """Holds the work of every transfer until it ends, logs its failures, and stops it on :meth:`close`."""
        self._tasks: dict[str, asyncio.Task[None]] = {}
        """The running work by key: a transfer id, ``request:<id>`` or ``cancel:<id>``."""
        self._requests_seen: set[str] = set()
        self.finished: dict[str, tuple[bool, str]] = {}
        """Transfer id -> (ok, where it was saved or why it failed), for reports and tests."""

    # --- events from signalling ------------------------------------------------------

    def on_transfer(self, transfer: TransferOut) -> None:
        if transfer.state.over:
            task = self._tasks.pop(transfer.id, None)
            if task is not None and transfer.state in (TransferState.cancelled, TransferState.refused):
                task.cancel()
                self._ended(transfer, False, transfer.reason or transfer.state.value)
            return
        if (
            transfer.direction is Direction.to_host
            and transfer.state is TransferState.offered
            and transfer.id not in self._tasks
        ):
            self._start(transfer.id, self._accept(transfer))

    def on_file_request(self, request: FileRequestOut) -> None:
        if request.state is FileRequestState.pending and request.id not in self._requests_seen:
            self._requests_seen.add(request.id)
            self._start(f"request:{request.id}", self._answer(request))

    async def resume(self) -> None:
        """After a (re)connection: pick up every transfer of this session that is still running."""
        try:
            transfers = await self._client.all()
            requests = await self._client.file_requests()
        except TransferError as error:
            log.warning("cannot list transfers: %s", error.message)
            return
        for transfer in transfers:
            if transfer.id in self._tasks or transfer.state.over:
                continue
            if transfer.direction is Direction.to_host:
                if transfer.state is TransferState.offered:
                    self._start(transfer.id, self._accept(transfer))
                elif transfer.saved_as:
                    self._landing.adopt(transfer.saved_as)
                    self._start(transfer.id, self._download(transfer))
            elif transfer.state is TransferState.accepted and self._saved and transfer.id in self._saved.outgoing:
                self._start(transfer.id, self._upload(transfer, Path(self._saved.outgoing[transfer.id])))
        for request in requests:
            self.on_file_request(request)

    def cancel(self, transfer_id: str) -> None:
        """The user cancels a transfer from the UI."""
        self._start(f"cancel:{transfer_id}", self._cancel(transfer_id, "cancelled by the user"))

    async def close(self) -> None:
        """Stop local work; transfers stay at the broker, resumable, until the session ends."""
        await self._background.close()
        self._tasks.clear()

    # --- work -----------------------------------------------------------------------

    def _start(self, key: str, work: Coroutine[Any, Any, None]) -> None:
        task = self._background.start(work, key)
        self._tasks[key] = task
        task.add_done_callback(lambda t, k=key: self._tasks.pop(k, None) if self._tasks.get(k) is t else None)

    async def _accept(self, transfer: TransferOut) -> None:
        reason = self._authority.refusal(Permission.files_send) or self._landing.refusal(transfer.name, transfer.size)
        if reason is not None:
            self._ui.notice(f"refused {transfer.name!r} from {self._technician()}: {reason}")
            await self._quietly(self._client.decide(transfer.id, False, reason=reason))
            self._ended(transfer, False, reason)
            return
        saved_as = self._landing.choose_name(transfer.name)
        try:
            accepted = await self._client.decide(transfer.id, True, saved_as=saved_as)
        except TransferError as error:
            self._landing.discard(saved_as)
            self._ui.notice(f"could not accept {transfer.name!r}: {error.message}")
            return
        self._ui.notice(f"receiving {saved_as} ({transfer.size} bytes) from {self._technician()}")
        await self._download(accepted)

    async def _download(self, transfer: TransferOut) -> None:
        saved_as = transfer.saved_as or transfer.name
        meter = ProgressMeter()
        try:
            received = await self._client.receive(
                transfer, self._landing, saved_as, self._progress(transfer, saved_as, outgoing=False, meter=meter),
            )
        except TransferError as error:
            self._ui.notice(f"{saved_as}: {error.message}")
            return
        if received.path is not None:
            self._ended(transfer, True, str(received.path), meter)
        else:
            self._ended(transfer, False, received.transfer.reason or received.transfer.state.value)

    async def _answer(self, request: FileRequestOut) -> None:
        reason = self._authority.refusal(Permission.files_receive)
        path: Path | None = None
        if reason is None:
            if self._unattended:
                path = Path(request.path).expanduser() if request.path else None
                reason = "no file was named" if path is None else readable_file(path)
            else:
                path = await self._ui.ask_file_request(self._technician(), request.path, request.note)
                reason = "the user declined" if path is None else readable_file(path)
        if reason is not None or path is None:
            self._ui.notice(f"file request declined: {reason}")
            await self._quietly(self._client.decline_request(request.id, reason or "declined"))
            return
        try:
            offered = await self._client.offer(path.name, path.stat().st_size, Direction.to_technician, request_id=request.id)
        except (TransferError, OSError) as error:
            message = getattr(error, "message", str(error))
            self._ui.notice(f"could not offer {path}: {message}")
            await self._quietly(self._client.decline_request(request.id, message))
            return
        if self._saved is not None:
            self._saved.outgoing[offered.id] = str(path)
            self._saved.save()
        try:
            accepted = await self._client.wait(offered, lambda t: t.state is not TransferState.offered, timeout=3600)
        except TransferError as error:
            self._ui.notice(error.message)
            return
        if accepted.state is TransferState.accepted:
            this_task = asyncio.current_task()
            assert this_task is not None  # a coroutine the event loop runs is always inside a task
            self._tasks.setdefault(accepted.id, this_task)
            await self._upload(accepted, path)

    async def _upload(self, transfer: TransferOut, path: Path) -> None:
        meter = ProgressMeter()
        try:
            result = await self._client.send(transfer, path, self._progress(transfer, transfer.name, outgoing=True, meter=meter))
        except TransferError as error:
            self._ui.notice(f"{transfer.name}: {error.message}")
            return
        except OSError as error:
            await self._quietly(self._client.cancel(transfer.id, f"the host cannot read the file: {error.strerror}"))
            self._ended(transfer, False, str(error))
            return
        ok = result.state is TransferState.completed
        self._ended(transfer, ok, "sent to the technician" if ok else (result.reason or result.state.value), meter)
        if self._saved is not None:
            self._saved.outgoing.pop(transfer.id, None)
            self._saved.save()

    async def _cancel(self, transfer_id: str, reason: str) -> None:
        try:
            await self._client.cancel(transfer_id, reason)
        except TransferError as error:
            self._ui.notice(f"could not cancel: {error.message}")

    def _progress(self, transfer: TransferOut, name: str, *, outgoing: bool, meter: ProgressMeter) -> Callable[[int, int], None]:
        def report(done: int, total: int) -> None:
            emit, rate = meter.update(done, total, time.monotonic())
            if emit:
                self._ui.transfer_progress(transfer.id, name, outgoing, done, total, rate)

        return report

    def _ended(self, transfer: TransferOut, ok: bool, detail: str, meter: ProgressMeter | None = None) -> None:
        self.finished[transfer.id] = (ok, detail)
        name = transfer.saved_as or transfer.name
        summary = meter.rate.summary() if ok and meter is not None else ""
        self._ui.transfer_finished(transfer.id, name, transfer.direction is Direction.to_technician, ok, detail, summary)
        if not ok and transfer.saved_as:
            self._landing.discard(transfer.saved_as)

    @staticmethod
    async def _quietly(call: Coroutine[Any, Any, Any]) -> None:
        try:
            await call
        except TransferError as error:
            log.info("ignored: %s", error.message)
