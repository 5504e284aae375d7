"""Clients refuse unencrypted URLs to other machines before connecting, and trust a given CA file."""

from __future__ import annotations

import argparse
import ssl
from pathlib import Path

import pytest

from peer.transport import add_transport_options, ca_file, load_tls_context, websocket_tls
from protocol.transport import TransportError, check_transport, checked_broker_url, is_loopback
from tests.support.tls import self_signed_certificate


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "localhost", "LOCALHOST", "::ffff:127.0.0.1"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["10.1.2.3", "128.0.0.1", "::2", "localhost.example.org", "broker", "0.0.0.0"])
def test_other_hosts_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8000", "http://localhost:8000/", "http://[::1]:8000", "ws://127.0.0.1:9/api/v1/x",
     "https://10.1.2.3:8443", "https://broker.example.org", "wss://broker.example.org/api/v1/x"],
)
def test_encrypted_or_local_urls_pass(url: str) -> None:
    check_transport(url)


@pytest.mark.parametrize("url", ["http://10.1.2.3:8000", "http://broker.example.org", "ws://10.1.2.3:8000/api"])
def test_plain_urls_to_other_machines_are_refused_with_why_and_how(url: str) -> None:
    with pytest.raises(TransportError) as refused:
        check_transport(url)
    message = str(refused.value)
    assert "not encrypted" in message and "tokens" in message and "screen" in message
    assert "https://" in message or "wss://" in message
    assert "--insecure" in message


@pytest.mark.parametrize("url", ["http://10.1.2.3:8000", "ws://broker.example.org/api"])
def test_insecure_skips_the_refusal(url: str) -> None:
    check_transport(url, insecure=True)


@pytest.mark.parametrize(
    ("url", "words"),
    [("ftp://127.0.0.1", "must start with https://"), ("127.0.0.1:8000", "must start with https://"),
     ("http://", "names no host"), ("https://h?x=1", "has no .query"), ("https://h:port", "malformed port"),
     ("wss://broker.example.org", "must start with https://")],
)
def test_malformed_broker_urls_are_refused(url: str, words: str) -> None:
    with pytest.raises(TransportError, match=words):
        checked_broker_url(url, insecure=True)


def test_broker_url_is_normalised() -> None:
    assert checked_broker_url(" https://broker.example.org/ ") == "https://broker.example.org"
    assert checked_broker_url("http://10.1.2.3:8000/", insecure=True) == "http://10.1.2.3:8000"


def test_the_options_parse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = self_signed_certificate(tmp_path)
    monkeypatch.delenv("DESKHAND_CA_FILE", raising=False)
    parser = argparse.ArgumentParser()
    add_transport_options(parser)
    assert vars(parser.parse_args([])) == {"insecure": False, "ca_file": None}
    args = parser.parse_args(["--insecure", "--ca-file", str(files.cert)])
    assert args.insecure and args.ca_file == files.cert
    monkeypatch.setenv("DESKHAND_CA_FILE", str(files.cert))
    parser = argparse.ArgumentParser()
    add_transport_options(parser)
    assert parser.parse_args([]).ca_file == files.cert


def test_bad_ca_files_are_refused_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    for path, words in [(tmp_path / "missing.pem", "does not exist"), (tmp_path, "is a directory"),
                        (tmp_path / "junk.pem", "holds no PEM certificate")]:
        with pytest.raises(argparse.ArgumentTypeError, match=words):
            ca_file(str(path))


def test_a_ca_file_is_trusted_in_addition_to_the_system(tmp_path: Path) -> None:
    files = self_signed_certificate(tmp_path)
    plain, extended = load_tls_context(None), load_tls_context(files.cert)
    assert extended.cert_store_stats()["x509_ca"] == plain.cert_store_stats()["x509_ca"] + 1
    assert extended.verify_mode == ssl.CERT_REQUIRED and extended.check_hostname


def test_websockets_get_a_context_for_wss_only() -> None:
    assert isinstance(websocket_tls("wss://broker.example.org/x"), ssl.SSLContext)
    assert websocket_tls("ws://127.0.0.1:8000/x") is None
