"""Broker settings: defaults, the environment, and refusal of bad values."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from broker.settings import Settings


@pytest.fixture(autouse=True)
def _no_inherited_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own DESKHAND_* variables must not leak into these tests."""
    for name in [n for n in os.environ if n.startswith("DESKHAND_")]:
        monkeypatch.delenv(name)


def test_defaults_are_safe(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.host == "127.0.0.1" and settings.port == 8000
    assert settings.code_ttl_seconds == 600
    assert settings.log_level == "info"
    assert settings.ice_config.servers == [] and settings.ice_config.loopback_only is False
    assert settings.effective_database_url == f"sqlite:///{tmp_path / 'deskhand.sqlite3'}"


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DESKHAND_ICE_LOOPBACK", "true")
    monkeypatch.setenv("DESKHAND_ICE_SERVERS", '[{"urls": ["stun:stun.example.org:3478"]}]')
    monkeypatch.setenv("DESKHAND_CODE_TTL_SECONDS", "120")
    monkeypatch.setenv("DESKHAND_LOG_LEVEL", "WARNING")
    settings = Settings(data_dir=tmp_path)
    assert settings.ice_config.loopback_only is True
    assert settings.ice_config.servers[0].urls == ["stun:stun.example.org:3478"]
    assert settings.code_ttl_seconds == 120
    assert settings.log_level == "warning"


def test_keyword_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DESKHAND_PORT", "9000")
    assert Settings(data_dir=tmp_path).port == 9000
    assert Settings(data_dir=tmp_path, port=0).port == 0


@pytest.mark.parametrize("port", [0, 1, 65535])
def test_the_whole_port_range_is_accepted(tmp_path: Path, port: int) -> None:
    assert Settings(data_dir=tmp_path, port=port).port == port


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("ice_servers", "not json", "Invalid JSON"),
        ("ice_servers", '{"urls": ["stun:x"]}', "list"),
        ("ice_servers", '[{"urls": ["http://example.org"]}]', "must start with stun:"),
        ("ice_servers", '[{"urls": []}]', "at least 1"),
        ("ice_servers", '[{"urls": ["stun:x"], "password": "p"}]', "Extra inputs"),
        ("log_level", "verbose", "debug, info, warning, error"),
        ("log_level", "", "debug, info, warning, error"),
        ("port", -1, "greater than or equal to 0"),
        ("port", 65536, "less than or equal to 65535"),
        ("port", "http", "valid integer"),
        ("code_ttl_seconds", 29, "greater than or equal to 30"),
        ("token_ttl_seconds", 59, "greater than or equal to 60"),
        ("code_failures_per_source", 0, "greater than or equal to 1"),
        ("signal_max_message_bytes", 10, "greater than or equal to 4096"),
        ("signal_max_message_bytes", 2 * 1024 * 1024, "less than or equal to 1048576"),
        ("expiry_sweep_seconds", 0, "greater than 0"),
        ("http_keepalive_seconds", 0, "greater than or equal to 1"),
        ("http_keepalive_seconds", 2.5, "valid integer"),
        ("http_keepalive_seconds", 601, "less than or equal to 600"),
        ("http_keepalive_seconds", "forever", "valid integer"),
        ("redis_url", "127.0.0.1:6379", "must start with redis://, rediss://, unix://"),
        ("redis_url", "http://127.0.0.1:6379", "must start with redis://"),
    ],
)
def test_bad_values_are_refused_naming_the_field(tmp_path: Path, field: str, value: object, words: str) -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(data_dir=tmp_path, **{field: value})
    errors = raised.value.errors()
    assert [e["loc"][0] for e in errors] == [field]
    assert words in errors[0]["msg"]


def test_a_bad_value_from_the_environment_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DESKHAND_ICE_SERVERS", "[{")
    with pytest.raises(ValidationError, match="ice_servers"):
        Settings(data_dir=tmp_path)


OBJECT_STORE = {"object_store_url": "http://127.0.0.1:8333", "object_store_bucket": "deskhand",
                "object_store_access_key_id": "key", "object_store_secret_access_key": "secret"}


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"object_store_url": "ftp://127.0.0.1"}, "must start with http:// or https://"),
        ({"object_store_bucket": None}, "set DESKHAND_OBJECT_STORE_BUCKET too"),
        ({"object_store_access_key_id": None, "object_store_secret_access_key": None},
         "set DESKHAND_OBJECT_STORE_ACCESS_KEY_ID, DESKHAND_OBJECT_STORE_SECRET_ACCESS_KEY too"),
        ({"object_store_bucket": "Not_A_Bucket"}, "should match pattern"),
        ({"object_store_prefix": "/leading/"}, "should match pattern"),
        ({"object_store_prefix": "no-slash"}, "should match pattern"),
        ({"object_store_region": "us east"}, "should match pattern"),
    ],
)
def test_a_bad_object_store_is_refused_naming_what_to_fix(tmp_path: Path, changes: dict[str, object],
                                                          words: str) -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(data_dir=tmp_path, **{**OBJECT_STORE, **changes})
    said = " ".join(str(error["msg"]) for error in raised.value.errors())  # what deskhand-broker prints
    assert words in said
    assert "secret" not in said.replace("SECRET_ACCESS_KEY", "")


def test_an_object_store_named_whole_is_taken(tmp_path: Path) -> None:
    config = Settings(data_dir=tmp_path, **OBJECT_STORE, object_store_prefix="desk/").object_store()
    assert config is not None and (config.bucket, config.prefix) == ("deskhand", "desk/")
    assert Settings(data_dir=tmp_path).object_store() is None
