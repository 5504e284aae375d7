"""The broker's keys: created private, reloaded unchanged, refused when exposed or malformed."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from broker.keys import KEY_BYTES, KeyFileError, load_or_create_keys

KEY_FILES = ("signing.key", "code-hash.key")


def b64(raw: bytes) -> SecretStr:
    """``raw`` as the base64 text an operator would put in DESKHAND_*_KEY."""
    return SecretStr(base64.b64encode(raw).decode())


def test_keys_are_created_with_mode_0600(tmp_path: Path) -> None:
    previous = os.umask(0o022)  # what a careless shell leaves; the files must still be private
    try:
        load_or_create_keys(tmp_path)
    finally:
        os.umask(previous)
    for name in KEY_FILES:
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name


def test_keys_are_reloaded_identical(tmp_path: Path) -> None:
    first = load_or_create_keys(tmp_path)
    contents = {name: (tmp_path / name).read_bytes() for name in KEY_FILES}
    second = load_or_create_keys(tmp_path)
    assert first.public_key_b64 == second.public_key_b64
    assert first.code_hash_key == second.code_hash_key
    assert len(first.code_hash_key) == KEY_BYTES
    assert len(base64.b64decode(first.public_key_b64)) == 32
    assert {name: (tmp_path / name).read_bytes() for name in KEY_FILES} == contents


def test_two_data_directories_get_different_keys(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = load_or_create_keys(tmp_path / "a"), load_or_create_keys(tmp_path / "b")
    assert a.code_hash_key != b.code_hash_key and a.public_key_b64 != b.public_key_b64


@pytest.mark.parametrize("name", KEY_FILES)
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o606])
def test_a_key_file_others_can_read_or_write_is_refused_naming_chmod_600(tmp_path: Path, name: str, mode: int) -> None:
    load_or_create_keys(tmp_path)
    os.chmod(tmp_path / name, mode)
    with pytest.raises(KeyFileError) as raised:
        load_or_create_keys(tmp_path)
    assert f"chmod 600 {tmp_path / name}" in str(raised.value)
    assert f"{mode:o}" in str(raised.value)


@pytest.mark.parametrize(
    ("content", "words"),
    [(b"c2hvcnQ=\n", "holds 5 bytes instead of 32"), (b"%%% not base64\n", "not a base64 key"), (b"", "holds 0 bytes")],
)
def test_a_malformed_key_file_is_refused(tmp_path: Path, content: bytes, words: str) -> None:
    load_or_create_keys(tmp_path)
    (tmp_path / "code-hash.key").write_bytes(content)
    with pytest.raises(KeyFileError, match=words) as raised:
        load_or_create_keys(tmp_path)
    assert "code-hash.key" in str(raised.value)


def test_keys_from_the_environment_win_and_create_no_files(tmp_path: Path) -> None:
    keys = load_or_create_keys(tmp_path, b64(b"\x01" * 32), b64(b"\x02" * 32))
    assert keys.code_hash_key == b"\x02" * 32
    again = load_or_create_keys(tmp_path, b64(b"\x01" * 32), b64(b"\x02" * 32))
    assert again.public_key_b64 == keys.public_key_b64
    assert not any((tmp_path / name).exists() for name in KEY_FILES)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("%%%", "DESKHAND_SIGNING_KEY is not valid base64"),
        ("AAAA AAAA", "DESKHAND_SIGNING_KEY is not valid base64"),
        (base64.b64encode(b"x" * 5).decode(), "must decode to 32 bytes, not 5"),
        (base64.b64encode(b"x" * 64).decode(), "must decode to 32 bytes, not 64"),
    ],
)
def test_a_bad_signing_key_in_the_environment_is_refused(tmp_path: Path, value: str, words: str) -> None:
    with pytest.raises(KeyFileError, match=words):
        load_or_create_keys(tmp_path, SecretStr(value), None)


def test_a_bad_code_hash_key_in_the_environment_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="DESKHAND_CODE_HASH_KEY"):
        load_or_create_keys(tmp_path, None, SecretStr("not base64!"))


def test_wrapped_secrets_unwrap_only_for_their_context_and_key() -> None:
    from cryptography.exceptions import InvalidTag

    from broker.keys import unwrap, wrap

    master = bytes(range(32))
    sealed = wrap(master, b"webhook secret", "webhook:crm")
    assert wrap(master, b"webhook secret", "webhook:crm") != sealed  # a fresh nonce each time
    assert unwrap(master, sealed, "webhook:crm") == b"webhook secret"
    with pytest.raises(InvalidTag):
        unwrap(master, sealed, "webhook:other")  # copied onto another row
    with pytest.raises(InvalidTag):
        unwrap(bytes(32), sealed, "webhook:crm")
