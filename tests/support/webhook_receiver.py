"""An HTTP server on 127.0.0.1 that records every POST it gets: the other end of the broker's webhooks.

Usage::

    with running_receiver() as receiver:
        url = receiver.url("/hook")           # give it to a webhook endpoint
        receiver.failures["/hook"] = 3         # answer 500 to the next three POSTs there
        got = receiver.wait_for("/hook", 2)    # the first two requests, once they came
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    at: float
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, object]:
        data: dict[str, object] = json.loads(self.body)
        return data


@dataclass
class Receiver:
    """An HTTP server that records every POST; paths in ``failures`` answer 500 that many times first."""

    server: ThreadingHTTPServer
    requests: list[Received] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def wait_for(self, path: str, count: int, timeout: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.at(path)
            if len(got) >= count:
                return got
            time.sleep(0.02)
        raise AssertionError(f"{path} got {len(self.at(path))} requests, not {count}, in {timeout} s")


@contextlib.contextmanager
def running_receiver() -> Iterator[Receiver]:
    """A :class:`Receiver` serving in a thread until the block ends."""
    state: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            me = state["receiver"]
            with me.lock:
                me.requests.append(Received(time.monotonic(), self.path, dict(self.headers), body))
                failing = me.failures.get(self.path, 0)
                if failing > 0:
                    me.failures[self.path] = failing - 1
            self.send_response(500 if failing else 204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state["receiver"] = Receiver(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state["receiver"]
    finally:
        server.shutdown()
        server.server_close()
