"""Recordings and transfer chunks in an S3 bucket (``DESKHAND_OBJECT_STORE_*``), on a real S3 server.

The store's contract as the broker uses it; a file sent through one broker and received through
another, with only ciphertext in the bucket and nothing left there once done; a recording uploaded
through one broker, played through the other and verified by ``audit verify``, which finds an
object altered in the bucket; and a store that does not answer: a broker will not start on it, and
a running one answers 503 ``object_store_unreachable`` (the JSON shape, never a 500).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from broker.storage.blobs import BlobStoreError, ObjectStoreConfig, S3Blobs
from peer.landing import LandingFolder
from peer.transfers import TransferClient
from protocol.transfers import Direction, TransferState
from tests.support.api import bearer, consented_session, end_session, play_recording
from tests.support.broker import BrokerProcess, audit_verify
from tests.support.object_store import BUCKET, ObjectStore
from tests.support.redis_server import RedisServer
from tests.support.segments import put_segment, webm_segment

SIZE = 3 * 1024 * 1024 + 5
"""A file of several chunks."""


def blobs_of(store: ObjectStore, prefix: str, **changes: str) -> S3Blobs:
    env = store.env(prefix)
    config = ObjectStoreConfig(endpoint_url=env["DESKHAND_OBJECT_STORE_URL"], bucket=BUCKET,
                               access_key_id=store.access_key, secret_access_key=store.secret_key, prefix=prefix)
    return S3Blobs(ObjectStoreConfig(**{**config.__dict__, **changes}))


def test_the_store_keeps_replaces_lists_and_removes_what_the_broker_names(object_store: ObjectStore) -> None:
    blobs = blobs_of(object_store, "contract/")
    blobs.check()
    assert blobs.get("transfers/t1/00000000") is None and not blobs.exists("transfers/t1/00000000")
    blobs.put("transfers/t1/00000000", b"first")
    blobs.put("transfers/t1/00000000", memoryview(b"second"))
    blobs.put("transfers/t1/00000001", b"x")
    blobs.put("transfers/t2/00000000", b"y")
    assert blobs.get("transfers/t1/00000000") == b"second" and blobs.exists("transfers/t1/00000001")
    assert blobs.children("transfers") == {"t1", "t2"}
    staged = blobs.stage("recordings/s/00000000.seg", b"segment")
    assert not blobs.exists("recordings/s/00000000.seg"), "nothing is stored until placed"
    staged.place()
    assert blobs.get("recordings/s/00000000.seg") == b"segment"
    blobs.delete_under("transfers/t1")
    blobs.delete("transfers/t1/00000000")  # gone already: fine
    assert blobs.children("transfers") == {"t2"}
    assert object_store.keys("contract/") == ["contract/recordings/s/00000000.seg", "contract/transfers/t2/00000000"]
    assert blobs.free_bytes() is None


def test_a_store_that_refuses_says_which_and_never_shows_the_secret(object_store: ObjectStore) -> None:
    wrong = blobs_of(object_store, "contract/", secret_access_key="not-the-secret-at-all")
    with pytest.raises(BlobStoreError) as refused:
        wrong.get("transfers/t1/00000000")
    assert BUCKET in str(refused.value) and object_store.url in str(refused.value)
    assert "not-the-secret-at-all" not in str(refused.value) and object_store.secret_key not in str(refused.value)
    with pytest.raises(BlobStoreError):
        blobs_of(object_store, "contract/", endpoint_url="http://127.0.0.1:9").check()  # nothing listens there


def test_a_file_sent_through_one_broker_is_received_through_the_other(object_store: ObjectStore,
                                                                      redis_server: RedisServer, tmp_path: Path) -> None:
    store = object_store.env()
    prefix = store["DESKHAND_OBJECT_STORE_PREFIX"]
    env = {**store, "DESKHAND_REDIS_URL": redis_server.url}
    source = tmp_path / "setup.exe"
    source.write_bytes(os.urandom(SIZE))
    data_dir = tmp_path / "data"
    with BrokerProcess.start(env, data_dir=data_dir) as first, BrokerProcess.start(env, data_dir=data_dir) as second:
        admin = bearer(first.login())
        session_id, host_token = consented_session(first, admin, ["files.send", "files.receive"])
        seen: list[list[str]] = []
        captured: list[bytes] = []
        client = object_store.client()

        def look() -> None:
            """Note what the bucket holds, and keep the bytes of the first chunk found."""
            keys = object_store.keys(prefix)
            seen.append(keys)
            for key in keys[:1] if not captured else []:
                try:
                    captured.append(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
                except client.exceptions.NoSuchKey:
                    pass  # freed meanwhile

        async def send() -> tuple[TransferState, TransferState]:
            (tmp_path / "Downloads").mkdir()
            landing = LandingFolder(tmp_path / "Downloads")
            async with TransferClient(first.base_url, admin["Authorization"].removeprefix("Bearer "), session_id) as tech, \
                    TransferClient(second.base_url, host_token, session_id) as host:
                offered = await tech.offer("setup.exe", SIZE, Direction.to_host)
                accepted = await host.decide(offered.id, True, saved_as="setup.exe")
                sending = asyncio.create_task(tech.send(accepted, source))
                receiving = asyncio.create_task(host.receive(accepted, landing, "setup.exe"))
                while not (sending.done() or receiving.done()):  # what the bucket holds while the file moves
                    await asyncio.to_thread(look)
                    await asyncio.sleep(0.05)
                sent, received = await asyncio.wait_for(asyncio.gather(sending, receiving), 60)
                return sent.state, received.transfer.state

        assert asyncio.run(send()) == (TransferState.completed, TransferState.completed)
        assert (tmp_path / "Downloads" / "setup.exe").read_bytes() == source.read_bytes()
        chunks = {key for keys in seen for key in keys}
        assert chunks and all(key.startswith(f"{prefix}transfers/") for key in chunks), chunks
        plain = source.read_bytes()
        assert captured and len(captured[0]) > 1024, "a chunk was read from the bucket while the file moved"
        assert not any(plain[at:at + 64] in captured[0] for at in range(0, SIZE, 256 * 1024)), "only ciphertext there"
        assert object_store.keys(f"{prefix}transfers/") == [], "nothing left in the bucket once done"
        assert not (data_dir / "transfers").exists() or not any((data_dir / "transfers").iterdir())


def test_a_recording_kept_in_the_bucket_plays_through_either_broker_and_verifies(object_store: ObjectStore,
                                                                                 tmp_path: Path) -> None:
    store = object_store.env()
    prefix = store["DESKHAND_OBJECT_STORE_PREFIX"]
    data_dir = tmp_path / "data"
    with BrokerProcess.start(store, data_dir=data_dir) as first, BrokerProcess.start(store, data_dir=data_dir) as second:
        admin = bearer(first.login())
        session_id, host_token = consented_session(first, admin, ["view"])
        segments = [webm_segment(shade) for shade in (40, 200)]
        for index, data in enumerate(segments):
            assert put_segment(first, session_id, host_token, index, data, offset_ms=1000 * index).status_code == 204
        assert end_session(first, admin, session_id, "done").status_code == 200
        played = play_recording(second, admin, session_id)
        assert played.status_code == 200, played.text
        assert played.content.startswith(b"\x1a\x45\xdf\xa3"), "a WebM"
    keys = object_store.keys(f"{prefix}recordings/")
    assert keys == [f"{prefix}recordings/{session_id}/{index:08d}.seg" for index in range(2)]
    assert not list((data_dir / "recordings").glob("*/*.seg")), "no segment on the broker's disk"
    checked = audit_verify(data_dir, store)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    client = object_store.client()
    stored = client.get_object(Bucket=BUCKET, Key=keys[1])["Body"].read()
    client.put_object(Bucket=BUCKET, Key=keys[1], Body=stored[:-1] + bytes([stored[-1] ^ 1]))
    altered = audit_verify(data_dir, store)
    assert altered.returncode != 0 and "segment" in altered.stdout + altered.stderr, altered.stdout + altered.stderr


def test_a_store_that_does_not_answer_stops_the_start_and_is_a_503_while_running(tmp_path: Path) -> None:
    with ObjectStore.start() as own:
        env = own.env()
        unreachable = {**env, "DESKHAND_OBJECT_STORE_URL": "http://127.0.0.1:9"}
        started = subprocess.run([sys.executable, "-m", "broker.cli", "serve", "--data-dir", str(tmp_path / "other"),
                                  "--port", "0"], env={**os.environ, **unreachable}, capture_output=True, text=True,
                                 timeout=120)
        assert started.returncode == 1, started.stdout + started.stderr
        assert "object store" in started.stderr and "127.0.0.1:9" in started.stderr, started.stderr
        assert own.secret_key not in started.stdout + started.stderr

        with BrokerProcess.start({**env, "DESKHAND_TRANSFER_MEMORY_BYTES": "0"}, data_dir=tmp_path / "data") as broker:
            admin = bearer(broker.login())
            session_id, host_token = consented_session(broker, admin, ["view"])
            own.stop()
            data = webm_segment(90)
            answer = put_segment(broker, session_id, host_token, 0, data, offset_ms=0)
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"] == "object_store_unreachable"
            assert "DESKHAND_OBJECT_STORE_URL" in answer.json()["message"]
            assert broker.http.get("/health").status_code == 200, "the broker goes on serving"
            assert "Traceback" not in broker.output_text(200)
