"""The broker's HTTPS and proxy settings: refused at start, with the fix, when they cannot work."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from pydantic import ValidationError

from broker.cli import main
from broker.settings import Settings
from tests.support.tls import CertificateFiles, self_signed_certificate


@pytest.fixture(autouse=True)
def _no_inherited_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("DESKHAND_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def files(tmp_path: Path) -> CertificateFiles:
    return self_signed_certificate(tmp_path)


def _refusal(**values: object) -> str:
    with pytest.raises(ValidationError) as refused:
        Settings(**values)
    return str(refused.value)


def test_no_tls_by_default_and_nobody_trusted(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert not settings.tls and settings.trusted_proxy_networks == ()


def test_a_certificate_and_its_key_serve_https(files: CertificateFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESKHAND_TLS_CERT_FILE", str(files.cert))
    monkeypatch.setenv("DESKHAND_TLS_KEY_FILE", str(files.key))
    monkeypatch.setenv("DESKHAND_TRUSTED_PROXIES", "10.0.0.5,fd00::/8")
    settings = Settings()
    assert settings.tls and settings.tls_key_file == files.key
    assert [str(n) for n in settings.trusted_proxy_networks] == ["10.0.0.5/32", "fd00::/8"]


def test_empty_variables_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESKHAND_TLS_CERT_FILE", "")
    monkeypatch.setenv("DESKHAND_TLS_KEY_FILE", "")
    assert not Settings().tls


def test_both_or_neither(files: CertificateFiles) -> None:
    assert "go together" in _refusal(tls_cert_file=files.cert)
    assert "go together" in _refusal(tls_key_file=files.key)


def test_missing_and_unreadable_files(files: CertificateFiles, tmp_path: Path) -> None:
    assert "does not exist" in _refusal(tls_cert_file=tmp_path / "nope.pem", tls_key_file=files.key)
    assert "does not exist" in _refusal(tls_cert_file=files.cert, tls_key_file=tmp_path)
    if os.geteuid() != 0:  # root reads everything
        files.cert.chmod(0o000)
        assert "not readable" in _refusal(tls_cert_file=files.cert, tls_key_file=files.key)


def test_a_key_others_can_read_is_refused_with_the_chmod(files: CertificateFiles) -> None:
    files.key.chmod(0o640)
    message = _refusal(tls_cert_file=files.cert, tls_key_file=files.key)
    assert "readable by other users" in message and f"chmod 600 {files.key}" in message


def test_a_key_of_another_certificate_is_refused(files: CertificateFiles, tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    other = self_signed_certificate(tmp_path / "other")
    assert "key belongs to the certificate" in _refusal(tls_cert_file=files.cert, tls_key_file=other.key)


def test_an_encrypted_key_is_refused_with_how_to_decrypt(files: CertificateFiles) -> None:
    key = serialization.load_pem_private_key(files.key.read_bytes(), None)
    files.key.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret passphrase"),
    ))
    assert "openssl pkey" in _refusal(tls_cert_file=files.cert, tls_key_file=files.key)


def test_bad_trusted_proxies_are_refused() -> None:
    assert "'proxy.lan' is not an IP address or network" in _refusal(trusted_proxies="10.0.0.5,proxy.lan")


def test_serve_names_the_variables(files: CertificateFiles, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    monkeypatch.setenv("DESKHAND_TLS_CERT_FILE", str(files.cert))
    assert main(["serve", "--data-dir", str(tmp_path / "data"), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("deskhand-broker: ") and "DESKHAND_TLS_CERT_FILE and DESKHAND_TLS_KEY_FILE go together" in err
    monkeypatch.setenv("DESKHAND_TRUSTED_PROXIES", "nope")
    assert main(["serve", "--data-dir", str(tmp_path / "data"), "--port", "0"]) == 2
    assert "DESKHAND_TRUSTED_PROXIES: " in capsys.readouterr().err
