"""A live session outlives each of two brokers behind nginx killed in turn, and a rolling restart.

Two brokers on one PostgreSQL database, one Redis, one S3 bucket and one data directory, nginx in
front; a real ``deskhand-host`` under Xvfb and the technician's live view, both through nginx. One
broker is killed (SIGKILL), then brought back, then the other (the one every peer is on by then);
then both are restarted one after the other (SIGTERM). Each time the picture keeps coming (the
media is peer to peer), both peers reconnect through nginx to the broker left and meet again, and
the host goes on recording. At the end: every segment it recorded is stored, in the bucket, the
session ended as the technician ended it, and ``audit verify`` passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.broker import BrokerProcess, audit_verify
from tests.support.live_session import Live, live_session
from tests.support.nginx import BEHIND_PROXY, ProxiedBrokers
from tests.support.object_store import ObjectStore
from tests.support.polling import async_wait_until
from tests.support.postgres import PostgresCluster
from tests.support.redis_server import RedisServer
from tests.support.screen_painter import PainterProcess

pytestmark = pytest.mark.slow

FRAMES_DURING_OUTAGE = 20
"""Frames the view must get while a broker is down and its peers reconnect (the screen changes 10 times a second)."""


@contextlib.asynccontextmanager
async def changing_screen(env: dict[str, str]) -> AsyncIterator[None]:
    """The screen changes colour ten times a second, so the host always has a new picture to send."""
    painter = PainterProcess(env)

    async def paint() -> None:
        for colour in itertools.cycle([(200, 40, 40), (40, 200, 40), (40, 40, 200)]):
            await asyncio.to_thread(painter.fill, colour)
            await asyncio.sleep(0.1)

    task = asyncio.create_task(paint())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        painter.close()


def connections(front: ProxiedBrokers, session_id: str) -> tuple[int, int]:
    """How often the brokers took in the session's host and its technician, by the trail."""
    rows = front.sql("SELECT actor LIKE 'host:%', count(*) FROM audit_events WHERE session_id = ? "
                     "AND kind = 'signal.connected' GROUP BY actor LIKE 'host:%'", session_id)
    counts = {bool(is_host): int(count) for is_host, count in rows}
    return counts.get(True, 0), counts.get(False, 0)


def segments(front: ProxiedBrokers, session_id: str) -> list[int]:
    return [int(index) for (index,) in front.sql(
        'SELECT "index" FROM recording_segments WHERE session_id = ? ORDER BY "index"', session_id)]


def broker_id(broker: BrokerProcess) -> str:
    """The id ``broker`` (its latest start) goes by among the brokers sharing Redis, as it logged it."""
    found = re.findall(r"sharing Redis with the other brokers as broker ([0-9a-f]{32})", broker.output_text(10_000))
    assert found, broker.output_text(40)
    return str(found[-1])


def room(redis_server: RedisServer, session_id: str) -> dict[str, str]:
    """Role -> the id of the broker its connection is on, as the room in Redis says."""
    with redis_server.client() as client:
        held = client.hgetall(f"deskhand:room:{session_id}")
    return {role.decode(): json.loads(record)["broker"] for role, record in held.items()}


async def survives(live: Live, front: ProxiedBrokers, redis_server: RedisServer, down: BrokerProcess, how: str) -> set[str]:
    """Take ``down`` away (``how``: kill or stop) and bring it back: the picture keeps coming meanwhile, and
    the peers that were connected to it connect again through nginx to the broker left and meet there.
    Returns the roles that were on ``down``."""
    await async_wait_until(lambda: set(room(redis_server, live.session_id)) == {"host", "technician"},
                           "both peers in the room", timeout=30)
    on_down = {role for role, broker in room(redis_server, live.session_id).items() if broker == broker_id(down)}
    host_before, technician_before = connections(front, live.session_id)
    frames = live.view.frames_received
    stored = len(segments(front, live.session_id))
    await asyncio.to_thread(down.kill if how == "kill" else down.stop)
    await async_wait_until(lambda: live.view.frames_received >= frames + FRAMES_DURING_OUTAGE,
                           f"the picture to keep coming with a broker {how}ed", timeout=20)

    def reconnected() -> bool:
        host, technician = connections(front, live.session_id)
        where = room(redis_server, live.session_id)
        return ((host > host_before or "host" not in on_down) and (technician > technician_before
                or "technician" not in on_down) and set(where) == {"host", "technician"}
                and broker_id(down) not in where.values())

    await async_wait_until(reconnected, f"both peers to connect again after a broker was {how}ed", timeout=40)
    await live.view.wait_for_frame(20, newer_than=asyncio.get_running_loop().time())
    await async_wait_until(lambda: len(segments(front, live.session_id)) > stored,
                           "the host to store recording segments again", timeout=30)
    await asyncio.to_thread(down.restart)
    assert live.host.poll() is None, f"the host exited ({live.host.returncode}) after a broker was {how}ed"
    return on_down


async def test_a_session_outlives_each_broker_killed_and_a_rolling_restart_behind_nginx(
        postgres: PostgresCluster, redis_server: RedisServer, object_store: ObjectStore, xvfb, tmp_path: Path) -> None:
    store = object_store.env()
    data_dir = tmp_path / "data"
    with postgres.database() as database_url:
        env = {"DESKHAND_DATABASE_URL": database_url, "DESKHAND_REDIS_URL": redis_server.url, **store, **BEHIND_PROXY,
               "DESKHAND_ICE_LOOPBACK": "true"}
        with BrokerProcess.start(env, data_dir=data_dir) as first, \
                BrokerProcess.start(env, data_dir=data_dir) as second, \
                ProxiedBrokers.start([first, second]) as front:
            host_env = {**xvfb.env, "XDG_STATE_HOME": str(tmp_path / "state")}
            async with changing_screen(xvfb.env), \
                    live_session(front, host_env, "--consent", "view,control") as live:  # type: ignore[arg-type]
                await live.view.wait_for_frame(60)
                await async_wait_until(lambda: len(segments(front, live.session_id)) >= 2,
                                       "the first stored segments", timeout=30)
                await survives(live, front, redis_server, first, "kill")
                # Everybody is on the second by then: the one the host is on is killed.
                assert await survives(live, front, redis_server, second, "kill") == {"host", "technician"}
                for down in (first, second):  # a rolling restart
                    await survives(live, front, redis_server, down, "stop")
                session_id = live.session_id
            assert live.host.returncode == 0, live.output
            assert "ended by the technician" in live.output
            stored = segments(front, session_id)
            assert stored == list(range(len(stored))) and len(stored) >= 10, f"segments lost: {stored}"
        kept = object_store.keys(f"{store['DESKHAND_OBJECT_STORE_PREFIX']}recordings/{session_id}/")
        assert len(kept) == len(stored), "every segment in the bucket"
        checked = audit_verify(data_dir, env)
        assert checked.returncode == 0, checked.stdout + checked.stderr
