"""What a stranger can push into the broker over HTTP is bounded: bodies, heads, and time.

Each refusal is checked on the wire with :class:`~tests.support.raw_http.RawConnection`
(a plain socket), because a well-behaved client cannot misbehave on purpose: a body
declared or streamed past its limit gets ``413`` at once, a head past its limit ``431``,
a head or body that stalls ``408``, every one in the JSON error shape and with the
connection closed, so the rest of an oversized request is never read. The last test
runs all the attacks at once against a fresh broker and holds its memory (the kernel's
peak RSS of the process, ``VmHWM``) under a bound while another user keeps working.
"""

from __future__ import annotations

import hashlib
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from protocol.recording import MAX_SEGMENT_BYTES
from protocol.transfers import CHUNK_SIZE
from tests.support.api import bearer, paired_session
from tests.support.broker import BrokerProcess
from tests.support.raw_http import RawAnswer, RawConnection

MiB = 1024 * 1024
BODY_LIMIT = 1 * MiB
"""DESKHAND_HTTP_MAX_BODY_BYTES: the default."""
HEADER_LIMIT = 64 * 1024
"""DESKHAND_HTTP_MAX_HEADER_BYTES: the default."""
HEAD_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0
"""Shorter than the defaults (10 s, 30 s), so that waiting for them keeps the tests short."""
SLACK = 3.0
"""What a cut-off may take beyond its timeout on a busy 2-core machine."""

RSS_BOUND_MIB = 300
"""The broker's peak memory through every attack below (it idles at about 130 MiB)."""

LOGIN = "/api/v1/auth/login"
SOME_SESSION = "3f2b8c1e-0000-4000-8000-000000000000"
SOME_TRANSFER = "8d1e2f3a-0000-4000-8000-000000000000"


@pytest.fixture(scope="module")
def broker_env() -> dict[str, str]:
    return {"DESKHAND_HTTP_HEADER_TIMEOUT_SECONDS": str(HEAD_TIMEOUT),
            "DESKHAND_HTTP_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT)}


def assert_refusal(answer: RawAnswer | None, status: int, error: str) -> dict[str, object]:
    """``answer`` is a JSON refusal with ``status`` and ``error``; returns its body."""
    assert answer is not None, f"expected {status} {error}, the broker closed without an answer"
    assert answer.status == status, (answer.status, answer.body[:300])
    assert answer.headers.get("content-type") == "application/json", answer.headers
    body = answer.json()
    assert body["error"] == error and body["message"], body
    return body


def assert_closed(raw: RawConnection) -> None:
    assert raw.wait_closed(SLACK) is not None, "the broker kept the connection of a refused request open"


# --- bodies -------------------------------------------------------------------------------


def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(broker: BrokerProcess) -> None:
    with RawConnection(broker.base_url) as raw:
        raw.send_head("POST", LOGIN, {"Content-Type": "application/json", "Content-Length": str(100_000_000)})
        raw.send(b"{" + b" " * 65536)
        body = assert_refusal(raw.answer(), 413, "too_large")
        assert str(BODY_LIMIT) in str(body["message"])
        assert_closed(raw)


def test_a_streamed_body_is_refused_once_it_passes_the_limit(broker: BrokerProcess) -> None:
    with RawConnection(broker.base_url) as raw:
        raw.send_head("POST", LOGIN, {"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
        # Half a MiB past the limit, and no closing chunk: the answer must not wait for the end.
        raw.stream(BODY_LIMIT + MiB // 2, chunked=True)
        assert_refusal(raw.answer(), 413, "too_large")
        assert_closed(raw)


def test_a_body_under_the_limit_still_reaches_the_route(broker: BrokerProcess) -> None:
    padded = b'{"username": "admin", "password": "wrong"' + b" " * (BODY_LIMIT - 100) + b"}"
    answer = httpx.post(broker.api + "/auth/login", content=padded, headers={"Content-Type": "application/json"})
    assert answer.status_code == 401, answer.text


@pytest.mark.parametrize(("path", "limit"), [
    (f"/api/v1/sessions/{SOME_SESSION}/recording/0", MAX_SEGMENT_BYTES),
    (f"/api/v1/sessions/{SOME_SESSION}/transfers/{SOME_TRANSFER}/chunks/0", CHUNK_SIZE),
])
def test_segments_and_chunks_keep_their_own_limits(broker: BrokerProcess, path: str, limit: int) -> None:
    with RawConnection(broker.base_url) as raw:
        raw.send_head("PUT", path, {"Content-Length": str(limit + 1)})
        body = assert_refusal(raw.answer(), 413, "too_large")
        assert str(limit) in str(body["message"])
    # Over the JSON default and within its own limit: the route itself answers (here: no such session).
    answer = httpx.put(broker.api + path.removeprefix("/api/v1"), content=b"\0" * (2 * MiB),
                       headers={"X-Segment-SHA256": "0" * 64, "X-Chunk-SHA256": "0" * 64,
                                "X-Segment-Offset-Ms": "0", "X-Segment-Duration-Ms": "1000"}, timeout=30)
    assert answer.status_code != 413 and answer.json()["error"] != "too_large", answer.text


def test_a_real_segment_over_the_json_limit_passes_the_size_check(broker: BrokerProcess, admin: dict[str, str]) -> None:
    session_id, host = paired_session(broker, admin)
    data = b"\1" * (2 * MiB)
    answer = broker.http.put(f"/sessions/{session_id}/recording/0", content=data, headers={
        **bearer(host), "X-Segment-SHA256": hashlib.sha256(data).hexdigest(),
        "X-Segment-Offset-Ms": "0", "X-Segment-Duration-Ms": "1000"})
    # Whatever the route thinks of the content, the size was not the problem.
    assert answer.status_code != 413, answer.text


@pytest.mark.slow  # waits out a timeout
def test_a_stalled_body_is_cut_off(broker: BrokerProcess) -> None:
    with RawConnection(broker.base_url) as raw:
        raw.send_head("POST", LOGIN, {"Content-Type": "application/json", "Content-Length": "200"})
        raw.send(b'{"username": "adm')
        started = time.monotonic()
        body = assert_refusal(raw.answer(timeout=BODY_TIMEOUT + SLACK), 408, "body_timeout")
        waited = time.monotonic() - started
        assert BODY_TIMEOUT - 0.5 <= waited <= BODY_TIMEOUT + SLACK, waited
        assert "2 s" in str(body["message"])
        assert_closed(raw)


# --- heads --------------------------------------------------------------------------------


def test_a_16_mib_header_is_refused_once_the_head_passes_the_limit(broker: BrokerProcess) -> None:
    with RawConnection(broker.base_url) as raw:
        raw.send(f"GET /api/v1/health HTTP/1.1\r\nHost: {raw.host}\r\nX-Filler: ".encode())
        sent = raw.stream(16 * MiB, byte=b"a")
        raw.send(b"\r\n\r\n")
        body = assert_refusal(raw.answer(), 431, "header_too_large")
        assert str(HEADER_LIMIT) in str(body["message"])
        assert sent < 16 * MiB, "the broker read the whole 16 MiB header"
        assert_closed(raw)


def test_a_head_just_under_the_limit_is_served(broker: BrokerProcess) -> None:
    answer = httpx.get(broker.api + "/health", headers={"X-Filler": "a" * (HEADER_LIMIT - 1024)})
    assert answer.status_code == 200, answer.text


@pytest.mark.slow  # waits out a timeout
def test_a_slow_head_is_cut_off_with_408(broker: BrokerProcess) -> None:
    with RawConnection(broker.base_url) as raw:
        raw.send(b"GET /api/v1/health HTTP/1.1\r\n")
        started = time.monotonic()
        while raw.send(b"X-Slow: 1\r\n") and time.monotonic() - started < HEAD_TIMEOUT + SLACK:
            time.sleep(0.3)
        assert_refusal(raw.answer(timeout=SLACK), 408, "header_timeout")
        assert HEAD_TIMEOUT - 0.5 <= time.monotonic() - started <= HEAD_TIMEOUT + SLACK + 0.5


@pytest.mark.slow  # waits out a timeout
def test_a_silent_connection_is_closed_without_an_answer(broker: BrokerProcess) -> None:
    with RawConnection(broker.base_url) as raw:
        waited = raw.wait_closed(HEAD_TIMEOUT + SLACK)
        assert waited is not None and waited >= HEAD_TIMEOUT - 0.5, waited


@pytest.mark.slow  # waits out a timeout
def test_keep_alive_requests_each_get_the_head_timeout_afresh(broker: BrokerProcess) -> None:
    with RawConnection(broker.base_url) as raw:
        for _ in range(3):
            time.sleep(HEAD_TIMEOUT * 0.6)  # within uvicorn's 5 s keep-alive; three together exceed the timeout
            raw.send_head("GET", "/api/v1/health")
            answer = raw.answer()
            assert answer is not None and answer.status == 200


def test_malformed_http_gets_a_json_400(broker: BrokerProcess) -> None:
    with RawConnection(broker.base_url) as raw:
        raw.send(b"GET /api/v1/health HTTP/1.1\r\nHost x\r\n\r\n")
        assert_refusal(raw.answer(), 400, "bad_request")


# --- all at once ----------------------------------------------------------------------------


class PeakMemory:
    """The broker process's resident memory, sampled every 20 ms, and the kernel's peak.

    The kernel's peak (``VmHWM``) is reset on entry, so that it is the peak of the block
    and not of the broker's start (its migrations alone reach about 185 MiB).
    """

    def __init__(self, pid: int) -> None:
        self.status = Path(f"/proc/{pid}/status")
        self.clear_refs = Path(f"/proc/{pid}/clear_refs")
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)

    def field_kib(self, name: str) -> int:
        for line in self.status.read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
        raise AssertionError(f"no {name} in {self.status}")

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.samples.append(self.field_kib("VmRSS"))

    def __enter__(self) -> PeakMemory:
        self.clear_refs.write_text("5")  # 5: reset the peak resident set size (proc(5))
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def json_operations(broker: BrokerProcess) -> list[tuple[str, str]]:
    """(method, path with every parameter filled in) of every operation taking a JSON body."""
    spec = httpx.get(broker.api + "/openapi.json").json()
    fill = {"session_id": SOME_SESSION, "transfer_id": SOME_TRANSFER, "request_id": SOME_TRANSFER}
    found = []
    for template, operations in spec["paths"].items():
        for method, operation in operations.items():
            if "application/json" not in operation.get("requestBody", {}).get("content", {}):
                continue
            path = template
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    path = path.replace("{" + parameter["name"] + "}", fill.get(parameter["name"], "1"))
            found.append((method.upper(), path))
    return found


def attack(jobs: list[Callable[[], object]]) -> list[object]:
    """Run every job in its own thread at once; their results (an exception counts as one)."""
    results: list[object] = [None] * len(jobs)

    def run(i: int) -> None:
        try:
            results[i] = jobs[i]()
        except Exception as exc:  # noqa: BLE001 - reported by the caller's asserts
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


def huge_body(base_url: str, *, chunked: bool) -> RawAnswer | None:
    """100 MB to the sign-in, as fast as the broker takes it; the answer that came back."""
    with RawConnection(base_url) as raw:
        length = {"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": str(100_000_000)}
        raw.send_head("POST", LOGIN, {"Content-Type": "application/json", **length})
        raw.stream(100_000_000, chunked=chunked)
        return raw.answer()


def huge_header(base_url: str) -> RawAnswer | None:
    with RawConnection(base_url) as raw:
        raw.send(f"GET /api/v1/health HTTP/1.1\r\nHost: {raw.host}\r\nX-Filler: ".encode())
        raw.stream(16 * MiB, byte=b"a")
        raw.send(b"\r\n\r\n")
        return raw.answer()


def slow_heads(base_url: str, count: int) -> list[float | None]:
    """``count`` connections sending a header line every 0.5 s; when the broker closed each."""
    with ExitStack() as stack:
        connections = [stack.enter_context(RawConnection(base_url)) for _ in range(count)]
        for raw in connections:
            raw.send(b"GET /api/v1/health HTTP/1.1\r\n")
        started = time.monotonic()
        closed: list[float | None] = [None] * count
        while time.monotonic() - started < HEAD_TIMEOUT + SLACK and None in closed:
            time.sleep(0.5)
            for i, raw in enumerate(connections):
                if closed[i] is None and not raw.send(b"X-Slow: 1\r\n"):
                    closed[i] = time.monotonic() - started
        for i, raw in enumerate(connections):
            if closed[i] is None and raw.wait_closed(0.01) is not None:
                closed[i] = time.monotonic() - started
        return closed


def big_bodies_to_every_json_route(base_url: str, operations: list[tuple[str, str]]) -> list[RawAnswer | None]:
    answers = []
    for method, path in operations:
        with RawConnection(base_url) as raw:
            raw.send_head(method, path, {"Content-Type": "application/json", "Content-Length": str(8 * MiB)})
            raw.stream(8 * MiB)
            answers.append(raw.answer())
    return answers


@pytest.fixture
def fresh_broker() -> Iterator[BrokerProcess]:
    """A broker of this test alone, so that its peak memory is this test's."""
    env = {"DESKHAND_HTTP_HEADER_TIMEOUT_SECONDS": str(HEAD_TIMEOUT)}
    with BrokerProcess.start(env) as running:
        yield running


@pytest.mark.slow
def test_memory_stays_bounded_and_others_are_served_through_the_size_attacks(fresh_broker: BrokerProcess) -> None:
    broker = fresh_broker
    headers = {"Authorization": f"Bearer {broker.login()}"}
    operations = json_operations(broker)
    assert len(operations) > 30, operations
    base = broker.base_url
    latencies: list[float] = []
    other_statuses: list[int] = []
    flooding = threading.Event()

    def other_user() -> None:
        with httpx.Client(base_url=broker.api, timeout=30) as client:
            while not flooding.is_set():
                started = time.monotonic()
                other_statuses.append(client.get("/tickets", headers=headers).status_code)
                latencies.append(time.monotonic() - started)
                time.sleep(0.05)

    worker = threading.Thread(target=other_user, daemon=True)
    with PeakMemory(broker.process.pid) as memory:
        idle_kib = memory.field_kib("VmRSS")
        worker.start()
        started = time.monotonic()
        results = attack([
            *[lambda: huge_body(base, chunked=False) for _ in range(4)],
            *[lambda: huge_body(base, chunked=True) for _ in range(4)],
            lambda: huge_header(base),
            lambda: slow_heads(base, 40),
            lambda: big_bodies_to_every_json_route(base, operations),
        ])
        seconds = time.monotonic() - started
        flooding.set()
        worker.join(30)
    peak_kib = memory.field_kib("VmHWM")
    print(f"\nbroker memory: idle {idle_kib // 1024} MiB, sampled peak {max(memory.samples) // 1024} MiB, "
          f"VmHWM {peak_kib // 1024} MiB; attacks took {seconds:.1f} s; another user's GET /tickets during them: "
          f"{len(latencies)} requests, median {statistics.median(latencies) * 1000:.0f} ms, "
          f"max {max(latencies) * 1000:.0f} ms")

    *bodies, header, slow, json_routes = results
    for answer in bodies:
        assert isinstance(answer, RawAnswer | None), answer
        assert_refusal(answer, 413, "too_large")
    assert_refusal(header if isinstance(header, RawAnswer) else None, 431, "header_too_large")
    assert isinstance(slow, list), slow
    assert all(t is not None and t <= HEAD_TIMEOUT + SLACK for t in slow), slow
    assert isinstance(json_routes, list), json_routes
    for (method, path), answer in zip(operations, json_routes, strict=False):
        assert answer is not None and answer.status == 413, (method, path, answer)
        assert_refusal(answer, 413, "too_large")
    assert other_statuses and set(other_statuses) == {200}, other_statuses
    assert peak_kib < RSS_BOUND_MIB * 1024, f"the broker's memory peaked at {peak_kib // 1024} MiB"
