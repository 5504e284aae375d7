"""HTTPS end to end: a broker with a self-signed certificate, the console trusting it with --ca-file,
plain HTTP refused by the broker and by the clients, and forwarded addresses from trusted proxies only."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from peer.signalling import SignallingChannel
from peer.transfers import TransferClient
from peer.transport import trust_ca_file
from protocol.api import signalling_path
from tech_console import cli as console_cli
from tests.support.api import bearer, paired_session
from tests.support.broker import BrokerProcess
from tests.support.tls import CertificateFiles, self_signed_certificate

CONSOLE = [sys.executable, "-m", "tech_console.cli"]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> CertificateFiles:
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def broker_env(certificate: CertificateFiles) -> dict[str, str]:
    return {"DESKHAND_TLS_CERT_FILE": str(certificate.cert), "DESKHAND_TLS_KEY_FILE": str(certificate.key)}


def _console(*args: str, tmp_path: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESKHAND_")}
    env["DESKHAND_CONSOLE_CREDENTIALS"] = str(tmp_path / "c.json")
    return subprocess.run([*CONSOLE, *args], input=stdin, capture_output=True, text=True, env=env, timeout=60, check=False)


def test_the_broker_serves_https_and_the_console_signs_in_with_its_ca(
    broker: BrokerProcess, certificate: CertificateFiles, tmp_path: Path
) -> None:
    assert broker.base_url.startswith("https://127.0.0.1:")
    login = _console("--broker", broker.base_url, "--ca-file", str(certificate.cert),
                     "login", "-u", "admin", "--password-stdin", stdin=broker.admin_password + "\n", tmp_path=tmp_path)
    assert login.returncode == 0, login.stderr
    me = _console("--ca-file", str(certificate.cert), "whoami", tmp_path=tmp_path)  # the saved broker URL
    assert me.returncode == 0, me.stderr
    assert me.stdout.startswith("admin ") and f"at {broker.base_url}" in me.stdout


def test_without_the_ca_the_certificate_is_not_trusted(broker: BrokerProcess, tmp_path: Path) -> None:
    refused = _console("--broker", broker.base_url, "login", "-u", "admin", "--password-stdin",
                       stdin=broker.admin_password + "\n", tmp_path=tmp_path)
    assert refused.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in refused.stderr


def test_plain_http_to_the_https_port_fails(broker: BrokerProcess) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.get(broker.base_url.replace("https://", "http://") + "/api/v1/health", timeout=5)


@pytest.fixture
def no_connections(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Record (and block) every outgoing connection attempt of this process."""
    attempts: list[object] = []

    def refuse(_sock: socket.socket, address: object) -> None:
        attempts.append(address)
        raise ConnectionRefusedError("a test forbids connecting")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    yield attempts


def test_plain_http_to_another_machine_is_refused_before_connecting(
    no_connections: list[object], capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DESKHAND_CONSOLE_CREDENTIALS", str(tmp_path / "c.json"))
    monkeypatch.setenv("DESKHAND_TOKEN", "dhu_x")
    assert console_cli.main(["--broker", "http://10.1.2.3:8000", "whoami"]) == console_cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("deskhand-console: refusing http://10.1.2.3:8000: http:// is not encrypted")
    assert "Use https://" in err and "--insecure" in err
    assert no_connections == []


def test_a_spoofed_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(start_broker) -> None:
    body = {"code": "000000000", "machine_name": "m", "os": "o", "user_name": "u"}
    spoof = {"X-Forwarded-For": "203.0.113.7"}
    for proxies, expected in (("", "127.0.0.1"), ("127.0.0.1", "203.0.113.7")):
        broker = start_broker(DESKHAND_TRUSTED_PROXIES=proxies)
        assert broker.http.post("/join", json=body, headers=spoof).status_code in (404, 410)
        rows = broker.sql("SELECT source FROM audit_events WHERE kind = 'code.redeem_failed'")
        assert rows == [(expected,)]


@pytest.fixture
def trusting(certificate: CertificateFiles) -> Iterator[None]:
    """This process's clients trust the test certificate, as ``--ca-file`` makes them; undone afterwards."""
    trust_ca_file(certificate.cert)
    yield
    trust_ca_file(None)


async def test_signalling_and_transfers_run_over_wss_and_https(broker: BrokerProcess, trusting: None) -> None:
    session_id, host_token = paired_session(broker, bearer(broker.login()))
    channel = await SignallingChannel.open(broker.base_url, signalling_path(session_id), host_token)  # wss://, websockets
    try:
        assert not channel.closed
    finally:
        await channel.close()
    async with TransferClient(broker.base_url, host_token, session_id) as files:  # https://, aiohttp
        assert await files.all() == []
