"""A received file is under its name before its transfer is reported complete, and only then.

A real broker; the technician's and the host's :class:`~peer.transfers.TransferClient` run in
the test's process. Before: the receiver reported the file and gave it its name afterwards, so
a console that saw the transfer completed could look for the file on the user's computer and
not find it yet (tests/netns/test_recovery.py did, in a CI run under load).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from peer.landing import LandingFolder
from peer.transfers import TransferClient, TransferError, file_sha256
from protocol.transfers import Direction, TransferOut, TransferState
from tests.support.api import consented_session
from tests.support.broker import BrokerProcess

pytestmark = pytest.mark.both_stacks

SIZE = 3 * 1024 * 1024 + 5


@dataclass
class Peers:
    technician: TransferClient
    host: TransferClient
    landing: LandingFolder
    source: Path


@asynccontextmanager
async def peers(broker: BrokerProcess, admin: dict[str, str], tmp_path: Path) -> AsyncIterator[Peers]:
    session_id, host_token = consented_session(broker, admin, ["files.send", "files.receive"])
    token = admin["Authorization"].removeprefix("Bearer ")
    source = tmp_path / "setup.exe"
    source.write_bytes(os.urandom(SIZE))
    async with (
        TransferClient(broker.base_url, token, session_id) as technician,
        TransferClient(broker.base_url, host_token, session_id) as host,
    ):
        yield Peers(technician, host, LandingFolder(tmp_path / "Downloads"), source)


def report_watched(client: TransferClient, before: Callable[[TransferOut], Awaitable[None]]) -> None:
    """Run ``before`` as ``client`` is about to report a received file to the broker."""
    report = client._complete

    async def watched(transfer: TransferOut, sha256: str) -> TransferOut:
        await before(transfer)
        return await report(transfer, sha256)

    client._complete = watched  # type: ignore[method-assign]  # this client only


def landed(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


async def test_the_file_has_its_name_when_the_transfer_is_reported_complete(broker, admin, tmp_path) -> None:
    async with peers(broker, admin, tmp_path) as p:
        at_report: list[set[str]] = []

        async def look(_transfer: TransferOut) -> None:
            at_report.append(landed(p.landing.folder))

        report_watched(p.host, look)
        offered = await p.technician.offer("setup.exe", SIZE, Direction.to_host)
        saved_as = p.landing.choose_name("setup.exe")
        accepted = await p.host.decide(offered.id, True, saved_as=saved_as)
        sent, received = await asyncio.gather(
            p.technician.send(accepted, p.source), p.host.receive(accepted, p.landing, saved_as),
        )
    assert at_report == [{"setup.exe", ".setup.exe.deskhand-part", ".setup.exe.deskhand-ledger"}]
    assert sent.state is TransferState.completed and received.transfer.state is TransferState.completed
    assert received.path == p.landing.folder / "setup.exe"
    assert landed(p.landing.folder) == {"setup.exe"}
    assert file_sha256(received.path) == file_sha256(p.source)


@pytest.mark.parametrize("cancelled", [True, False], ids=["cancelled meanwhile", "broker unreachable"])
async def test_a_report_that_does_not_complete_takes_the_name_back(broker, admin, tmp_path, cancelled: bool) -> None:
    """Cancelled just before the report, nothing is left behind; a report that does not get through
    leaves the verified part and its ledger, to resume from, and no file under the name."""
    async with peers(broker, admin, tmp_path) as p:

        async def cancel_or_fail(transfer: TransferOut) -> None:
            assert "setup.exe" in landed(p.landing.folder)
            if cancelled:
                await p.technician.cancel(transfer.id, "changed my mind")
            else:
                raise TransferError("the broker could not be reached")

        report_watched(p.host, cancel_or_fail)
        offered = await p.technician.offer("setup.exe", SIZE, Direction.to_host)
        saved_as = p.landing.choose_name("setup.exe")
        accepted = await p.host.decide(offered.id, True, saved_as=saved_as)
        sending = asyncio.ensure_future(p.technician.send(accepted, p.source))
        if cancelled:
            received = await p.host.receive(accepted, p.landing, saved_as)
            sent = await asyncio.wait_for(sending, 10)
            assert received.path is None and received.transfer.state is TransferState.cancelled
            assert sent.state is TransferState.cancelled
        else:
            with pytest.raises(TransferError):
                await p.host.receive(accepted, p.landing, saved_as)
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)
    if cancelled:
        assert landed(p.landing.folder) == set()
    else:
        assert landed(p.landing.folder) == {".setup.exe.deskhand-part", ".setup.exe.deskhand-ledger"}
        assert file_sha256(p.landing.part(saved_as)) == file_sha256(p.source)


async def test_a_report_whose_answer_was_lost_keeps_the_completed_file(broker, admin, tmp_path) -> None:
    """The report reached the broker, its answer did not, and the report sent again is answered "over": the
    transfer completed, and the file stays under its name (before: it was deleted as if cancelled)."""
    async with peers(broker, admin, tmp_path) as p:
        report = p.host._complete

        async def answer_lost(transfer: TransferOut, sha256: str) -> TransferOut:
            await report(transfer, sha256)  # stored by the broker
            return await report(transfer, sha256)  # the retry: 409 transfer_over

        p.host._complete = answer_lost  # type: ignore[method-assign]  # this client only
        offered = await p.technician.offer("setup.exe", SIZE, Direction.to_host)
        saved_as = p.landing.choose_name("setup.exe")
        accepted = await p.host.decide(offered.id, True, saved_as=saved_as)
        sent, received = await asyncio.gather(
            p.technician.send(accepted, p.source), p.host.receive(accepted, p.landing, saved_as),
        )
    assert sent.state is TransferState.completed and received.transfer.state is TransferState.completed
    assert received.path == p.landing.folder / "setup.exe" and landed(p.landing.folder) == {"setup.exe"}
    assert file_sha256(received.path) == file_sha256(p.source)
