"""Inside the broker's transfer routes: long polls leave no wake-up behind, and a cancel beats an upload.

The app runs in the test's process (:mod:`tests.support.in_process`), on a real SQLite
database and spool, so that the test can look at the wake-ups the broker holds and step in
between an upload's check and the storing of its bytes.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from broker.storage.models import TransferChunk
from protocol.transfers import TransferOut, transfer_version
from tests.support.in_process import InProcessBroker, PairedSession, in_process_broker

SIZE = 1000


async def accepted_transfer(broker: InProcessBroker, session: PairedSession) -> str:
    """A file the technician offers the host, accepted; its id."""
    files = f"/sessions/{session.session_id}/transfers"
    offered = await broker.call("POST", files, 201, headers=session.technician,
                                json={"name": "setup.exe", "size": SIZE, "direction": "to_host"})
    await broker.call("POST", f"{files}/{offered['id']}/decision", 200, headers=session.host,
                      json={"accept": True, "saved_as": "setup.exe"})
    return str(offered["id"])


async def test_long_polls_on_transfers_that_do_not_exist_leave_no_wake_up_behind(tmp_path: Path) -> None:
    """Before: every poll of an unknown id left its wake-up in the broker's memory for good."""
    async with in_process_broker(tmp_path) as broker:
        session = await broker.paired_session(consent=["files.send"])
        for n in range(150):
            # Unknown transfers of this session, and of a session that does not exist either.
            session_id = session.session_id if n % 3 else str(uuid.uuid4())
            transfer = f"/sessions/{session_id}/transfers/{uuid.uuid4()}"
            shown = await broker.http.get(transfer, params={"wait": 5, "known": "v"}, headers=session.technician)
            chunk = await broker.http.get(f"{transfer}/chunks/0", params={"wait": 5}, headers=session.host)
            for answer in (shown, chunk):
                assert answer.status_code in (401, 403, 404) and answer.json()["error"], answer.text
        assert len(broker.state.transfer_signals) == 0


async def test_long_polls_that_end_without_a_change_leave_no_wake_up_behind(tmp_path: Path) -> None:
    """A poll that times out, and one on a transfer that is over (it never changes again)."""
    async with in_process_broker(tmp_path) as broker:
        session = await broker.paired_session(consent=["files.send"])
        transfer_id = await accepted_transfer(broker, session)
        transfer = f"/sessions/{session.session_id}/transfers/{transfer_id}"
        out = TransferOut.model_validate(await broker.call("GET", transfer, 200, headers=session.technician))
        await broker.call("GET", transfer, 200, headers=session.technician,
                          params={"wait": 0.1, "known": transfer_version(out)})
        assert len(broker.state.transfer_signals) == 0
        await broker.call("POST", f"{transfer}/cancel", 200, headers=session.host, json={"reason": "no"})
        for _ in range(20):
            await broker.call("GET", transfer, 200, headers=session.technician, params={"wait": 5, "known": "v"})
            await broker.call("GET", f"{transfer}/chunks/0", 409, headers=session.host, params={"wait": 5})
        assert len(broker.state.transfer_signals) == 0


@pytest.mark.parametrize("cancelled", ["before the bytes are stored", "after they are stored"])
async def test_a_chunk_whose_upload_a_cancel_overtakes_is_not_kept(tmp_path: Path, cancelled: str) -> None:
    """Before: a cancel landing between an upload's check and its store emptied the spool, and the
    upload then stored its chunk again, held in memory for a transfer that was over."""
    async with in_process_broker(tmp_path) as broker:
        session = await broker.paired_session(consent=["files.send"])
        transfer_id = await accepted_transfer(broker, session)
        transfer = f"/sessions/{session.session_id}/transfers/{transfer_id}"
        spool = broker.state.spool
        store = spool.receive

        async def cancel() -> None:
            await broker.call("POST", f"{transfer}/cancel", 200, headers=session.host, json={"reason": "changed my mind"})

        async def overtaken(*args: Any, **kwargs: Any) -> None:
            # The upload was checked (the transfer is accepted); the cancel lands now.
            if cancelled == "before the bytes are stored":
                await cancel()
            await store(*args, **kwargs)
            if cancelled == "after they are stored":
                await cancel()

        spool.receive = overtaken  # type: ignore[method-assign]  # the race is staged inside the spool's store
        data = os.urandom(SIZE)
        put = await broker.http.put(f"{transfer}/chunks/0", content=data,
                                    headers={**session.technician, "X-Chunk-SHA256": hashlib.sha256(data).hexdigest()})
        assert put.status_code == 409 and put.json()["error"] == "transfer_over", put.text
        assert not spool.has(transfer_id, 0)
        assert transfer_id not in spool.transfer_ids()
        assert spool.memory_used == 0
        with broker.state.database.session() as db:
            recorded = db.scalar(select(func.count()).select_from(TransferChunk).where(TransferChunk.transfer_id == transfer_id))
        assert recorded == 0
