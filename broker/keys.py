"""The broker's secrets: its Ed25519 signing key, the key of the code hash, and the
master key that wraps each session's recording key and the webhook secrets.

Each comes from the environment when set there, otherwise from a file in the
data directory, created on first start with mode 0600. A key file that others
can read is refused: a leaked code-hash key lets anyone test codes offline, a
leaked signing key lets anyone forge grants.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import SecretStr

KEY_BYTES = 32
NONCE_BYTES = 12


class KeyFileError(RuntimeError):
    """A key is missing, malformed or unsafely stored; the message names the fix."""


@dataclass(frozen=True)
class BrokerKeys:
    """The secrets the broker runs with."""

    signing_key: Ed25519PrivateKey
    code_hash_key: bytes
    recording_master_key: bytes

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.signing_key.public_key()

    @property
    def bus_key(self) -> bytes:
        """The key the brokers of one installation sign their messages to each other with
        (``broker.cluster.bus``): derived from the code hash key, which they must share anyway
        (a code made on one broker is redeemed on another), so Redis never holds it."""
        return HKDF(algorithm=SHA256(), length=32, salt=None, info=b"deskhand broker bus v1").derive(self.code_hash_key)

    @property
    def chunk_key(self) -> bytes:
        """The key transfer chunks are sealed with in an object store (``broker.sessions.spool``),
        derived from the recording master key: what leaves the broker's machine is ciphertext."""
        return HKDF(algorithm=SHA256(), length=32, salt=None,
                    info=b"deskhand transfer chunks v1").derive(self.recording_master_key)

    @property
    def public_key_b64(self) -> str:
        """The raw 32-byte public key in standard base64, as sent to hosts."""
        raw = self.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        return base64.b64encode(raw).decode("ascii")


def wrap(master_key: bytes, secret: bytes, context: str) -> str:
    """``secret`` sealed under the master key for storage: base64 of ``nonce || AES-256-GCM``.

    ``context`` (what the secret belongs to, e.g. a session id) is bound in as
    associated data, so a wrapped secret copied onto another row does not unwrap.
    """
    nonce = os.urandom(NONCE_BYTES)
    sealed = nonce + AESGCM(master_key).encrypt(nonce, secret, context.encode())
    return base64.b64encode(sealed).decode("ascii")


def unwrap(master_key: bytes, wrapped: str, context: str) -> bytes:
    """The secret :func:`wrap` sealed for ``context``; raises ``InvalidTag`` if it was altered."""
    sealed = base64.b64decode(wrapped)
    return AESGCM(master_key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], context.encode())


def load_or_create_keys(
    data_dir: Path,
    signing_key: SecretStr | None = None,
    code_hash_key: SecretStr | None = None,
    recording_master_key: SecretStr | None = None,
) -> BrokerKeys:
    """Load the keys (environment first, then files), creating missing files."""
    seed = _key_bytes("DESKHAND_SIGNING_KEY", signing_key) or _load_or_create(
        data_dir / "signing.key"
    )
    code_key = _key_bytes("DESKHAND_CODE_HASH_KEY", code_hash_key) or _load_or_create(
        data_dir / "code-hash.key"
    )
    master = _key_bytes("DESKHAND_RECORDING_MASTER_KEY", recording_master_key) or _load_or_create(
        data_dir / "recording-master.key"
    )
    return BrokerKeys(Ed25519PrivateKey.from_private_bytes(seed), code_key, master)


def _key_bytes(name: str, value: SecretStr | None) -> bytes | None:
    if value is None:
        return None
    try:
        raw = base64.b64decode(value.get_secret_value(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError(f"{name} is not valid base64; generate one with: openssl rand -base64 32") from None
    if len(raw) != KEY_BYTES:
        raise KeyFileError(f"{name} must decode to {KEY_BYTES} bytes, not {len(raw)}")
    return raw


def _load_or_create(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key_file(path)
    with os.fdopen(fd, "wb") as fh:
        fh.write(base64.b64encode(secrets.token_bytes(KEY_BYTES)) + b"\n")
        fh.flush()
        os.fsync(fh.fileno())
    return _read_key_file(path)


def require_owner_only(path: Path) -> None:
    """Raise :class:`KeyFileError` unless only the owner may read or write the secret at ``path``.

    Used for every file holding a private key: the broker's own and the TLS key.
    """
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyFileError(
            f"{path} is readable by other users (mode {mode:o}); run: chmod 600 {path}"
        )


def _read_key_file(path: Path) -> bytes:
    require_owner_only(path)
    try:
        raw = base64.b64decode(path.read_bytes().strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError(f"{path} is not a base64 key; move it away to let the broker create a new one") from None
    if len(raw) != KEY_BYTES:
        raise KeyFileError(f"{path} holds {len(raw)} bytes instead of {KEY_BYTES}")
    return raw


def prepare_data_dir(data_dir: Path) -> None:
    """Create the data directory (mode 0700) if it does not exist."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not os.access(data_dir, os.W_OK):
        raise KeyFileError(f"data directory {data_dir} is not writable; set DESKHAND_DATA_DIR to one that is")
