"""The broker load benchmark's load generator: technicians and hosts as asyncio tasks, in a process of its own.

:class:`GeneratorProcess` starts it (``multiprocessing``, spawned) against one broker and
sends it one command at a time; the generator answers each with plain data (latency
lists, error counts) and keeps what it holds (idle signalling sockets) alive between
commands, reading the next command in a thread so that its event loop never stops.
Its own CPU is measured from outside (:mod:`bench.cpu`), which is why it runs apart
from the process that measures and from the broker.

What it plays, over HTTP (httpx) and WebSockets (websockets) on 127.0.0.1:

* a **pairing** (:data:`PAIRING_STEPS`): the technician starts a session on a ticket
  (``create``), the host redeems the code (``join``), the host opens signalling and is
  greeted (``host_connect``), the technician does (``tech_connect``, the host told
  ``peer_joined``), the host sends its consent and the technician gets it relayed
  (``consent``), offer and answer relayed (``offer_answer``), two candidates and the end of
  candidates each way (``ice``), the technician ends and the host is told (``end``);
* **idle sockets**: sessions a host has joined, its signalling open, no technician;
* a steady-rate authenticated ``GET /auth/me`` (``probe``);
* **writes**: a host's event batches (``POST .../events``) or recording segments
  (``PUT .../recording/{index}``), back to back, one session per writer.

Every step has a timeout; a step that fails is counted under a kind (``join: 429
rate_limited``, ``create: timeout``, ``host_connect: 500``) and the worker starts
over, after the ``Retry-After`` a 429 or 503 asked for. Nothing here asserts.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import multiprocessing
import os
import resource
import socket
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any, TypeVar

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

from peer.keepalive import QuietPeerConnection
from peer.signalling import PING_SECONDS, PING_TIMEOUT_SECONDS, websocket_url

T = TypeVar("T")

PAIRING_STEPS = ("create", "join", "host_connect", "tech_connect", "consent", "offer_answer", "ice", "end")
"""The steps of one pairing, in order; each is timed on its own, and ``pairing`` is all of them."""
HOST_BODY = {"machine_name": "bench-pc", "os": "Linux 6", "user_name": "ann"}
"""What a host tells the broker about itself when it joins."""
TICKETS = 10
"""Tickets the sessions are started on (round robin): a ticket may have any number of sessions."""
CANDIDATES = 2
"""ICE candidates each peer trickles, then the end of candidates."""
EVENT_KINDS = (
    ("input.applied", {"count": 12, "seconds": 1.0}),
    ("chat.sent", {"text": "Is the printer on now?"}),
    ("clipboard.sent", {"chars": 42, "sha256": "c" * 64}),
    ("monitor.selected", {"index": 1}),
)
"""What a host reports, in turn (``protocol.recording.EVENT_DATA``)."""
CLOSE_TIMEOUT = 2.0
"""Seconds a closing WebSocket waits for the broker's close frame."""


def _fake_sdp(kind: str) -> str:
    """An SDP of a realistic size (~2.5 KB; the broker relays it unread)."""
    lines = ["v=0", f"o=- {uuid.uuid4().int % 10**18} 2 IN IP4 127.0.0.1", "s=-", "t=0 0", "a=group:BUNDLE 0 1"]
    for mid, media in enumerate(("video 9 UDP/TLS/RTP/SAVPF 96 97", "application 9 UDP/DTLS/SCTP webrtc-datachannel")):
        lines += [f"m={media}", "c=IN IP4 0.0.0.0", f"a=mid:{mid}", f"a=ice-ufrag:{uuid.uuid4().hex[:8]}",
                  f"a=ice-pwd:{uuid.uuid4().hex}", "a=fingerprint:sha-256 " + ":".join(["AB"] * 32),
                  f"a=setup:{'actpass' if kind == 'offer' else 'active'}"]
        lines += [f"a=rtcp-fb:96 {fb}" for fb in ("nack", "nack pli", "goog-remb", "ccm fir")]
        lines += [f"a=ssrc:{1000 + mid} cname:{uuid.uuid4().hex}" for _ in range(8)]
    return "\r\n".join(lines) + "\r\n"


def _candidate(n: int) -> dict[str, Any]:
    return {"type": "ice", "candidate": f"candidate:{n} 1 UDP 2122252543 127.0.0.1 {50000 + n} typ host",
            "sdp_mid": "0", "sdp_mline_index": 0}


def raise_fd_limit() -> int:
    """Raise this process's soft limit of open files to its hard limit; the limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # An unlimited hard limit still stops at the kernel's nr_open (2**20 by default).
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass  # the soft limit stays as it was; the benchmark checks its sizes against it
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class StepFailed(Exception):
    """A step did not succeed; ``kind`` says how (``join: 429 rate_limited``)."""

    def __init__(self, kind: str, retry_after: float | None = None) -> None:
        super().__init__(kind)
        self.kind = kind
        self.retry_after = retry_after


@dataclass
class Tally:
    """What a run saw: latencies (seconds) by step, errors by kind, and how many finished."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    done: int = 0
    """Units of work (pairings, writes) that finished inside the window."""
    late: int = 0
    """Units that finished after the window closed (not counted in the rate)."""
    cut_off: int = 0
    """Units still running when the grace after the window ran out (cancelled; not errors)."""

    def took(self, step: str, seconds: float) -> None:
        self.latencies.setdefault(step, []).append(seconds)

    def as_dict(self, window: float) -> dict[str, Any]:
        return {"latencies": self.latencies, "errors": dict(self.errors), "done": self.done, "late": self.late,
                "cut_off": self.cut_off, "window": window}


def _refusal(step: str, response: httpx.Response) -> StepFailed:
    """A :class:`StepFailed` for an HTTP answer that is not the one expected."""
    try:
        code = str(response.json().get("error", ""))
    except ValueError:
        code = ""
    retry = response.headers.get("Retry-After")
    try:
        retry_after = float(retry) if retry is not None else None
    except ValueError:
        retry_after = None
    return StepFailed(f"{step}: {response.status_code} {code}".rstrip(), retry_after)


async def _expect(ws: ClientConnection, kind: str, step: str, count: int = 1) -> dict[str, Any]:
    """Read until ``count`` messages of ``kind`` arrived (others skipped); the last of them.

    An ``error`` message or the session's end, when something else was awaited, fail the step.
    """
    got = 0
    while True:
        try:
            message = json.loads(await ws.recv())
        except websockets.ConnectionClosed as closed:
            raise StepFailed(f"{step}: closed {closed.rcvd.code if closed.rcvd else 'without a close frame'}") from None
        if message.get("type") == kind:
            got += 1
            if got == count:
                return message
        elif message.get("type") == "error":
            raise StepFailed(f"{step}: error {message.get('code')}")
        elif message.get("type") == "session_ended":
            raise StepFailed(f"{step}: session ended ({message.get('reason')})")


class LoadGenerator:
    """The generator's state against one broker: an HTTP client, the technician's token, idle sockets."""

    def __init__(self, base_url: str, token: str, timeout: float) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self.token = token
        self.tech_headers = {"Authorization": f"Bearer {token}"}
        transport = httpx.AsyncHTTPTransport(
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=2000),
        )
        # No pool limit: a queue in the client would be measured as the broker's latency.
        self.http = httpx.AsyncClient(base_url=base_url + "/api/v1", timeout=timeout, transport=transport)
        self.tickets: list[int] = []
        self.idle: list[tuple[ClientConnection, asyncio.Task[None]]] = []
        self._next_ticket = 0

    # --- steps ------------------------------------------------------------------------

    async def _step(self, tally: Tally | None, step: str, action: Callable[[], Awaitable[T]]) -> T:
        """Run ``action`` within the timeout, timed under ``step``; failures become :class:`StepFailed`."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                result = await action()
        except TimeoutError:
            raise StepFailed(f"{step}: timeout") from None
        except websockets.InvalidStatus as refused:
            raise StepFailed(f"{step}: {refused.response.status_code}") from None
        except (httpx.HTTPError, OSError, websockets.WebSocketException) as broke:
            raise StepFailed(f"{step}: {type(broke).__name__}") from None
        if tally is not None:
            tally.took(step, time.perf_counter() - started)
        return result

    async def _call(self, step: str, method: str, path: str, expected: int, *,
                    headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        response = await self.http.request(method, path, headers=headers, **kwargs)
        if response.status_code != expected:
            raise _refusal(step, response)
        return response

    async def _connect(self, path: str, token: str, holder: list[ClientConnection]) -> ClientConnection:
        ws = await websockets.connect(
            websocket_url(self.base_url, path), additional_headers={"Authorization": f"Bearer {token}"},
            open_timeout=None, close_timeout=CLOSE_TIMEOUT, max_size=1024 * 1024,
            create_connection=QuietPeerConnection, ping_interval=PING_SECONDS, ping_timeout=PING_TIMEOUT_SECONDS,  # as peers
        )
        holder.append(ws)
        return ws

    def _ticket(self) -> int:
        self._next_ticket += 1
        return self.tickets[self._next_ticket % len(self.tickets)]

    async def _joined(self, tally: Tally | None) -> dict[str, Any]:
        """A session the technician started and a host joined: the join's answer."""
        ticket = self._ticket()
        started = await self._step(tally, "create", lambda: self._call(
            "create", "POST", "/sessions", 201, json={"ticket_id": ticket}, headers=self.tech_headers))
        code = started.json()["code"]
        joined = await self._step(tally, "join", lambda: self._call(
            "join", "POST", "/join", 200, json={"code": code, **HOST_BODY}))
        return dict(joined.json())

    # --- commands ---------------------------------------------------------------------

    async def prepare(self) -> dict[str, Any]:
        """Open the tickets sessions are started on (untimed)."""
        while len(self.tickets) < TICKETS:
            response = await self.http.post("/tickets", headers=self.tech_headers, json={
                "subject": f"Bench ticket {len(self.tickets) + 1}", "requester_name": "Ann",
                "requester_email": "ann@example.com"})
            response.raise_for_status()
            self.tickets.append(int(response.json()["id"]))
        return {"tickets": len(self.tickets)}

    async def open_idle(self, count: int, concurrency: int, seconds: float) -> dict[str, Any]:
        """Hold ``count`` more sessions' host sockets open (``concurrency`` set up at a time, for at
        most ``seconds``); they stay open, read and answered, until :meth:`close_idle`."""
        tally = Tally()
        stop_at = time.monotonic() + seconds
        unclaimed = [count]  # sockets no opener works on yet
        opened = [0]
        started = time.monotonic()

        async def opener() -> None:
            while unclaimed[0] > 0 and time.monotonic() < stop_at:
                unclaimed[0] -= 1
                holder: list[ClientConnection] = []
                try:
                    joined = await self._joined(tally)
                    ws = await self._step(tally, "host_connect", functools.partial(self._greeted, joined, holder))
                except StepFailed as failed:
                    unclaimed[0] += 1
                    tally.errors[failed.kind] += 1
                    await asyncio.gather(*(ws.close() for ws in holder), return_exceptions=True)
                    await _pause(failed, stop_at)
                    continue
                self.idle.append((ws, asyncio.create_task(_drain(ws))))
                opened[0] += 1

        await asyncio.gather(*(opener() for _ in range(concurrency)))
        return {"opened": opened[0], "seconds": time.monotonic() - started, "errors": dict(tally.errors),
                "held": len(self.idle), "open_files": _open_files()}

    async def _greeted(self, joined: dict[str, Any], holder: list[ClientConnection]) -> ClientConnection:
        ws = await self._connect(joined["signalling_path"], joined["host_token"], holder)
        await _expect(ws, "grant", "host_connect")
        return ws

    async def close_idle(self) -> dict[str, Any]:
        """Close every idle socket; how many the broker had not closed first."""
        sockets, self.idle = self.idle, []
        open_until_now = sum(1 for ws, _ in sockets if ws.close_code is None)
        for _ws, reader in sockets:
            reader.cancel()
        for start in range(0, len(sockets), 500):
            await asyncio.gather(*(ws.close() for ws, _ in sockets[start:start + 500]), return_exceptions=True)
        return {"closed": len(sockets), "open_until_now": open_until_now}

    async def probe(self, rate: float, seconds: float) -> dict[str, Any]:
        """``GET /auth/me`` as the technician, ``rate`` a second for ``seconds`` (open loop: a slow
        answer does not delay the next request)."""
        tally = Tally()

        async def one() -> None:
            try:
                await self._step(tally, "get", lambda: self._call("get", "GET", "/auth/me", 200,
                                                                     headers=self.tech_headers))
                tally.done += 1
            except StepFailed as failed:
                tally.errors[failed.kind] += 1

        began = time.monotonic()
        requests = []
        for n in range(max(1, round(rate * seconds))):
            await asyncio.sleep(max(0.0, began + n / rate - time.monotonic()))
            requests.append(asyncio.create_task(one()))
        await asyncio.gather(*requests)
        return tally.as_dict(seconds)

    async def pairings(self, workers: int, seconds: float) -> dict[str, Any]:
        """``workers`` technician-and-host pairs pairing back to back for ``seconds``."""
        return await self._window(workers, seconds, self.timeout * len(PAIRING_STEPS), self._pairing)

    async def _pairing(self, tally: Tally, _worker: int, _n: int) -> None:
        holder: list[ClientConnection] = []
        started = time.perf_counter()
        try:
            joined = await self._joined(tally)
            path = joined["signalling_path"]
            host = await self._step(tally, "host_connect", lambda: self._greeted(joined, holder))

            async def technician_in() -> ClientConnection:
                ws = await self._connect(path, self.token, holder)
                await _expect(ws, "grant", "tech_connect")
                await _expect(host, "peer_joined", "tech_connect")
                return ws

            tech = await self._step(tally, "tech_connect", technician_in)

            async def consent() -> None:
                await host.send(json.dumps({"type": "consent", "permissions": ["view", "control"], "source": "window"}))
                await _expect(tech, "consent", "consent")

            async def offer_answer() -> None:
                await tech.send(json.dumps({"type": "offer", "sdp": _fake_sdp("offer")}))
                await _expect(host, "offer", "offer_answer")
                await host.send(json.dumps({"type": "answer", "sdp": _fake_sdp("answer")}))
                await _expect(tech, "answer", "offer_answer")

            async def ice() -> None:
                for ws, first in ((host, 0), (tech, 10)):
                    for n in range(CANDIDATES):
                        await ws.send(json.dumps(_candidate(first + n)))
                    await ws.send(json.dumps({"type": "ice", "candidate": None}))
                await _expect(tech, "ice", "ice", CANDIDATES + 1)
                await _expect(host, "ice", "ice", CANDIDATES + 1)

            async def end() -> None:
                await tech.send(json.dumps({"type": "end", "reason": "bench pairing done"}))
                await _expect(host, "session_ended", "end")

            await self._step(tally, "consent", consent)
            await self._step(tally, "offer_answer", offer_answer)
            await self._step(tally, "ice", ice)
            await self._step(tally, "end", end)
            tally.took("pairing", time.perf_counter() - started)
        finally:
            await asyncio.gather(*(ws.close() for ws in holder), return_exceptions=True)

    async def writes(self, kind: str, writers: int, seconds: float, setup_seconds: float,
                     events_per_batch: int = 4, segment: bytes = b"") -> dict[str, Any]:
        """``writers`` hosts, each in a session of its own, writing back to back for ``seconds``:
        ``kind`` "events" (batches of ``events_per_batch``) or "segments" (``segment``, one a request)."""
        setup = Tally()
        sessions: list[dict[str, Any]] = []
        stop_at = time.monotonic() + setup_seconds
        while len(sessions) < writers and time.monotonic() < stop_at:
            try:
                sessions.append(await self._joined(None))
            except StepFailed as failed:
                setup.errors[failed.kind] += 1
                await _pause(failed, stop_at)
        if len(sessions) < writers:
            raise RuntimeError(f"only {len(sessions)} of {writers} writers' sessions were set up in "
                               f"{setup_seconds:g} s: {dict(setup.errors)}")
        origin_ms = int(time.time() * 1000)
        sha256 = hashlib.sha256(segment).hexdigest()

        async def write(tally: Tally, worker: int, n: int) -> None:
            session = sessions[worker]
            headers = {"Authorization": f"Bearer {session['host_token']}"}
            path = f"/sessions/{session['session_id']}"
            if kind == "events":
                at = datetime.now(UTC).isoformat()
                events = [{"id": uuid.uuid4().hex, "kind": EVENT_KINDS[i % len(EVENT_KINDS)][0], "at": at,
                           "data": EVENT_KINDS[i % len(EVENT_KINDS)][1]} for i in range(events_per_batch)]
                await self._step(tally, "write", lambda: self._call(
                    "events", "POST", path + "/events", 200, json={"events": events}, headers=headers))
            else:
                headers.update({"X-Segment-SHA256": sha256, "X-Segment-Offset-Ms": str(n * 1000),
                                "X-Segment-Duration-Ms": "1000", "X-Recording-Origin-Ms": str(origin_ms)})
                await self._step(tally, "write", lambda: self._call(
                    "segments", "PUT", f"{path}/recording/{n}", 204, content=segment, headers=headers))

        result = await self._window(writers, seconds, self.timeout, write)
        result["setup_errors"] = dict(setup.errors)
        return result

    async def _window(self, workers: int, seconds: float, grace: float,
                      unit: Callable[[Tally, int, int], Awaitable[None]]) -> dict[str, Any]:
        """Run ``unit`` back to back in ``workers`` tasks for ``seconds``; what finished in that window.

        After the window no unit starts; those running get ``grace`` seconds (the timeouts of
        the steps a unit has left at most) to finish (``late``), then are cancelled (``cut_off``).
        """
        tally = Tally()
        began = time.monotonic()
        window_end = began + seconds

        async def worker(number: int) -> None:
            n = 0
            while time.monotonic() < window_end:
                try:
                    await unit(tally, number, n)
                except StepFailed as failed:
                    tally.errors[failed.kind] += 1
                    await _pause(failed, window_end)
                else:
                    if time.monotonic() <= window_end:
                        tally.done += 1
                    else:
                        tally.late += 1
                n += 1

        tasks = [asyncio.create_task(worker(i)) for i in range(workers)]
        _done, pending = await asyncio.wait(tasks, timeout=seconds + grace)
        for task in pending:
            task.cancel()
        tally.cut_off = len(pending)
        await asyncio.gather(*pending, return_exceptions=True)
        return tally.as_dict(seconds)


async def _drain(ws: ClientConnection) -> None:
    """Read what the broker sends an idle socket (grant refreshes), so that its pings are answered."""
    try:
        async for _frame in ws:
            pass
    except websockets.ConnectionClosed:
        pass


async def _pause(failed: StepFailed, until: float) -> None:
    """Wait as a 429 or 503 asked (``Retry-After``), never past ``until``."""
    if failed.retry_after:
        await asyncio.sleep(max(0.0, min(failed.retry_after, until - time.monotonic())))


def _open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


# --- the process ---------------------------------------------------------------------


def _serve(conn: Connection, base_url: str, token: str, timeout: float) -> None:
    """The generator process: run commands from ``conn`` until ``quit``."""
    limit = raise_fd_limit()

    async def main() -> None:
        generator = LoadGenerator(base_url, token, timeout)
        conn.send(("ready", {"open_files_limit": limit}))
        try:
            while True:
                command, arguments = await asyncio.to_thread(conn.recv)
                if command == "quit":
                    return
                try:
                    result = await getattr(generator, command)(**arguments)
                except Exception as failed:  # noqa: BLE001 - reported to the benchmark, which stops there
                    conn.send(("error", f"{type(failed).__name__}: {failed}"))
                else:
                    conn.send(("ok", result))
        finally:
            await generator.close_idle()
            await generator.http.aclose()

    asyncio.run(main())


class GeneratorFailed(RuntimeError):
    """The generator failed a command, or did not answer it in time."""


class GeneratorProcess:
    """The load generator in a spawned process of its own, driven one command at a time."""

    COMMANDS = frozenset({"prepare", "open_idle", "close_idle", "probe", "pairings", "writes"})

    def __init__(self, base_url: str, token: str, timeout: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, base_url, token, timeout),
                                       name="deskhand-load-generator", daemon=True)
        self.process.start()
        child.close()
        self.ready = self._answer("start", 60)

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def call(self, command: str, deadline: float, **arguments: Any) -> dict[str, Any]:
        """Run ``command`` in the generator; its result. Raises :class:`GeneratorFailed` when it
        fails or takes longer than ``deadline`` seconds (the generator is then stopped)."""
        if command not in self.COMMANDS:
            raise ValueError(f"unknown generator command {command!r}")
        self._conn.send((command, arguments))
        return self._answer(command, deadline)

    def _answer(self, command: str, deadline: float) -> dict[str, Any]:
        if not self._conn.poll(deadline):
            self.stop()
            raise GeneratorFailed(f"the load generator did not finish {command!r} within {deadline:g} s")
        try:
            status, value = self._conn.recv()
        except EOFError:
            self.stop()
            raise GeneratorFailed(f"the load generator exited (code {self.process.exitcode}) during {command!r}") from None
        if status == "error":
            raise GeneratorFailed(f"the load generator failed {command!r}: {value}")
        return dict(value)

    def stop(self) -> None:
        """Ask it to quit (closing what it holds), then kill it if it does not."""
        if self.process.is_alive():
            try:
                self._conn.send(("quit", {}))
            except (BrokenPipeError, OSError):
                pass
            self.process.join(30)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self._conn.close()

    def __enter__(self) -> GeneratorProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
