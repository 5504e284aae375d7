"""The single-file ``deskhand-host`` (``scripts/build-host``) as an end user runs it: no Python, no virtualenv.

The file is built once per run, or taken from the build cache (``tests/support/host_build.py``;
``scripts/test`` starts the build in the background before the tests). It runs with a PATH
without ``.venv/bin``, no ``VIRTUAL_ENV`` or ``PYTHONPATH``, a home and a working folder of its
own, on an Xvfb of its own, and asks for the code in its Tk window: the test types it there
with xdotool, as a user would. A failing build fails the test, in CI and everywhere else.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import host_start
from host_client.ui_window import TITLE
from peer.transfers import file_sha256
from protocol.permissions import Permission
from protocol.transfers import TransferState
from tests.conftest import missing_dependency
from tests.support.host_build import HostBuildFailed, bare_env, built_host
from tests.support.input_recorder import RecorderProcess
from tests.support.live_session import live_session
from tests.support.polling import async_wait_until
from tests.support.xvfb import XvfbMissing, XvfbServer

pytestmark = pytest.mark.slow

WIDTH, HEIGHT = 1280, 720


@pytest.fixture(scope="module")
def broker_env() -> dict[str, str]:
    return {"DESKHAND_ICE_LOOPBACK": "true"}


@pytest.fixture(scope="module")
def program() -> Path:
    try:
        return built_host()
    except HostBuildFailed as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="module")
def display() -> Iterator[XvfbServer]:
    """An Xvfb of the module's own: nothing another test left on the run's display is on this one."""
    try:
        with XvfbServer.start(WIDTH, HEIGHT) as server:
            yield server
    except XvfbMissing as exc:
        missing_dependency(str(exc))


async def xdo(display: XvfbServer, *args: str, timeout: float = 30) -> str:
    """``xdotool`` on ``display``; its standard output."""
    process = await asyncio.create_subprocess_exec(
        "xdotool", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **display.env},
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode == 0, f"xdotool {' '.join(args)}: {err.decode()}"
    return out.decode()


async def type_in_window(display: XvfbServer, *keys: str, text: str = "") -> None:
    """Once the host's window is shown: give it the X focus, type ``text``, press ``keys``."""
    ids = (await xdo(display, "search", "--sync", "--onlyvisible", "--name", TITLE)).split()
    assert len(ids) == 1, f"expected one window titled {TITLE!r}, found {ids}"
    await xdo(display, "windowfocus", "--sync", ids[0])
    if text:
        await xdo(display, "type", "--delay", "15", text)
    if keys:
        await xdo(display, "key", "--delay", "30", *keys)


async def test_with_no_argument_it_asks_for_the_code_in_its_window(program, display, tmp_path) -> None:
    env = bare_env(tmp_path, DISPLAY=display.display, DESKHAND_BROKER="http://127.0.0.1:9")
    host = subprocess.Popen([str(program)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        await type_in_window(display, "Escape")  # the window's code prompt: Escape cancels
        out, err = host.communicate(timeout=30)
    finally:
        if host.poll() is None:
            host.kill()
            host.communicate()
    assert host.returncode == 1 and "deskhand-host: no code given" in err, (out, err)


async def test_the_built_file_joins_streams_takes_control_and_receives_a_file(broker, program, display, tmp_path) -> None:
    home, downloads = tmp_path / "home", tmp_path / "Downloads"
    home.mkdir()
    source = tmp_path / "fix-printer.sh"
    source.write_bytes(os.urandom(300_000))
    env = bare_env(home, DISPLAY=display.display, DESKHAND_BROKER=broker.base_url, DESKHAND_DOWNLOADS=str(downloads))
    assert "VIRTUAL_ENV" not in env and ".venv" not in env["PATH"]

    def command(_code: str) -> list[str]:
        # No code and no broker on the command line: the code is typed into the window below.
        return [str(program), "join", "--ui", "window", "--consent", "view,control,files.send", "--no-survey"]

    with RecorderProcess(display.env) as recorder:
        async with live_session(broker, {}, command=command, base_env=env, cwd=str(home)) as live:
            await type_in_window(display, "Return", text=live.code)
            frame = await live.view.wait_for_frame(30)
            assert frame.width > 0 and frame.height > 0
            await live.view.wait_for_control(30)
            await live.view.wait_until(lambda: live.view.allowed(Permission.control), 10, "consent to control")
            # The recorder fills the screen; the host's window sits at the top left, away from this corner.
            live.view.click(0.9, 0.9)
            await async_wait_until(lambda: recorder.clicks(), "the click", timeout=10)
            x, y, button = recorder.clicks()[0]
            assert abs(x - 0.9 * (WIDTH - 1)) <= 1 and abs(y - 0.9 * (HEIGHT - 1)) <= 1 and button == 1

            sent = await live.console.send_file(live.session_id, source)
            assert sent.state is TransferState.completed and sent.sha256 == file_sha256(source)
    landed = list(downloads.rglob(source.name))
    assert len(landed) == 1 and file_sha256(landed[0]) == file_sha256(source)
    assert "ended by the technician: test over" in live.output, live.output


async def test_the_start_benchmark_measures_a_run(broker, program, display, tmp_path) -> None:
    # bench/host_start.py's run, once, on this module's broker and display: it cannot rot. Not a measurement.
    env = bare_env(tmp_path, DISPLAY=display.display, DESKHAND_BROKER=broker.base_url)
    to_prompt, to_frame = await host_start.one_run(
        broker, display, [str(program), "join", "--ui", "window", "--consent", "view", "--no-survey"], env, tmp_path)
    assert to_prompt > 0 and to_frame > 0
    runs = host_start.Runs("single file", [to_prompt], [to_frame])
    conditions, table = host_start.report(program, [runs], None)
    assert f"file: {program.name}, " in "\n".join(conditions)
    assert "| single file | start to code prompt | " in table and "| single file | code to first frame | " in table
