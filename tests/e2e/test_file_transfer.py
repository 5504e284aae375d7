"""File transfer both ways through a real broker and a real ``deskhand-host``.

The technician side is a :class:`~tech_console.client.TechConsole` (and its
transfer client) in the test; the host runs as its own process with the
terminal UI and ``--consent``. Files land under a private downloads folder.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from peer.landing import LandingFolder
from peer.transfers import TransferError, file_sha256
from protocol.transfers import Direction, TransferState, chunk_count
from tech_console.client import ConsoleError
from tests.support.live_session import live_session, resume_host

pytestmark = pytest.mark.slow

FILES = "files.send,files.receive"


@pytest.fixture(scope="module")
def broker_env() -> dict[str, str]:
    return {"DESKHAND_ICE_LOOPBACK": "true"}


def session_files(downloads: Path) -> list[Path]:
    """Every file under the downloads root, relative to it."""
    return sorted(p.relative_to(downloads) for p in downloads.rglob("*") if p.is_file())


def make_file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


async def test_a_sent_file_lands_in_the_session_folder_and_is_never_overwritten(broker, xvfb, tmp_path) -> None:
    downloads = tmp_path / "Downloads"
    source = make_file(tmp_path / "driver-setup.exe", 9 * 1024 * 1024 + 123)
    async with live_session(broker, {**xvfb.env, "DESKHAND_DOWNLOADS": str(downloads)}, "--consent", FILES, view=False) as live:
        await live.consented()
        first = await live.console.send_file(live.session_id, source)
        second = await live.console.send_file(live.session_id, source)
        assert first.state is TransferState.completed and first.saved_as == "driver-setup.exe"
        assert second.saved_as == "driver-setup (2).exe"
        assert first.sha256 == first.broker_sha256 == file_sha256(source)
    landed = session_files(downloads)
    folder = Path("Deskhand") / f"ticket {live_ticket(broker, live.session_id)} session {live.session_id[:8]}"
    assert landed == [folder / "driver-setup (2).exe", folder / "driver-setup.exe"]
    for name in landed:
        assert file_sha256(downloads / name) == file_sha256(source)
    audited = broker.sql("SELECT data FROM audit_events WHERE kind = 'transfer.completed' AND session_id = ?", live.session_id)
    record = json.loads(audited[0][0])
    assert record["sender_sha256"] == record["broker_sha256"] == record["receiver_sha256"] == file_sha256(source)
    assert record["direction"] == "to_host" and record["name"] == "driver-setup.exe" and record["size"] == source.stat().st_size
    assert "received driver-setup.exe" in live.output


async def host_verified(downloads: Path, name: str, wanted: set[int]) -> set[int]:
    """The chunks of ``name`` the host has saved and verified, once they are ``wanted`` (its ledger says so)."""
    verified: set[int] = set()
    for _ in range(300):
        ledgers = list(downloads.rglob(f".{name}.deskhand-ledger"))
        if ledgers:
            verified = set(json.loads(ledgers[0].read_text())["done"])
            if verified == wanted:
                break
        await asyncio.sleep(0.05)
    assert verified == wanted
    return verified


def live_ticket(broker, session_id: str) -> int:
    return broker.sql("SELECT ticket_id FROM support_sessions WHERE id = ?", session_id)[0][0]


@pytest.mark.parametrize(
    ("offered", "landed"),
    [
        ("../../evil.txt", "evil.txt"),
        ("/etc/passwd", "passwd"),
        ("C:\\Windows\\win.ini", "win.ini"),
        ("con.txt", "_con.txt"),
        ("bell\x07tab\t.txt", "bell_tab_.txt"),
        ("x" * 300 + ".log", "x" * 196 + ".log"),
    ],
)
async def test_dangerous_names_are_made_safe_and_stay_in_the_folder(broker, xvfb, tmp_path, offered, landed) -> None:
    downloads = tmp_path / "Downloads"
    source = make_file(tmp_path / "payload", 1000)
    async with live_session(broker, {**xvfb.env, "DESKHAND_DOWNLOADS": str(downloads)}, "--consent", FILES, view=False) as live:
        await live.consented()
        async with live.console.transfers(live.session_id) as files:
            offer = await files.offer(offered, 1000, Direction.to_host)
            assert offer.name == landed
            accepted = await files.wait(offer, lambda t: t.state is not TransferState.offered, 30)
            done = await files.send(accepted, source)
    assert done.state is TransferState.completed
    assert [p.name for p in session_files(downloads)] == [landed]
    assert all(p.parts[0] == "Deskhand" for p in session_files(downloads))


@pytest.mark.parametrize(("name", "words"), [("a\x00b", "NUL"), ("...", "no usable file name"), ("/", "no usable file name")])
async def test_hopeless_names_are_refused_before_anything_moves(broker, xvfb, tmp_path, name, words) -> None:
    async with live_session(broker, xvfb.env, "--consent", FILES, view=False) as live:
        await live.consented()
        async with live.console.transfers(live.session_id) as files:
            with pytest.raises(TransferError, match=words) as refused:
                await files.offer(name, 10, Direction.to_host)
            assert refused.value.status == 422
            assert await files.all() == []


async def test_files_over_the_hosts_limit_are_refused_before_sending(broker, xvfb, tmp_path) -> None:
    downloads = tmp_path / "Downloads"
    source = make_file(tmp_path / "big.iso", 5000)
    env = {**xvfb.env, "DESKHAND_DOWNLOADS": str(downloads)}
    async with live_session(broker, env, "--consent", FILES, "--max-file-size", "4096", view=False) as live:
        await live.consented()
        with pytest.raises(ConsoleError, match=r"over the limit of 0\.0 MB per file here"):
            await live.console.send_file(live.session_id, source)
        async with live.console.transfers(live.session_id) as files:
            (refused,) = await files.all()
    assert refused.state is TransferState.refused and refused.chunks_at_broker == []
    assert session_files(downloads) == []


async def test_the_brokers_limit_and_missing_consent_refuse_the_offer(start_broker, xvfb, tmp_path) -> None:
    broker = start_broker(DESKHAND_ICE_LOOPBACK="true", DESKHAND_TRANSFER_MAX_BYTES="1000")
    async with live_session(broker, xvfb.env, "--consent", "view,files.receive", view=False) as live:
        await live.consented()
        async with live.console.transfers(live.session_id) as files:
            with pytest.raises(TransferError, match=r"has not allowed files\.send") as no_consent:
                await files.offer("notes.txt", 10, Direction.to_host)
            assert no_consent.value.status == 403
            with pytest.raises(TransferError, match="only the host sends files to_technician"):
                await files.offer("notes.txt", 10, Direction.to_technician)
    async with live_session(broker, xvfb.env, "--consent", FILES, view=False) as live:
        await live.consented()
        async with live.console.transfers(live.session_id) as files:
            with pytest.raises(TransferError, match="over this broker's limit") as too_big:
                await files.offer("big.bin", 1001, Direction.to_host)
            assert too_big.value.status == 413


async def test_the_technician_fetches_a_file_the_host_approves(broker, xvfb, tmp_path) -> None:
    wanted = make_file(tmp_path / "system.log", 6 * 1024 * 1024)
    destination = tmp_path / "fetched"
    (destination).mkdir()
    (destination / "system.log").write_text("an older copy the technician keeps")
    async with live_session(broker, xvfb.env, "--consent", FILES, view=False) as live:
        await live.consented()
        saved = await live.console.fetch_file(live.session_id, str(wanted), destination, note="the log please")
        with pytest.raises(ConsoleError, match=r"declined the file request: .*is not a file"):
            await live.console.fetch_file(live.session_id, str(tmp_path / "missing.log"), destination)
    assert saved == destination / "system (2).log"
    assert file_sha256(saved) == file_sha256(wanted)
    assert (destination / "system.log").read_text() == "an older copy the technician keeps"
    kinds = [k for (k,) in broker.sql("SELECT kind FROM audit_events WHERE session_id = ?", live.session_id)]
    assert kinds.count("file_request.created") == 2 and "file_request.refused" in kinds and "transfer.completed" in kinds


async def test_a_corrupt_chunk_at_the_broker_is_detected_and_sent_again(start_broker, xvfb, tmp_path) -> None:
    # No memory for chunks: they wait on disk, where this test can spoil one.
    broker = start_broker(DESKHAND_ICE_LOOPBACK="true", DESKHAND_TRANSFER_MEMORY_BYTES="0")
    wanted = make_file(tmp_path / "dump.bin", 3 * 4 * 1024 * 1024 + 10)
    async with live_session(broker, xvfb.env, "--consent", FILES, view=False) as live:
        await live.consented()
        async with live.console.transfers(live.session_id) as files:
            request = await files.request_file(str(wanted))
            offer = await wait_for_offer(files, request.id)
            accepted = await files.decide(offer.id, True, saved_as="dump.bin")
            full = await files.wait(accepted, lambda t: len(t.chunks_at_broker) == t.chunk_count and t.sha256 is not None, 30)
            chunk = broker.data_dir / "transfers" / full.id / "00000001"
            spoiled = bytearray(chunk.read_bytes())
            spoiled[100] ^= 0xFF
            chunk.write_bytes(spoiled)
            landing = LandingFolder(tmp_path / "fetched")
            done = await files.receive(full, landing, landing.choose_name("dump.bin"))
    assert done.transfer.state is TransferState.completed and done.path == tmp_path / "fetched" / "dump.bin"
    assert file_sha256(done.path) == file_sha256(wanted)
    kinds = [k for (k,) in broker.sql("SELECT kind FROM audit_events WHERE session_id = ?", live.session_id)]
    assert "transfer.chunk_rejected" in kinds


async def wait_for_offer(files, request_id: str):
    for _ in range(300):
        (request,) = [r for r in await files.file_requests() if r.id == request_id]
        if request.transfer_id:
            return await files.get(request.transfer_id)
        await asyncio.sleep(0.1)
    raise AssertionError("the host never offered the requested file")


async def test_a_file_whose_final_hash_differs_is_never_shown_as_complete(broker, xvfb, tmp_path) -> None:
    downloads = tmp_path / "Downloads"
    source = make_file(tmp_path / "invoice.pdf", 5 * 1024 * 1024)
    async with live_session(broker, {**xvfb.env, "DESKHAND_DOWNLOADS": str(downloads)}, "--consent", FILES, view=False) as live:
        await live.consented()
        async with live.console.transfers(live.session_id) as files:
            offer = await files.offer("invoice.pdf", source.stat().st_size, Direction.to_host)
            accepted = await files.wait(offer, lambda t: t.state is not TransferState.offered, 30)
            await files.upload_chunks(accepted, source, set(range(accepted.chunk_count)))
            await files.finish(accepted.id, hashlib.sha256(b"not this file").hexdigest())  # a lying sender
            result = await files.wait(accepted, lambda t: t.state.over, 30)
        await asyncio.sleep(0.5)
    assert result.state is TransferState.failed and "differs" in (result.reason or "")
    assert session_files(downloads) == []
    assert "invoice.pdf was not received" in live.output


async def test_cancel_stops_the_transfer_and_leaves_nothing_behind(broker, xvfb, tmp_path) -> None:
    downloads = tmp_path / "Downloads"
    source = make_file(tmp_path / "backup.zip", 5 * 4 * 1024 * 1024)
    async with live_session(broker, {**xvfb.env, "DESKHAND_DOWNLOADS": str(downloads)}, "--consent", FILES, view=False) as live:
        await live.consented()
        async with live.console.transfers(live.session_id) as files:
            offer = await files.offer("backup.zip", source.stat().st_size, Direction.to_host)
            accepted = await files.wait(offer, lambda t: t.state is not TransferState.offered, 30)
            await files.upload_chunks(accepted, source, {0, 1})
            await asyncio.sleep(0.5)
            cancelled = await files.cancel(accepted.id, "wrong file")
            assert cancelled.state is TransferState.cancelled
            with pytest.raises(TransferError, match="already cancelled"):
                await files.finish(accepted.id, file_sha256(source))
        await asyncio.sleep(1.0)
    assert session_files(downloads) == []
    assert "backup.zip was not received: wrong file" in live.output
    assert not (broker.data_dir / "transfers" / accepted.id).exists()


async def test_a_killed_host_resumes_without_fetching_verified_chunks_again(broker, xvfb, tmp_path) -> None:
    downloads, state = tmp_path / "Downloads", tmp_path / "state"
    env = {**xvfb.env, "DESKHAND_DOWNLOADS": str(downloads), "XDG_STATE_HOME": str(state)}
    source = make_file(tmp_path / "image.vhd", 10 * 4 * 1024 * 1024 + 5)
    total = chunk_count(source.stat().st_size)
    async with live_session(broker, env, "--consent", FILES, view=False) as live:
        await live.consented()
        async with live.console.transfers(live.session_id) as files:
            offer = await files.offer("image.vhd", source.stat().st_size, Direction.to_host)
            accepted = await files.wait(offer, lambda t: t.state is not TransferState.offered, 30)
            first_half = set(range(4))
            await files.upload_chunks(accepted, source, first_half)
            verified = await host_verified(downloads, "image.vhd", first_half)
            live.host.send_signal(signal.SIGKILL)
            live.host.wait(10)
            log_mark = len(broker.output)

            resumed = resume_host(env, "--consent", FILES)
            try:
                assert resumed.stdout is not None
                assert resumed.stdout.readline().startswith(f"Resumed session {live.session_id}")
                # The console's own sending loop: it uploads what the broker lacks and
                # re-sends whatever the broker has to forget until the receiver is done.
                done = await asyncio.wait_for(files.send(await files.get(accepted.id), source), 60)
            finally:
                await live.console.end_session(live.session_id, "done")
                out, _err = await asyncio.to_thread(resumed.communicate, timeout=30)
    assert done.state is TransferState.completed
    landed = next(p for p in downloads.rglob("image.vhd"))
    assert file_sha256(landed) == file_sha256(source)
    fetched_after = [
        int(m.group(1)) for line in broker.output[log_mark:]
        if (m := re.search(rf"GET /api/v1/sessions/{live.session_id}/transfers/{accepted.id}/chunks/(\d+)\S* HTTP/1.1\" 200", line))
    ]
    assert sorted(fetched_after) == sorted(set(range(total)) - verified)
    assert "received image.vhd" in out


async def test_a_broker_restart_mid_transfer_completes_with_the_brokers_own_hash(start_broker, xvfb, tmp_path) -> None:
    """The broker's running hash is lost in the restart: it has the sender upload what it already
    relayed and freed again, and hashes the whole file before the transfer completes."""
    broker = start_broker(DESKHAND_ICE_LOOPBACK="true")
    downloads = tmp_path / "Downloads"
    source = make_file(tmp_path / "setup.msi", 6 * 4 * 1024 * 1024 + 3)
    sha256 = file_sha256(source)
    async with live_session(broker, {**xvfb.env, "DESKHAND_DOWNLOADS": str(downloads)}, "--consent", FILES, view=False) as live:
        await live.consented()
        async with live.console.transfers(live.session_id) as files:
            offer = await files.offer("setup.msi", source.stat().st_size, Direction.to_host)
            accepted = await files.wait(offer, lambda t: t.state is not TransferState.offered, 30)
            await files.upload_chunks(accepted, source, {0, 1, 2})
            await host_verified(downloads, "setup.msi", {0, 1, 2})  # relayed, hashed and freed at the broker
            broker.restart()
            done = await asyncio.wait_for(files.send(await files.get(accepted.id), source), 90)
        await asyncio.sleep(0.5)
    assert done.state is TransferState.completed and done.broker_sha256 == sha256
    assert broker.sql("SELECT state, broker_sha256 FROM transfers WHERE id = ?", done.id) == [("completed", sha256)]
    (record,) = [json.loads(data) for (data,) in broker.sql(
        "SELECT data FROM audit_events WHERE kind = 'transfer.completed' AND session_id = ?", live.session_id)]
    assert record["sender_sha256"] == record["broker_sha256"] == record["receiver_sha256"] == sha256
    (again,) = [json.loads(data) for (data,) in broker.sql(
        "SELECT data FROM audit_events WHERE kind = 'transfer.hashing_again' AND session_id = ?", live.session_id)]
    assert again["chunks"] == 3 and again["first_chunk"] == 0
    report = broker.http.get(f"/audit/sessions/{live.session_id}/report", headers={"Authorization": f"Bearer {broker.login()}"})
    assert report.json()["files"][0]["broker_sha256"] == sha256
    assert file_sha256(next(downloads.rglob("setup.msi"))) == sha256
    assert "received setup.msi" in live.output


async def test_the_console_cli_sends_and_fetches_with_json_results(broker, xvfb, tmp_path) -> None:
    source = make_file(tmp_path / "tool.sh", 300_000)
    async with live_session(broker, xvfb.env, "--consent", FILES, view=False) as live:
        await live.consented()
        env = {**os.environ, "DESKHAND_BROKER": broker.base_url, "DESKHAND_TOKEN": broker.login()}
        cli = [sys.executable, "-m", "tech_console.cli", "--json"]
        sent = await asyncio.to_thread(subprocess.run, [*cli, "send", live.session_id, str(source)],
                                       capture_output=True, text=True, env=env, timeout=60)
        assert sent.returncode == 0, sent.stderr
        assert json.loads(sent.stdout)[0]["sha256"] == file_sha256(source)
        fetched = await asyncio.to_thread(
            subprocess.run, [*cli, "fetch", live.session_id, str(source), "--to", str(tmp_path / "back")],
            capture_output=True, text=True, env=env, timeout=60,
        )
        assert fetched.returncode == 0, fetched.stderr
        assert json.loads(fetched.stdout)["sha256"] == file_sha256(source)
        missing = await asyncio.to_thread(subprocess.run, [*cli, "send", live.session_id, str(tmp_path / "nope")],
                                          capture_output=True, text=True, env=env, timeout=60)
        assert missing.returncode == 1 and "cannot read" in missing.stderr


RATE = r"([\d.]+) (GB|MB|kB|B)/s"


async def test_a_one_chunk_file_shows_its_true_rate_and_a_summary_on_both_sides(broker, xvfb, tmp_path) -> None:
    """A file in one chunk moves in one step: the rate is still that step's, never "0.0 MB/s" or "?"."""
    source = make_file(tmp_path / "small.bin", 3_100_000)
    async with live_session(broker, xvfb.env, "--consent", FILES, view=False) as live:
        await live.consented()
        env = {**os.environ, "DESKHAND_BROKER": broker.base_url, "DESKHAND_TOKEN": broker.login()}
        cli = [sys.executable, "-m", "tech_console.cli"]
        sent = await asyncio.to_thread(subprocess.run, [*cli, "send", live.session_id, str(source)],
                                       capture_output=True, text=True, env=env, timeout=60)
        assert sent.returncode == 0, sent.stderr
        fetched = await asyncio.to_thread(
            subprocess.run, [*cli, "fetch", live.session_id, str(source), "--to", str(tmp_path / "back")],
            capture_output=True, text=True, env=env, timeout=60,
        )
        assert fetched.returncode == 0, fetched.stderr
    assert re.search(f"3.1/3.1 MB {RATE}", sent.stderr) and "?" not in sent.stderr, sent.stderr  # the console's bar
    for summary in (sent.stdout, fetched.stdout):  # the console: "...): 3.10 MB in 0.12 s, 25.8 MB/s..."
        assert float(re.search(r": 3\.10 MB in [\d.]+ s, " + RATE, summary)[1]) > 0, summary
    for arrow, ended in (("receiving", r"received small\.bin: .+small\.bin"), ("sending", "sent small.bin: sent to the technician")):
        final = re.findall(rf"\[deskhand\] {arrow} small\.bin: 100% of 3\.10 MB at {RATE}$", live.output, re.MULTILINE)
        assert len(final) == 1 and float(final[0][0]) > 0, live.output
        assert re.search(rf"{ended} \(3\.10 MB in [\d.]+ s, {RATE}\)$", live.output, re.MULTILINE), live.output
