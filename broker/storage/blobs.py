"""Where the bytes the broker keeps outside its database live: recording segments and transfer chunks.

Two homes behind one small interface (:class:`Blobs`), named by slash-separated names such as
``recordings/<session>/00000003.seg``:

* :class:`LocalBlobs`, the default: files under the data directory, each written under a
  temporary name and renamed into place, so a reader sees a whole file or none.
* :class:`S3Blobs` (``DESKHAND_OBJECT_STORE_*``): objects in an S3 bucket, through boto3,
  shared by every broker of an installation. A PUT replaces an object whole, so the same holds.

What is stored is encrypted by its owner before it gets here (``broker.audit.recordings``,
``broker.sessions.spool``): the object store's operator holds ciphertext only.

Every call blocks (file or network I/O): callers run them in worker threads.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ListObjectsV2OutputTypeDef, ObjectIdentifierTypeDef

T = TypeVar("T")


class BlobStoreError(Exception):
    """The object store refused or did not answer; the message names the store and what failed."""


class StagedBlob(Protocol):
    """Bytes ready to be put in place by :meth:`place` (quick: a rename, or one PUT), or dropped."""

    def place(self) -> None: ...

    def discard(self) -> None: ...


class Blobs(Protocol):
    """Named byte strings, each written whole."""

    shared: bool
    """Every broker of the installation reads what any of them wrote (an object store)."""

    def put(self, name: str, data: bytes | memoryview) -> None:
        """Store ``data`` as ``name``, replacing what was there."""
        ...

    def stage(self, name: str, data: bytes) -> StagedBlob:
        """Prepare ``data`` to be stored as ``name`` later, by :meth:`StagedBlob.place`."""
        ...

    def get(self, name: str) -> bytes | None:
        """The bytes stored as ``name``, or None."""
        ...

    def exists(self, name: str) -> bool: ...

    def delete(self, name: str) -> None:
        """Remove ``name`` (absent is fine)."""
        ...

    def delete_under(self, prefix: str) -> None:
        """Remove every name under ``prefix/``."""
        ...

    def children(self, prefix: str) -> set[str]:
        """The next part of every name under ``prefix/`` (``transfers`` → the transfer ids held)."""
        ...

    def free_bytes(self) -> int | None:
        """Room left, or None when the store does not say (an object store)."""
        ...

    def check(self) -> None:
        """Raise :class:`BlobStoreError` unless the store answers (at start: a broker that cannot keep
        recordings must not take sessions)."""
        ...

    def remove_leftovers(self, prefix: str, now: float, older_than: float) -> int:
        """Delete what a write cut short left under ``prefix/`` more than ``older_than`` seconds before
        ``now`` (a broker killed mid-write); how many."""
        ...


class LocalBlobs:
    """:class:`Blobs` as files under ``root`` (one folder per name part, mode 0700)."""

    shared = False

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        return self.root / name

    def put(self, name: str, data: bytes | memoryview) -> None:
        staged = self._write_beside(self.path(name), data)
        staged.place()

    def stage(self, name: str, data: bytes) -> StagedBlob:
        return self._write_beside(self.path(name), data)

    def get(self, name: str) -> bytes | None:
        try:
            return self.path(name).read_bytes()
        except FileNotFoundError:
            return None

    def exists(self, name: str) -> bool:
        return self.path(name).exists()

    def delete(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)

    def delete_under(self, prefix: str) -> None:
        shutil.rmtree(self.path(prefix), ignore_errors=True)

    def children(self, prefix: str) -> set[str]:
        try:
            return {entry.name for entry in self.path(prefix).iterdir() if entry.is_dir() and not entry.name.startswith(".")}
        except FileNotFoundError:
            return set()

    def free_bytes(self) -> int | None:
        return shutil.disk_usage(self.root).free

    def check(self) -> None:
        """The data directory is there (made at start)."""

    def remove_leftovers(self, prefix: str, now: float, older_than: float) -> int:
        """Temporary files, renamed into place once whole."""
        removed = 0
        for leftover in self.path(prefix).glob("*/*.tmp"):
            try:
                if leftover.stat().st_mtime < now - older_than:
                    leftover.unlink()
                    removed += 1
            except FileNotFoundError:
                continue  # placed meanwhile
        return removed

    def _private_folders(self, folder: Path) -> None:
        """Make ``folder`` and the folders between it and the root, each owner-only (``mkdir(parents=True)``
        would give the ones between the umask's mode)."""
        current = self.root
        for part in folder.relative_to(self.root).parts:
            current = current / part
            current.mkdir(mode=0o700, exist_ok=True)

    def _write_beside(self, target: Path, data: bytes | memoryview) -> _StagedFile:
        self._private_folders(target.parent)
        # A name of its own: two writes of one name may be staged at once (the last placed wins).
        temporary = target.with_name(f"{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            temporary.write_bytes(data)
        except BaseException:
            temporary.unlink(missing_ok=True)  # a write cut short (a full disk) leaves nothing half written
            raise
        return _StagedFile(temporary, target)


@dataclass
class _StagedFile:
    temporary: Path
    target: Path

    def place(self) -> None:
        os.replace(self.temporary, self.target)

    def discard(self) -> None:
        self.temporary.unlink(missing_ok=True)


@dataclass(frozen=True)
class ObjectStoreConfig:
    """Where the bucket is and how to sign in to it (from ``DESKHAND_OBJECT_STORE_*``)."""

    endpoint_url: str
    bucket: str
    access_key_id: str
    secret_access_key: str
    region: str = "us-east-1"
    prefix: str = ""
    """Put before every name (one bucket for several installations)."""


CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 30.0
POOL_CONNECTIONS = 32
"""Connections to the store kept open: as many as worker threads may use at once."""


class S3Blobs:
    """:class:`Blobs` as objects of one S3 bucket (any S3-compatible server; path-style addressing)."""

    shared = True

    def __init__(self, config: ObjectStoreConfig) -> None:
        import boto3  # only a broker with an object store pays for importing boto3
        from botocore.config import Config

        self._config = config
        self._client: S3Client = boto3.client(
            "s3", endpoint_url=config.endpoint_url, region_name=config.region,
            aws_access_key_id=config.access_key_id, aws_secret_access_key=config.secret_access_key,
            config=Config(s3={"addressing_style": "path"}, connect_timeout=CONNECT_TIMEOUT_SECONDS,
                          read_timeout=READ_TIMEOUT_SECONDS, max_pool_connections=POOL_CONNECTIONS,
                          retries={"mode": "standard", "max_attempts": 3}),
        )

    def describe(self) -> str:
        """The store, for messages: endpoint and bucket (never the keys)."""
        return f"bucket {self._config.bucket!r} at {self._config.endpoint_url}"

    def check(self) -> None:
        """The bucket answers ``HEAD``."""
        self._call("reach", lambda: self._client.head_bucket(Bucket=self._config.bucket))

    def remove_leftovers(self, prefix: str, now: float, older_than: float) -> int:
        """None: a PUT is whole or nothing."""
        del prefix, now, older_than
        return 0

    def put(self, name: str, data: bytes | memoryview) -> None:
        body = bytes(data) if isinstance(data, memoryview) else data
        self._call(f"store {name}", lambda: self._client.put_object(Bucket=self._config.bucket, Key=self._key(name), Body=body))

    def stage(self, name: str, data: bytes) -> StagedBlob:
        return _StagedObject(self, name, data)

    def get(self, name: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            answer = self._client.get_object(Bucket=self._config.bucket, Key=self._key(name))
            return answer["Body"].read()
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            raise self._error(f"read {name}", exc) from exc
        except Exception as exc:
            raise self._error(f"read {name}", exc) from exc

    def exists(self, name: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._client.head_object(Bucket=self._config.bucket, Key=self._key(name))
            return True
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404", "NotFound"):
                return False
            raise self._error(f"look for {name}", exc) from exc
        except Exception as exc:
            raise self._error(f"look for {name}", exc) from exc

    def delete(self, name: str) -> None:
        self._call(f"delete {name}", lambda: self._client.delete_object(Bucket=self._config.bucket, Key=self._key(name)))

    def delete_under(self, prefix: str) -> None:
        keys = [item["Key"] for page in self._pages(prefix + "/") for item in page.get("Contents", [])]
        for start in range(0, len(keys), 1000):  # DeleteObjects takes 1000 keys a request
            self._delete_keys(prefix, keys[start:start + 1000])
        # Stores with folders (SeaweedFS's filer) keep an emptied one listed until it is deleted by name;
        # on plain S3 there is no such object and this deletes nothing.
        self.delete(prefix + "/")

    def children(self, prefix: str) -> set[str]:
        base = self._key(prefix + "/")
        found = set()
        for page in self._pages(prefix + "/", by_folder=True):
            for common in page.get("CommonPrefixes", []):
                found.add(common["Prefix"][len(base):].rstrip("/"))
        return found

    def free_bytes(self) -> int | None:
        return None

    def _key(self, name: str) -> str:
        return f"{self._config.prefix}{name}"

    def _delete_keys(self, prefix: str, keys: list[str]) -> None:
        objects: list[ObjectIdentifierTypeDef] = [{"Key": key} for key in keys]
        self._call(f"delete {prefix}/", lambda: self._client.delete_objects(
            Bucket=self._config.bucket, Delete={"Objects": objects, "Quiet": True}))

    def _pages(self, prefix: str, *, by_folder: bool = False) -> list[ListObjectsV2OutputTypeDef]:
        paginator = self._client.get_paginator("list_objects_v2")
        bucket, key = self._config.bucket, self._key(prefix)
        if by_folder:
            return self._call(f"list {prefix}", lambda: list(paginator.paginate(Bucket=bucket, Prefix=key, Delimiter="/")))
        return self._call(f"list {prefix}", lambda: list(paginator.paginate(Bucket=bucket, Prefix=key)))

    def _call(self, what: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except Exception as exc:
            raise self._error(what, exc) from exc

    def _error(self, what: str, exc: Exception) -> BlobStoreError:
        return BlobStoreError(f"could not {what} in the object store ({self.describe()}): {exc}")


@dataclass
class _StagedObject:
    store: S3Blobs
    name: str
    data: bytes

    def place(self) -> None:
        self.store.put(self.name, self.data)

    def discard(self) -> None:
        self.data = b""


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))
