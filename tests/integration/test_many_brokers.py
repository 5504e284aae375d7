"""Two broker processes on one database (one data directory; on SQLite, then on PostgreSQL).

What one process used to keep to itself must hold across both: the audit trail stays one chain
per session and verifies however the two brokers' sealers interleave, an SLA breach is audited
once and a webhook delivery sent once however their SLA watches and delivery rounds interleave,
and a session ended on one broker ends for its peers connected to the other.
"""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import websockets

from protocol.webhooks import DELIVERY_HEADER
from tests.support.api import age_sla_timers, bearer, create_ticket, end_session, paired_session
from tests.support.broker import BrokerProcess, audit_verify
from tests.support.database import BrokerDatabases
from tests.support.polling import wait_until
from tests.support.signalling import peer, receive_type
from tests.support.webhook_receiver import running_receiver

pytestmark = pytest.mark.both_stacks

SEALER_TROUBLE = re.compile(r"UniqueViolation|IntegrityError|sealing .* failed|audit trail failed", re.IGNORECASE)
"""What a broker logs when two sealers gave two events one number."""

BREACHES = 10
"""Tickets whose SLA runs out while both brokers' SLA watches look."""

ROUNDS = 8
"""Sessions each of four clients starts and ends (each end seals at once on the broker that ended it)."""


def _sessions_ended(broker: BrokerProcess, admin: dict[str, str], count: int) -> None:
    for _ in range(count):
        session_id, _host = paired_session(broker, admin)
        assert end_session(broker, admin, session_id, "done").status_code == 200


def test_two_brokers_keep_one_trail_audit_each_breach_once_and_send_each_webhook_once(broker_db: BrokerDatabases, tmp_path: Path) -> None:
    database = {**broker_db.env(), "DESKHAND_WEBHOOK_POLL_SECONDS": "0.05", "DESKHAND_SLA_SWEEP_SECONDS": "0.05"}
    data_dir = tmp_path / "data"
    with running_receiver() as receiver, BrokerProcess.start(database, data_dir=data_dir) as first, \
            BrokerProcess.start(database, data_dir=data_dir) as second:
        admin = bearer(first.login())  # a token from one broker works on the other
        made = second.http.post("/webhooks", headers=admin, json={"name": "desk", "url": receiver.url("/hook")})
        assert made.status_code == 201, made.text
        late = [create_ticket(first, admin, priority="urgent", subject=f"Late {n}")["id"] for n in range(BREACHES)]
        for ticket_id in late:
            age_sla_timers(first, ticket_id, hours=1)  # urgent: 15 min to respond; both sweeps find it due
        with ThreadPoolExecutor(4) as pool:
            work = [pool.submit(_sessions_ended, broker, admin, ROUNDS) for broker in (first, second) for _ in range(2)]
            for done in work:
                done.result()
        wait_until(lambda: first.sql("SELECT count(*) FROM audit_events WHERE hash IS NULL")[0][0] == 0,
                   "every audit event sealed")
        wait_until(lambda: not first.sql("SELECT count(*) FROM webhook_deliveries WHERE delivered_at IS NULL")[0][0],
                   "every webhook delivery booked as delivered")
        deliveries = first.sql("SELECT count(*) FROM webhook_deliveries")[0][0]
        breaches = first.sql("SELECT ticket_id, count(*) FROM audit_events WHERE kind = 'ticket.sla_breached' "
                             "GROUP BY ticket_id ORDER BY ticket_id")
        for broker in (first, second):
            assert not SEALER_TROUBLE.search(broker.output_text(2000)), broker.output_text(2000)
    assert breaches == [(ticket_id, 1) for ticket_id in late], "each breach audited once"
    ids = [request.headers[DELIVERY_HEADER] for request in receiver.at("/hook")]
    assert len(ids) == len(set(ids)) == deliveries >= 4 * ROUNDS + BREACHES, f"{len(ids)} requests for {len(set(ids))} deliveries"
    assert first.sql("SELECT count(DISTINCT chain) FROM audit_events")[0][0] == 4 * ROUNDS + 1
    checked = audit_verify(data_dir, database)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_session_ended_on_one_broker_closes_its_peers_on_the_other(broker_db: BrokerDatabases, tmp_path: Path) -> None:
    database = broker_db.env()
    data_dir = tmp_path / "data"
    with BrokerProcess.start(database, data_dir=data_dir) as first, \
            BrokerProcess.start(database, data_dir=data_dir) as second:
        admin = bearer(first.login())
        session_id, host_token = paired_session(first, admin)

        async def both_told() -> list[dict[str, object]]:
            async with peer(second, session_id, host_token) as host, \
                    peer(second, session_id, admin["Authorization"].removeprefix("Bearer ")) as technician:
                await receive_type(host, "welcome")
                await receive_type(technician, "welcome")
                ended = await asyncio.to_thread(end_session, first, admin, session_id, "fixed, thanks")
                assert ended.status_code == 200, ended.text
                told = [await receive_type(ws, "session_ended", timeout=3) for ws in (host, technician)]
                for ws in (host, technician):
                    with pytest.raises(websockets.ConnectionClosed):
                        await asyncio.wait_for(ws.recv(), 3)
                return told

        told = asyncio.run(both_told())
        assert [(m["ended_by"], m["reason"]) for m in told] == [("technician", "fixed, thanks")] * 2
