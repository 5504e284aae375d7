"""A host asks a busy broker again after its Retry-After, and gives up on anything else at once.

The broker here is a stand-in on 127.0.0.1 that answers from a script: the retry rule is the
host's own logic (a busy answer means the code was not looked at, so asking again is safe).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from host_client.join import JoinRefused, join_session

JOINED = {
    "session_id": "5b0c1f7e-2d4a-4c55-9a1e-0f3b6f1d2c3a", "ticket_id": 1,
    "technician": {"id": 1, "username": "tech", "display_name": "Tech"},
    "ice": {"servers": [], "loopback_only": True}, "broker_public_key": "A" * 43 + "=",
    "signalling_path": "/api/v1/sessions/5b0c1f7e-2d4a-4c55-9a1e-0f3b6f1d2c3a/signal", "host_token": "dhh_x",
}
BUSY = (503, {"Retry-After": "0"}, {"error": "broker_busy", "message": "the broker is busy: try again in 0 s"})
WRONG = (404, {}, {"error": "code_unknown", "message": "no session has this code"})


@pytest.fixture
def scripted_broker() -> Iterator[tuple[str, list[tuple[int, dict[str, str], dict]], list[str]]]:
    answers: list[tuple[int, dict[str, str], dict]] = []
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            asked.append(self.path)
            status, headers, body = answers.pop(0)
            data = json.dumps(body).encode()
            self.send_response(status)
            for name, value in {**headers, "Content-Type": "application/json", "Content-Length": str(len(data))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", answers, asked
    finally:
        server.shutdown()
        server.server_close()


def test_a_busy_broker_is_asked_again_until_it_answers(scripted_broker) -> None:
    url, answers, asked = scripted_broker
    answers += [BUSY, BUSY, (200, {}, JOINED)]
    joined = asyncio.run(join_session(url, "123456789"))
    assert joined.host_token == "dhh_x" and len(asked) == 3


def test_a_wrong_code_is_not_asked_again(scripted_broker) -> None:
    url, answers, asked = scripted_broker
    answers += [WRONG, (200, {}, JOINED)]
    with pytest.raises(JoinRefused) as refused:
        asyncio.run(join_session(url, "123456789"))
    assert refused.value.status == 404 and len(asked) == 1


def test_a_broker_asking_for_a_longer_wait_than_the_host_keeps_asking_is_reported(scripted_broker) -> None:
    url, answers, asked = scripted_broker
    answers += [(503, {"Retry-After": "3600"}, BUSY[2])]
    with pytest.raises(JoinRefused, match="Retry-After: 3600 s") as refused:
        asyncio.run(join_session(url, "123456789"))
    assert refused.value.status == 503 and len(asked) == 1
