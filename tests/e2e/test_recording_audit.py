"""Every session recorded and chained: report, playback, export, tamper detection, spool and resume.

Real broker, real host (Xvfb), the technician in the test; recordings read back
with ffprobe and PyAV; tampering done on the broker's real SQLite file and files.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import av
import httpx
import pytest

from host_client.session import RECORDING_DRAIN_SECONDS
from protocol.permissions import Permission
from tests.support.api import bearer, exported_bundle_verifies, play_recording
from tests.support.broker import BrokerProcess
from tests.support.input_recorder import RecorderProcess
from tests.support.live_session import Live, host_exited, live_session, resume_host
from tests.support.polling import async_wait_until
from tests.support.screen_painter import PainterProcess, pattern_cell_centres

pytestmark = pytest.mark.slow

LOOPBACK = {"DESKHAND_ICE_LOOPBACK": "true"}
HOST_DOWN_SECONDS = 9.5
HOST_RESUME_SECONDS = 1.0
"""About how long ``deskhand-host resume`` takes from its start to recording again."""
RECORDING_NOTICE = "this session is recorded for the audit trail"
"""What the host says the moment it starts recording."""


def api(broker: BrokerProcess, path: str, **kwargs) -> httpx.Response:
    return httpx.get(broker.api + path, headers={"Authorization": f"Bearer {broker.login()}"}, timeout=60, **kwargs)


def played(broker: BrokerProcess, session_id: str) -> httpx.Response:
    """The whole recording, through a playback started (and audited) for it."""
    return play_recording(broker, bearer(broker.login()), session_id)


def ffprobe_duration(data: bytes, tmp_path: Path) -> float:
    path = tmp_path / "recording.webm"
    path.write_bytes(data)
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def session_span(session: dict) -> float:
    """Seconds from the host joining to the end of the session, by the broker's clock."""
    return (datetime.fromisoformat(session["ended_at"]) - datetime.fromisoformat(session["connected_at"])).total_seconds()


def segment_rows(broker: BrokerProcess, session_id: str) -> list[tuple[int, int, int]]:
    """(index, offset_ms, duration_ms) of every segment the broker stored, by index."""
    return broker.sql('SELECT "index", offset_ms, duration_ms FROM recording_segments WHERE session_id = ? ORDER BY 1',
                      session_id)


def timeline_gaps(rows: list[tuple[int, int, int]]) -> list[int]:
    """The ms between each segment's end and the next one's start, once checked that the segments
    are numbered in turn and none starts before the one before it ends."""
    assert [index for index, _offset, _duration in rows] == list(range(len(rows))), rows
    gaps = [following[1] - (offset + duration) for (_i, offset, duration), following in itertools.pairwise(rows)]
    assert all(gap >= 0 for gap in gaps), f"segments overlap: {rows}"
    return gaps


async def kill_just_after_a_segment(host: subprocess.Popen[str], segments: Callable[[], int]) -> float:
    """SIGKILL ``host`` as soon as ``segments()`` grows (little of the next segment is lost); when, Unix time."""
    before = segments()
    await async_wait_until(lambda: segments() > before, "the next recording segment", timeout=10, interval=0.01)
    host.kill()
    killed = time.time()
    host.wait(10)
    return killed


async def resumed_until_the_end(live: Live, env: dict[str, str], *, record_seconds: float) -> float:
    """``deskhand-host resume`` the session of the killed ``live.host`` (its state under ``env``),
    let it record for ``record_seconds``, end the session; when it started recording, Unix time."""
    resumed = resume_host(env, "--consent", "view")
    assert resumed.stdout is not None
    deadline, line = time.monotonic() + 60, ""
    while RECORDING_NOTICE not in line:
        assert time.monotonic() < deadline, "the resumed host did not start recording within 60 s"
        line = await asyncio.to_thread(resumed.stdout.readline)
        assert line, "the resumed host exited before it started recording"
    recording_again = time.time()
    await asyncio.sleep(record_seconds)
    await live.console.end_session(live.session_id, "done")
    # The ended host drains its recording (the spool's and the new segments) for up to RECORDING_DRAIN_SECONDS
    # before it closes: 60 s in all was once too little under the full suite's load.
    await asyncio.to_thread(host_exited, resumed, RECORDING_DRAIN_SECONDS + 60)
    return recording_again


def frame_at(data: bytes, seconds: float):
    with av.open(io.BytesIO(data)) as container:
        best = None
        for frame in container.decode(video=0):
            if frame.time is not None and frame.time <= seconds:
                best = frame.to_ndarray(format="rgb24")
        return best


async def test_a_recorded_session_reports_plays_exports_and_verifies(start_broker, xvfb, tmp_path) -> None:
    broker = start_broker(**LOOPBACK)
    painter = PainterProcess(xvfb.env)
    painter.pattern()
    source = tmp_path / "fix.ps1"
    source.write_bytes(os.urandom(200_000))
    try:
        async with live_session(broker, xvfb.env, "--consent", "view,control,chat,files.send") as live:
            await live.view.wait_for_control(30)
            await live.view.wait_until(lambda: live.view.allowed(Permission.control), 10, "consent")
            live.view.move(0.9, 0.9, reliable=True)
            live.view.send_chat("Looking at your printer settings")
            live.user_types("thank you")
            await live.view.wait_until(lambda: any(c.sender == "user" for c in live.view.chat), 10, "chat back")
            await live.console.send_file(live.session_id, source)
            await asyncio.sleep(4)
    finally:
        painter.close()
    session_id = live.session_id
    session = api(broker, f"/sessions/{session_id}").json()

    report = api(broker, f"/audit/sessions/{session_id}/report").json()
    assert report["integrity"]["ok"], report["integrity"]
    kinds = {e["kind"] for e in report["timeline"]}
    assert {"code.redeemed", "consent.changed", "consent.flag_used", "grant.issued", "input.sent", "input.applied", "chat.sent",
            "chat.received", "transfer.completed", "recording.segment", "session.ended"} <= kinds
    assert [c["text"] for c in report["chat"]] == ["Looking at your printer settings", "thank you"] or \
        sorted(c["text"] for c in report["chat"]) == ["Looking at your printer settings", "thank you"]
    assert report["files"][0]["name"] == "fix.ps1" and report["files"][0]["state"] == "completed"
    assert report["participants"][1]["machine_name"]

    recording = played(broker, session_id)
    assert recording.status_code == 200 and recording.headers["content-type"] == "video/webm"
    span = session_span(session)
    duration = ffprobe_duration(recording.content, tmp_path)
    assert abs(duration - span) <= 1.0, (duration, span)
    middle = frame_at(recording.content, duration / 2)
    height, width = middle.shape[:2]
    for x, y, expected in pattern_cell_centres(width, height):
        assert all(abs(int(a) - b) <= 40 for a, b in zip(middle[y, x], expected, strict=True)), (x, y, middle[y, x], expected)

    exported_bundle_verifies(broker, session_id, tmp_path)
    audited = [k for (k,) in broker.sql("SELECT kind FROM audit_events WHERE session_id = ?", session_id)]
    assert "recording.played" in audited and "audit.exported" in audited


def verify(data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESKHAND_")}
    return subprocess.run([sys.executable, "-m", "broker.cli", "audit", "verify", "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture
def finished_trail(xvfb, tmp_path) -> Path:
    """The data directory of a stopped broker after one short recorded session."""
    data_dir = tmp_path / "data"

    async def run_session() -> None:
        with BrokerProcess.start(LOOPBACK, data_dir=data_dir) as broker:
            async with live_session(broker, xvfb.env, "--consent", "view,chat", view=False) as live:
                await live.consented()
                await asyncio.sleep(3)

    asyncio.run(run_session())
    return data_dir


def copy_of(data_dir: Path, tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(data_dir, target)
    return target


def test_verify_names_an_edited_a_deleted_event_and_an_altered_segment(finished_trail, tmp_path) -> None:
    intact = verify(finished_trail)
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert "Trail verified" in intact.stdout and "recording segments" in intact.stdout

    edited = copy_of(finished_trail, tmp_path, "edited")
    with sqlite3.connect(edited / "deskhand.sqlite3") as db:
        row_id, seq = db.execute(
            "SELECT id, chain_seq FROM audit_events WHERE kind = 'consent.changed'").fetchone()
        db.execute("UPDATE audit_events SET data = json_set(data, '$.permissions', json('[\"view\",\"control\"]')) WHERE id = ?", (row_id,))
    result = verify(edited)
    assert result.returncode == 1
    assert f"event {seq} (row {row_id}): was edited (consent.changed" in result.stdout

    deleted = copy_of(finished_trail, tmp_path, "deleted")
    with sqlite3.connect(deleted / "deskhand.sqlite3") as db:
        seq = db.execute("SELECT chain_seq FROM audit_events WHERE kind = 'code.redeemed'").fetchone()[0]
        db.execute("DELETE FROM audit_events WHERE kind = 'code.redeemed'")
    result = verify(deleted)
    assert result.returncode == 1
    assert f"event {seq}: event {seq} was deleted" in result.stdout.splitlines()[1]

    flipped = copy_of(finished_trail, tmp_path, "flipped")
    segment = sorted((flipped / "recordings").rglob("*.seg"))[1]
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0x01
    segment.write_bytes(data)
    result = verify(flipped)
    assert result.returncode == 1
    assert f"recording segment {int(segment.stem)} was altered" in result.stdout


async def test_a_killed_host_keeps_every_uploaded_segment(start_broker, xvfb) -> None:
    broker = start_broker(**LOOPBACK)
    async with live_session(broker, xvfb.env, "--consent", "view", view=False) as live:
        await live.consented()
        for _ in range(100):
            count = broker.sql("SELECT count(*) FROM recording_segments WHERE session_id = ?", live.session_id)[0][0]
            if count >= 3:
                break
            await asyncio.sleep(0.1)
        live.host.send_signal(signal.SIGKILL)
        live.host.wait(10)
        kept = broker.sql("SELECT count(*) FROM recording_segments WHERE session_id = ?", live.session_id)[0][0]
    assert kept >= 3
    indexes = [i for (i,) in broker.sql("SELECT \"index\" FROM recording_segments WHERE session_id = ? ORDER BY 1", live.session_id)]
    assert indexes == list(range(len(indexes)))
    report = api(broker, f"/audit/sessions/{live.session_id}/report").json()
    assert report["integrity"]["ok"] and report["recording"]["segments"] == len(indexes)


async def test_a_broker_restart_mid_session_loses_no_segment(start_broker, xvfb) -> None:
    broker = start_broker(**LOOPBACK)
    async with live_session(broker, xvfb.env, "--consent", "view", view=False) as live:
        await live.consented()
        await asyncio.sleep(2)
        broker.stop()
        await asyncio.sleep(4)  # the host records on, into its spool
        broker.restart()
        await asyncio.sleep(5)  # reconnects, uploads the spool, records on
    report = api(broker, f"/audit/sessions/{live.session_id}/report").json()
    assert max(timeline_gaps(segment_rows(broker, live.session_id))) < 600, "a gap in the recording"
    assert report["integrity"]["ok"], report["integrity"]


async def test_a_host_killed_during_a_broker_outage_resumes_after_its_spool_and_keeps_the_gap(
    start_broker, xvfb, tmp_path
) -> None:
    broker = start_broker(**LOOPBACK)
    env = {**xvfb.env, "XDG_STATE_HOME": str(tmp_path / "state")}
    async with live_session(broker, env, "--consent", "view", view=False) as live:
        spool = tmp_path / "state" / "deskhand" / "host" / "recordings" / live.session_id
        await live.consented()
        await async_wait_until(lambda: len(segment_rows(broker, live.session_id)) >= 2, "stored segments", timeout=30)
        broker.stop()
        await async_wait_until(lambda: len(list(spool.glob("*.json"))) >= 3, "segments spooled", timeout=30)
        killed = await kill_just_after_a_segment(live.host, lambda: len(list(spool.glob("*.json"))))
        last_spooled = max(int(marker.stem) for marker in spool.glob("*.json"))
        broker.restart()
        recording_again = await resumed_until_the_end(live, env, record_seconds=3)
    gaps = timeline_gaps(segment_rows(broker, live.session_id))
    downtime = recording_again - killed
    assert len(gaps) > last_spooled and gaps.index(max(gaps)) == last_spooled, (last_spooled, gaps)
    assert abs(gaps[last_spooled] / 1000 - downtime) <= 1.0, (gaps, downtime)
    assert max(gaps[:last_spooled] + gaps[last_spooled + 1:]) < 600, gaps
    session = api(broker, f"/sessions/{live.session_id}").json()
    recording = played(broker, live.session_id)
    assert abs(ffprobe_duration(recording.content, tmp_path) - session_span(session)) <= 1.0


async def test_a_host_down_for_seconds_leaves_a_gap_that_long(start_broker, xvfb, tmp_path) -> None:
    broker = start_broker(**LOOPBACK)
    env = {**xvfb.env, "XDG_STATE_HOME": str(tmp_path / "state")}
    async with live_session(broker, env, "--consent", "view", view=False) as live:
        await live.consented()
        await async_wait_until(lambda: len(segment_rows(broker, live.session_id)) >= 2, "stored segments", timeout=30)
        killed = await kill_just_after_a_segment(live.host, lambda: len(segment_rows(broker, live.session_id)))
        await asyncio.sleep(HOST_DOWN_SECONDS - HOST_RESUME_SECONDS)
        recording_again = await resumed_until_the_end(live, env, record_seconds=2)
    gaps = timeline_gaps(segment_rows(broker, live.session_id))
    downtime = recording_again - killed
    assert downtime >= HOST_DOWN_SECONDS - 1.0, downtime
    assert abs(max(gaps) / 1000 - downtime) <= 1.0, (gaps, downtime)
    assert sorted(gaps)[-2] < 600, gaps


async def test_control_pauses_while_recording_lags_and_resumes_when_it_catches_up(start_broker, xvfb) -> None:
    broker = start_broker(**LOOPBACK, DESKHAND_RECORDING_MAX_LAG_SECONDS="2")
    with RecorderProcess(xvfb.env) as desktop:
        async with live_session(broker, xvfb.env, "--consent", "view,control") as live:
            view = live.view
            await view.wait_for_control(30)
            await view.wait_until(lambda: view.allowed(Permission.control), 10, "consent")
            view.click(0.5, 0.5)
            view.type_text("a")
            await async_wait_until(lambda: desktop.text() == "a", "the first key", timeout=10)
            broker.stop()  # the data channel goes on peer to peer; the recording cannot be stored
            await view.wait_until(lambda: any("control is paused" in n for n in view.notices), 15, "the pause notice")
            view.type_text("b")
            await view.wait_until(lambda: any("recording is" in r.reason for r in view.refusals), 10, "a refusal")
            assert desktop.text() == "a"
            broker.restart()
            await view.wait_until(lambda: any("caught up" in n for n in view.notices), 30, "the resume notice")
            view.type_text("c")
            await async_wait_until(lambda: desktop.text() == "ac", "the key after the pause", timeout=10)
    kinds = [k for (k,) in broker.sql("SELECT kind FROM audit_events WHERE session_id = ?", live.session_id)]
    assert "recording.behind" in kinds and "recording.caught_up" in kinds
    assert "control is paused" in live.output


async def test_the_auditor_cli_finds_reports_saves_exports_and_verifies(start_broker, xvfb, tmp_path) -> None:
    broker = start_broker(**LOOPBACK)
    async with live_session(broker, xvfb.env, "--consent", "view", view=False, subject="Printer offline") as live:
        await live.consented()
        await asyncio.sleep(3)
    session = api(broker, f"/sessions/{live.session_id}").json()
    env = {**os.environ, "DESKHAND_BROKER": broker.base_url, "DESKHAND_TOKEN": broker.login()}

    def console(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tech_console.cli", *args],
                              capture_output=True, text=True, env=env, timeout=120)

    listed = console("--json", "audit", "sessions", "--ticket", str(session["ticket_id"]), "--technician", "admin",
                     "--since", session["created_at"][:10])
    assert listed.returncode == 0, listed.stderr
    assert [s["id"] for s in json.loads(listed.stdout)] == [live.session_id]
    assert console("--json", "audit", "sessions", "--host", "no-such-machine").stdout.strip() == "[]"

    report = console("audit", "report", live.session_id)
    assert report.returncode == 0, report.stderr
    assert "Printer offline" in report.stdout and "integrity:  verified" in report.stdout

    movie = tmp_path / "session.webm"
    saved = console("--json", "audit", "recording", live.session_id, "--out", str(movie))
    assert saved.returncode == 0, saved.stderr
    assert json.loads(saved.stdout)["size"] == movie.stat().st_size > 0
    assert ffprobe_duration(movie.read_bytes(), tmp_path) > 2

    bundle = tmp_path / "bundle.zip"
    exported = console("audit", "export", live.session_id, "--out", str(bundle))
    assert exported.returncode == 0, exported.stderr
    assert "verify-bundle" in exported.stdout
    heads = tmp_path / "heads.json"
    kept = console("audit", "heads", "--out", str(heads))
    assert kept.returncode == 0 and "verify --heads" in kept.stdout, kept.stdout + kept.stderr
    checked = subprocess.run([sys.executable, "-m", "broker.cli", "audit", "verify-bundle", str(bundle), "--heads", str(heads)],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 heads from" in checked.stdout, checked.stdout

    verified = console("audit", "verify")
    assert verified.returncode == 0 and verified.stdout.startswith("Trail verified"), verified.stdout + verified.stderr
    audited = [k for (k,) in broker.sql("SELECT kind FROM audit_events WHERE session_id = ?", live.session_id)]
    assert "recording.played" in audited and "audit.exported" in audited

    # Bad input is refused with a reason, and nothing is written.
    bad_date = console("audit", "sessions", "--since", "last tuesday")
    assert bad_date.returncode == 2 and "is not a date" in bad_date.stderr
    bad_id = console("audit", "report", "12345")
    assert bad_id.returncode == 2 and "is not a session id" in bad_id.stderr
    missing = console("audit", "export", "65b3bd95-6679-4604-be05-c826beae02b7", "--out", str(tmp_path / "none.zip"))
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    assert not (tmp_path / "none.zip").exists() and not (tmp_path / "none.zip.part").exists()
