"""The single-file host (``scripts/build-host``): its size, start to the code prompt, code to the first frame.

Builds the file (or takes it from the build cache; ``--program FILE`` takes that one), starts
a broker and an Xvfb (1920x1080x24) of its own, and runs the file as an end user does: no
virtualenv on PATH, no ``VIRTUAL_ENV`` or ``PYTHONPATH``, a fresh home, asked for the code in
its window (``join --consent view --no-survey``: the consent answered in advance so that the
run measures the machine, not a person). Per run:

* **start to code prompt**: from starting the process to its window being viewable on the
  display with the code prompt (an X window titled ``Deskhand`` mapped, polled every 5 ms
  through python-xlib); the file unpacks itself into a temporary folder first;
* **code to first frame**: from pressing Return after the code in the window (xdotool) to
  the first decoded frame at the technician (:class:`~tech_console.remote_view.RemoteView`,
  started before the code is typed, as a technician waits): redeeming the code, signalling,
  ICE on loopback, DTLS, the first keyframe.

The same runs with the virtualenv's ``python -m host_client`` show what the single file adds
(``--no-venv`` leaves them out). Printed: the file's size and SHA-256, and per kind the median
and maximum over ``--runs`` runs.

Run: ``.venv/bin/python -m bench.host_start [--runs 7] [--program FILE] [--no-venv] [--write-docs]``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from Xlib import X, display

from bench.report import machine_conditions, publish
from host_client.ui_window import TITLE
from protocol.api import TicketCreate
from protocol.cli import number_in_range
from tech_console.client import TechConsole
from tests.support.broker import BrokerProcess
from tests.support.host_build import bare_env, built_host
from tests.support.line_child import REPO
from tests.support.xvfb import XvfbServer

WIDTH, HEIGHT = 1920, 1080
PROMPT_TIMEOUT = 60.0
FRAME_TIMEOUT = 60.0


@dataclass
class Runs:
    """One kind of host's runs: seconds from start to the code prompt, and from the code to the first frame."""

    kind: str
    to_prompt: list[float] = field(default_factory=list)
    to_frame: list[float] = field(default_factory=list)

    def row(self, label: str, values: list[float]) -> str:
        return f"| {self.kind} | {label} | {statistics.median(values):.2f} s | {max(values):.2f} s | {len(values)} |"


def window_shown(screen: display.Display) -> bool:
    """Whether a viewable top-level window titled :data:`TITLE` is on the display (no window manager: root's children)."""
    for window in screen.screen().root.query_tree().children:
        try:
            if window.get_wm_name() == TITLE and window.get_attributes().map_state == X.IsViewable:
                return True
        except Exception:  # noqa: BLE001 - a window that went away between the listing and the question
            continue
    return False


async def xdo(env: dict[str, str], *args: str) -> None:
    process = await asyncio.create_subprocess_exec("xdotool", *args, env={**os.environ, **env},
                                                   stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"xdotool {' '.join(args)}: {err.decode()}")


async def one_run(broker: BrokerProcess, xvfb: XvfbServer, argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Start the host, wait for its code prompt, type the code, wait for the first frame: the two times."""
    async with TechConsole(broker.base_url) as console:
        await console.login("admin", broker.admin_password)
        ticket = await console.create_ticket(TicketCreate(subject="Start time", requester_name="Ann",
                                                          requester_email="ann@example.com"))
        started = await console.start_session(ticket.id)
        view = console.view(started.session.id)
        await view.start()
        screen = display.Display(xvfb.display)
        host = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=env, cwd=cwd)
        launched = time.monotonic()
        try:
            while not window_shown(screen):
                if host.poll() is not None:
                    raise RuntimeError(f"the host exited ({host.returncode}): {host.stderr.read().decode()[-2000:]}")
                if time.monotonic() - launched > PROMPT_TIMEOUT:
                    raise RuntimeError(f"no code prompt within {PROMPT_TIMEOUT:g} s")
                await asyncio.sleep(0.005)
            to_prompt = time.monotonic() - launched
            await xdo(xvfb.env, "search", "--sync", "--onlyvisible", "--name", TITLE, "windowfocus", "--sync")
            await xdo(xvfb.env, "type", "--delay", "10", started.code)
            entered = time.monotonic()
            await xdo(xvfb.env, "key", "Return")
            await view.wait_for_frame(FRAME_TIMEOUT)
            to_frame = time.monotonic() - entered
        finally:
            screen.close()
            await view.close()
            if host.poll() is None:
                await console.end_session(started.session.id, "benchmark run over")
                try:
                    await asyncio.to_thread(host.wait, 20)
                except subprocess.TimeoutExpired:
                    host.kill()
            host.communicate()
    return to_prompt, to_frame


async def measure(program: Path, runs: int, venv: bool) -> list[Runs]:
    kinds = [Runs("single file")] + ([Runs("virtualenv (python -m host_client)")] if venv else [])
    with tempfile.TemporaryDirectory(prefix="deskhand-host-start-") as tmp, \
            BrokerProcess.start({"DESKHAND_ICE_LOOPBACK": "true"}) as broker, XvfbServer.start(WIDTH, HEIGHT) as xvfb:
        for n in range(runs):
            for kind in kinds:  # alternating, so that a busy moment of the machine falls on both
                home = Path(tmp) / f"{len(kind.to_prompt)}-{kind.kind.split()[0]}"
                home.mkdir()
                options = ["join", "--ui", "window", "--consent", "view", "--no-survey"]
                common = {"DISPLAY": xvfb.display, "DESKHAND_BROKER": broker.base_url}
                if kind is kinds[0]:
                    argv, env, cwd = [str(program), *options], bare_env(home, **common), home
                else:
                    argv = [sys.executable, "-m", "host_client", *options]
                    env = {**os.environ, **common, "XDG_STATE_HOME": str(home / "state"), "HOME": str(home)}
                    cwd = REPO
                to_prompt, to_frame = await one_run(broker, xvfb, argv, env, cwd)
                kind.to_prompt.append(to_prompt)
                kind.to_frame.append(to_frame)
                print(f"run {n + 1}, {kind.kind}: code prompt after {to_prompt:.2f} s, first frame {to_frame:.2f} s after the code",
                      flush=True)
    return kinds


def report(program: Path, kinds: list[Runs], build_seconds: float | None) -> tuple[list[str], str]:
    """The conditions and the table of figures (``build_seconds``: scripts/build-host's time, None for a given file)."""
    data = program.read_bytes()
    rows = ["| host | measure | median | max | runs |", "|---|---|---|---|---|"]
    for kind in kinds:
        rows += [kind.row("start to code prompt", kind.to_prompt), kind.row("code to first frame", kind.to_frame)]
    conditions = [
        *machine_conditions(),
        f"file: {program.name}, {len(data):,} bytes ({len(data) / 2**20:.1f} MiB), SHA-256 {hashlib.sha256(data).hexdigest()[:16]}…"
        + ("" if build_seconds is None else f" (scripts/build-host: {build_seconds:.1f} s, built or from its cache)"),
        "the file runs with a PATH without the virtualenv, no VIRTUAL_ENV/PYTHONPATH, a fresh HOME and working folder",
        f"display: Xvfb {WIDTH}x{HEIGHT}x24 of its own, no window manager, nothing else drawn",
        "broker: one on this machine (SQLite), DESKHAND_ICE_LOOPBACK=true; technician: RemoteView in this process",
        "start to code prompt: process start to a viewable window titled 'Deskhand' (polled every 5 ms)",
        "code to first frame: Return pressed after the code (xdotool) to the first decoded frame at the technician",
    ]
    return conditions, "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=number_in_range(int, 1, 100, "runs"), default=7, help="runs per kind (default 7)")
    parser.add_argument("--program", type=Path, help="the single file to measure (default: scripts/build-host's, built or cached)")
    parser.add_argument("--no-venv", action="store_true", help="leave out the virtualenv's host, measured for comparison")
    parser.add_argument("--write-docs", action="store_true", help="replace this section's figures in docs/benchmarks.md")
    args = parser.parse_args(argv)
    started = time.monotonic()
    program = args.program or built_host()
    build_seconds = None if args.program else time.monotonic() - started
    kinds = asyncio.run(measure(program, args.runs, not args.no_venv))
    conditions, table = report(program, kinds, build_seconds)
    publish("host_start", conditions, table, write=args.write_docs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
