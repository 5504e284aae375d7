"""Recording overhead: what recording every session costs the host, and how much it stores.

Starts Xvfb (1920x1080x24), a broker on 127.0.0.1 with loopback ICE, and
``deskhand-host --consent view`` in its own process; the technician's live
view runs in this process, so the host streams live *and* records, as in a
real session. The workload alternates two phases:

* busy: a painter repaints the screen every 100 ms (alternating a full-screen
  colour and a test pattern), the worst case for both encoders;
* static: nothing changes on screen.

For each phase the host's CPU time is read from ``/proc/<pid>/stat`` and
the recorder thread's own from ``/proc/<pid>/task/<tid>/stat`` (the thread
named ``recorder`` grabs, converts and encodes the recording). The host
"without recording" is the difference: the live stream, input and the
rest. The segment upload (a few small HTTP requests a second on the event
loop) is counted in the host total, not in the recorder thread. Storage is
the sum of the stored segment sizes over the recorded duration, as MB per
hour.

Run: ``.venv/bin/python -m bench.recording_overhead [--busy 30] [--static 30] [--write-docs]``.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bench.cpu import cpu_seconds, thread_seconds
from bench.report import machine_conditions, publish
from host_client.recorder import THREAD_NAME
from protocol.cli import number_in_range
from tests.support.broker import BrokerProcess
from tests.support.live_session import live_session
from tests.support.screen_painter import PainterProcess
from tests.support.xvfb import XvfbServer

RECORDER_THREAD = THREAD_NAME


def recorder_seconds(pid: int) -> float:
    """CPU seconds of the host's recorder thread(s); 0 before the first one started."""
    return thread_seconds(pid, RECORDER_THREAD)


class CpuMeter:
    """CPU of the host process and of its recorder thread over one phase."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._start = (time.monotonic(), cpu_seconds(pid, descendants=False), recorder_seconds(pid))

    def read(self) -> tuple[float, float, float]:
        """(wall seconds, host CPU seconds, recorder CPU seconds) since the meter was made."""
        wall, host, recorder = self._start
        return (time.monotonic() - wall, cpu_seconds(self.pid, descendants=False) - host,
                recorder_seconds(self.pid) - recorder)


async def measure(display_env: dict[str, str], busy: float, static: float) -> tuple[dict[str, tuple[float, float, float]], int, int]:
    """CPU per phase, and (stored bytes, recorded milliseconds) of the session."""
    phases: dict[str, tuple[float, float, float]] = {}
    with BrokerProcess.start({"DESKHAND_ICE_LOOPBACK": "true"}) as broker, PainterProcess(display_env) as painter:
        async with live_session(broker, display_env, "--consent", "view", subject="recording benchmark") as live:
            await live.view.wait_until(lambda: live.view.frames_received > 0, 60, "the first frame")
            await asyncio.sleep(3)  # encoders warmed up, first segments stored
            meter = CpuMeter(live.host.pid)
            deadline, flip = time.monotonic() + busy, False
            while time.monotonic() < deadline:
                if flip:
                    await asyncio.to_thread(painter.pattern)
                else:
                    await asyncio.to_thread(painter.fill, (40, 90, 160))
                flip = not flip
                await asyncio.sleep(0.1)
            phases["busy"] = meter.read()
            await asyncio.sleep(1)
            meter = CpuMeter(live.host.pid)
            await asyncio.sleep(static)
            phases["static"] = meter.read()
            session_id = live.session_id
        await asyncio.sleep(2)  # the last segments are uploaded at the end
        stored, recorded_ms = broker.sql(
            "SELECT coalesce(sum(size), 0), coalesce(max(offset_ms + duration_ms), 0) FROM recording_segments "
            "WHERE session_id = ?", session_id,
        )[0]
    return phases, int(stored), int(recorded_ms)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--busy", type=number_in_range(float, 5, 3600, "seconds"), default=30.0,
                        help="seconds of continuous screen change (default 30)")
    parser.add_argument("--static", type=number_in_range(float, 5, 3600, "seconds"), default=30.0,
                        help="seconds of a still screen (default 30)")
    parser.add_argument("--write-docs", action="store_true", help="replace the figures in docs/benchmarks.md")
    args = parser.parse_args()
    with XvfbServer.start(1920, 1080) as xvfb:
        phases, stored, recorded_ms = asyncio.run(measure(xvfb.env, args.busy, args.static))
    rows = ["| phase | host CPU (% of one core) | recorder thread | host without the recorder |",
            "|---|---|---|---|"]
    for name, (wall, host, recorder) in phases.items():
        rows.append(f"| {name} ({wall:.0f} s) | {100 * host / wall:.1f} % | {100 * recorder / wall:.1f} % "
                    f"| {100 * (host - recorder) / wall:.1f} % |")
    hours = recorded_ms / 3_600_000
    rows.append("")
    rows.append(f"Stored: {stored / 1e6:.1f} MB for {recorded_ms / 1000:.0f} s recorded "
                f"= {stored / 1e6 / hours:.0f} MB per hour of this workload (half busy, half static).")
    conditions = [*machine_conditions(),
                  "screen: Xvfb 1920x1080x24; live view open (WebRTC VP8) while the host records at 2 fps",
                  f"workload: {args.busy:.0f} s repainting every 100 ms, then {args.static:.0f} s still"]
    publish("recording_overhead", conditions, "\n".join(rows), write=args.write_docs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
