"""One watcher for every connected session's grant: changes counted once, pushed within 2 s, idle costs nothing.

Every write that can change a grant bumps one counter row (``broker.sessions.grant_changes``), whichever
process writes; the broker reads that row, not each session (``broker.sessions.grant_watch``).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, closing

import httpx
import websockets

from broker.accounts.tokens import HOST_TOKEN_PREFIX, hash_token
from tests.support.accounts import PASSWORD, choose_own_password
from tests.support.api import bearer, create_ticket, paired_session
from tests.support.polling import async_wait_until

FIXER = ["session.start", "tickets.read", "tickets.write", "view", "control"]
"""The test technician's role: what a session needs, with control to take away."""

IDLE_SESSIONS = 1000


def admin_call(broker, method: str, path: str, **body: object) -> httpx.Response:
    response = broker.http.request(method, path, headers=bearer(broker.login()), json=body or None)
    assert response.status_code < 300, response.text
    return response


def changes(broker) -> int:
    return broker.sql("SELECT count FROM grant_changes")[0][0]


def technician(broker, username: str, role: str) -> str:
    """A technician in a role of their own; their login token."""
    admin_call(broker, "POST", "/roles", name=role, permissions=FIXER)
    admin_call(broker, "POST", "/users", username=username, display_name=username.title(), password=PASSWORD,
               roles=[role])
    own = choose_own_password(broker, username, PASSWORD)
    return broker.login(username, own)


@asynccontextmanager
async def host(broker, session_id: str, host_token: str) -> AsyncIterator[websockets.ClientConnection]:
    """The host's signalling socket, past its welcome and first grant."""
    async with websockets.connect(broker.ws_url(session_id), additional_headers=bearer(host_token),
                                  ping_interval=None) as ws:
        assert json.loads(await ws.recv())["type"] == "welcome"
        assert json.loads(await ws.recv())["type"] == "grant"
        yield ws


async def next_grant(ws, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic())))
        if message["type"] == "grant":
            return message["grant"]["grant"]


def broker_cpu_seconds(pid: int) -> float:
    """User and system CPU time of process ``pid`` so far (``/proc/<pid>/stat``, fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_grant_inputs_are_counted_and_other_writes_are_not(broker) -> None:
    token = technician(broker, "counted", "counted")
    before = changes(broker)
    create_ticket(broker, bearer(token))
    broker.login("counted", "Chosen by myself, passphrase 3")
    assert changes(broker) == before  # a ticket and a sign-in change no grant
    admin_call(broker, "PATCH", "/users/counted", display_name="Counted Once")  # the grant carries the name
    assert changes(broker) == before + 1
    admin_call(broker, "PATCH", "/roles/counted", permissions=FIXER[:-1])
    admin_call(broker, "POST", "/teams", name="counters", members=["counted"])
    admin_call(broker, "PATCH", "/teams/counters", policy={"denied": ["view"]})
    admin_call(broker, "PATCH", "/users/counted", teams=[])
    assert changes(broker) == before + 5
    assert broker.http.post("/auth/logout", headers=bearer(token)).status_code == 204
    assert changes(broker) == before + 6
    # The same from the command line, another process writing to the same database.
    made = subprocess.run([sys.executable, "-m", "broker.cli", "roles", "set", "counted", "--permissions",
                           ",".join(FIXER), "--data-dir", str(broker.data_dir)], capture_output=True, text=True,
                          timeout=60)
    assert made.returncode == 0, made.stderr
    assert changes(broker) == before + 7


async def test_a_role_change_by_the_command_line_reaches_the_connected_host(broker) -> None:
    token = technician(broker, "remote", "remote")
    session_id, host_token = paired_session(broker, bearer(token))
    async with host(broker, session_id, host_token) as ws:
        made = await asyncio.to_thread(subprocess.run, [
            sys.executable, "-m", "broker.cli", "roles", "set", "remote", "--permissions", ",".join(FIXER[:-1]),
            "--data-dir", str(broker.data_dir)], capture_output=True, text=True, timeout=60)
        assert made.returncode == 0, made.stderr
        assert "control" not in (await next_grant(ws, 5))["permissions"]


async def test_a_round_that_fails_is_logged_and_the_next_one_delivers_the_grant(broker) -> None:
    """While the database refuses the new grant's audit event, rounds fail (each logged, no secret in it);
    the watcher keeps going, and the first round after the database takes it again delivers the grant."""
    token = technician(broker, "unlucky", "unlucky")
    session_id, host_token = paired_session(broker, bearer(token))
    async with host(broker, session_id, host_token) as ws:
        broker.sql("CREATE TRIGGER refuse_grants BEFORE INSERT ON audit_events WHEN NEW.kind = 'grant.issued'"
                   " BEGIN SELECT RAISE(ABORT, 'the test refuses grant.issued'); END")
        try:
            logged = len([line for line in broker.output if "watching grants failed" in line])
            admin_call(broker, "PATCH", "/roles/unlucky", permissions=FIXER[:-1])
            await async_wait_until(
                lambda: len([line for line in broker.output if "watching grants failed" in line]) >= logged + 2,
                "two failed rounds logged")
        finally:
            broker.sql("DROP TRIGGER refuse_grants")
        assert "control" not in (await next_grant(ws, 10))["permissions"]
    assert "the test refuses grant.issued" in "\n".join(broker.output)
    assert host_token not in "\n".join(broker.output) and token not in "\n".join(broker.output)


def seed_sessions(broker, token: str, count: int) -> list[tuple[str, str]]:
    """``count`` joined sessions of the technician with ``token``: one through the API, the rest copies of it
    written straight into the database, each with its own id and host token (``(session id, host token)``).

    Pairing through the API runs at some 20 a second on a shared test machine; a thousand would take a minute.
    """
    template, _ = paired_session(broker, bearer(token))
    made = [(str(uuid.uuid4()), HOST_TOKEN_PREFIX + secrets.token_urlsafe(32)) for _ in range(count)]
    with closing(sqlite3.connect(broker.db_path, timeout=30)) as db, db:
        columns = ", ".join(c for (_, c, *_rest) in db.execute("PRAGMA table_info(support_sessions)")
                            if c not in ("id", "host_token_hash"))
        db.executemany(
            f"INSERT INTO support_sessions (id, host_token_hash, {columns})"
            f" SELECT ?, ?, {columns} FROM support_sessions WHERE id = ?",
            [(sid, hash_token(host_token), template) for sid, host_token in made],
        )
    return made


async def test_with_a_thousand_idle_hosts_a_role_change_arrives_within_2_s_and_idle_costs_nothing(broker) -> None:
    token = technician(broker, "busy", "busy")
    sessions = seed_sessions(broker, token, IDLE_SESSIONS)
    async with AsyncExitStack() as stack:
        opening = asyncio.Semaphore(32)

        async def connect(session_id: str, host_token: str) -> websockets.ClientConnection:
            async with opening:
                return await stack.enter_async_context(host(broker, session_id, host_token))

        hosts = await asyncio.gather(*(connect(*s) for s in sessions))

        await asyncio.sleep(2)  # the connections' own audit writes settle
        pid = broker.process.pid
        cpu_before, wall_before = broker_cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(5)
        busy = (broker_cpu_seconds(pid) - cpu_before) / (time.monotonic() - wall_before)
        print(f"broker CPU with {len(hosts)} idle host sockets: {busy:.1%} of a core")
        assert busy < 0.20

        watched = hosts[-1]
        changed = await asyncio.to_thread(admin_call, broker, "PATCH", "/roles/busy", permissions=FIXER[:-1])
        answered = time.monotonic()
        assert changed.json()["permissions"] == FIXER[:-1]
        grant = await next_grant(watched, 10)
        took = time.monotonic() - answered
        print(f"the new grant reached a host {took:.2f} s after the role change was answered")
        assert "control" not in grant["permissions"] and took < 2.0
