"""Broker settings are validated; keys are created private and refused when exposed."""

from __future__ import annotations

import base64
import os
import stat

import pytest
from pydantic import SecretStr, ValidationError

from broker.keys import KeyFileError, load_or_create_keys
from broker.settings import Settings


def test_defaults_are_safe(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.host == "127.0.0.1" and settings.port == 8000
    assert settings.code_ttl_seconds == 600
    assert settings.ice_config.servers == [] and settings.ice_config.loopback_only is False
    assert settings.effective_database_url == f"sqlite:///{tmp_path / 'deskhand.sqlite3'}"


def test_environment_is_read(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("DESKHAND_ICE_LOOPBACK", "true")
    monkeypatch.setenv("DESKHAND_ICE_SERVERS", '[{"urls": ["stun:stun.example.org:3478"]}]')
    monkeypatch.setenv("DESKHAND_CODE_TTL_SECONDS", "120")
    settings = Settings(data_dir=tmp_path)
    assert settings.ice_config.loopback_only is True
    assert settings.ice_config.servers[0].urls == ["stun:stun.example.org:3478"]
    assert settings.code_ttl_seconds == 120


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ice_servers", "not json"),
        ("ice_servers", '[{"urls": ["http://example.org"]}]'),
        ("ice_servers", '[{"urls": []}]'),
        ("log_level", "verbose"),
        ("port", 70000),
        ("code_ttl_seconds", 5),
        ("signal_max_message_bytes", 10),
    ],
)
def test_bad_values_are_refused(tmp_path, field: str, value: object) -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(data_dir=tmp_path, **{field: value})
    assert raised.value.errors()[0]["loc"][0] == field


def test_keys_are_created_private_and_reloaded_unchanged(tmp_path) -> None:
    first = load_or_create_keys(tmp_path)
    for name in ("signing.key", "code-hash.key"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    second = load_or_create_keys(tmp_path)
    assert first.public_key_b64 == second.public_key_b64
    assert first.code_hash_key == second.code_hash_key
    assert len(base64.b64decode(first.public_key_b64)) == 32


def test_a_readable_key_file_is_refused_with_the_fix(tmp_path) -> None:
    load_or_create_keys(tmp_path)
    os.chmod(tmp_path / "signing.key", 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_or_create_keys(tmp_path)


def test_a_corrupt_key_file_is_refused(tmp_path) -> None:
    load_or_create_keys(tmp_path)
    (tmp_path / "code-hash.key").write_bytes(b"short\n")
    with pytest.raises(KeyFileError, match="code-hash.key"):
        load_or_create_keys(tmp_path)


def test_keys_from_the_environment_win_and_are_checked(tmp_path) -> None:
    seed = base64.b64encode(b"\x01" * 32).decode()
    keys = load_or_create_keys(tmp_path, SecretStr(seed), SecretStr(seed))
    assert keys.code_hash_key == b"\x01" * 32
    assert not (tmp_path / "signing.key").exists()
    with pytest.raises(KeyFileError, match="DESKHAND_SIGNING_KEY"):
        load_or_create_keys(tmp_path, SecretStr("%%%"), None)
    with pytest.raises(KeyFileError, match="32 bytes"):
        load_or_create_keys(tmp_path, SecretStr(base64.b64encode(b"x" * 5).decode()), None)
