"""The Python technician view (aiortc) as a screen-streaming benchmark receiver.

    async with aiortc_receiver(broker, display_env, 1920, 1080) as (receiver, host_pid):
        ...                       # the workload paints marks; receiver.frames fills up
        await receiver.bytes_received(), await receiver.latest_rgb()

What runs: :func:`tests.support.live_session.live_session` -- a ticket, a session,
``python -m <host_module> join CODE --ui terminal --consent view`` on the given
display, and :class:`tech_console.remote_view.RemoteView` in this process. Its
frame hook records a :class:`~bench.stream_marks.FrameSeen` for every decoded
frame: ``time.monotonic()`` when ``track.recv()`` handed it over, and the palette
slot of the marker's centre pixel, read from the yuv420p planes
(:func:`bench.frame_probe.sample_rgb`, microseconds) instead of converting the
frame. The newest frame is kept and converted to RGB only when asked.

Bytes: aiortc's ``inbound-rtp`` stats carry no byte count, so
:meth:`AiortcReceiver.bytes_received` reads the ``transport`` entry of
``RTCPeerConnection.getStats()``: every datagram the DTLS transport took off the
wire. With BUNDLE that is the video's SRTP packets (RTP payload plus ~3 % headers
and authentication tags at ~1200-byte packets), the sender's RTCP reports and
the data channels, which carry nothing during the benchmark but a monitor list.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext

import av
import numpy as np

from bench.frame_probe import sample_rgb
from bench.naive_host import RECEIVER_HOOKS, check_hooks_off, receiver_hooks_off
from bench.stream_marks import FrameSeen, marker_centre, palette_slot
from tech_console.remote_view import RemoteView
from tests.support.broker import BrokerProcess
from tests.support.live_session import live_session


class AiortcReceiver:
    """Frames of a :class:`RemoteView`, as the benchmark needs them."""

    wall_clock = False

    def __init__(self, name: str, width: int, height: int) -> None:
        self.name = name
        self.frames: list[FrameSeen] = []
        self._width, self._height = width, height
        self._x, self._y = marker_centre(width, height)
        self._latest: av.VideoFrame | None = None
        self.view: RemoteView | None = None

    def on_frame(self, frame: av.VideoFrame, arrived: float) -> None:
        """The view's frame hook: record the frame and the marker colour it shows."""
        self._latest = frame
        if frame.width != self._width or frame.height != self._height:
            # A scaled-down stream: sample where the marker's centre lands in it.
            x, y = self._x * frame.width // self._width, self._y * frame.height // self._height
        else:
            x, y = self._x, self._y
        self.frames.append(FrameSeen(arrived, palette_slot(sample_rgb(frame, x, y))))

    async def bytes_received(self) -> int:
        pc = self.view.peer_connection
        if pc is None:
            raise RuntimeError(f"{self.name}: the view has no peer connection (the host left?)")
        stats = await pc.getStats()
        return sum(s.bytesReceived for s in stats.values() if s.type == "transport")

    async def latest_rgb(self) -> np.ndarray:
        if self._latest is None:
            raise RuntimeError(f"{self.name}: no frame received yet")
        frame = self._latest
        return await asyncio.to_thread(
            lambda: frame.reformat(width=self._width, height=self._height, format="rgb24").to_ndarray()
        )


@asynccontextmanager
async def aiortc_receiver(
    broker: BrokerProcess,
    display_env: dict[str, str],
    width: int,
    height: int,
    *,
    host_module: str = "host_client.cli",
    name: str = "Deskhand -> aiortc",
    naive_receiver: bool = False,
    timeout: float = 60.0,
) -> AsyncIterator[tuple[AiortcReceiver, int]]:
    """A session watched by a RemoteView in this process: ``(receiver, host process id)`` once frames come.

    ``naive_receiver`` answers without Deskhand's receiver-side aiortc hook
    (:func:`bench.naive_host.receiver_hooks_off`), for the naive pipeline.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"the screen size must be positive, not {width}x{height}")
    receiver = AiortcReceiver(name, width, height)
    with receiver_hooks_off() if naive_receiver else nullcontext():
        async with live_session(
            broker, display_env, "--consent", "view", subject="Screen streaming benchmark",
            on_frame=receiver.on_frame, host_module=host_module,
        ) as live:
            receiver.view = live.view
            await live.view.wait_for_frame(timeout)
            if naive_receiver:
                check_hooks_off(RECEIVER_HOOKS)
            yield receiver, live.host.pid
