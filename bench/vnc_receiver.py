"""x11vnc serving the Xvfb display, watched by a Python VNC client: the screen-streaming benchmark's
"peer a user would otherwise pick".

    async with vnc_receiver(display_env, 1920, 1080) as (receiver, server_pid):
        ...                       # the workload paints marks; receiver.frames fills up
        await receiver.bytes_received(), await receiver.latest_rgb()

The server: Debian's ``x11vnc`` (:func:`ensure_x11vnc` installs the package with
apt-get when it is missing), run the way the man page's defaults run it, plus only
what a helpdesk must add to serve one display to one viewer on this machine
(:func:`x11vnc_command` lists the flags and why). Above all x11vnc keeps its
defaults for how it finds changes and paces updates: X DAMAGE on (Xvfb has the
extension) as a hint to its scan-line polling, ``-wait 20`` ms between polls,
``-defer 20`` ms before sending. The one flag beyond the defaults is ``-threads``
(measured: without it x11vnc shows only every other change of a full screen
changing ten times a second).

The client: `asyncvnc2 <https://pypi.org/project/asyncvnc2/>`_ (2.0, 2025), an
asyncio RFB client that keeps the framebuffer as a numpy array; its Zlib, Raw and
CopyRect decoding runs in C (``zlib``, numpy slicing). Candidates rejected:
asyncvnc 1.3 (2023), its parent, swaps the Bell and ServerCutText message numbers
(upstream issue barneygale/asyncvnc#13, open) and loses its place in the stream
when x11vnc sends the X selection (one self-check run here failed on it);
vncdotool (well kept, but Twisted, which wants its own reactor thread, and its
compressed decoders, ZRLE and Hextile, loop over pixels in Python: far too slow
for 1920x1080 text; only its Raw path is fast). asyncvnc2's own ZRLE/TRLE
decoders are pure Python too, so the receiver does not offer them.

Encodings: the receiver replaces asyncvnc2's ``SetEncodings`` with the order a
viewer sends: the preferred pixel encoding (:data:`DEFAULT_ENCODING`, Zlib),
CopyRect (x11vnc's scroll and window-move detection sends it), Raw. No cursor
pseudo-encodings, so x11vnc paints the pointer into the framebuffer it serves, as
it does for any viewer that asks for no cursor shape. Updates are asked for the way
VNC viewers without the ContinuousUpdates extension do (x11vnc has none): one full
``FramebufferUpdateRequest`` first, then an incremental one sent the moment each
``FramebufferUpdate`` has been read in full. The server holds an incremental
request until something changed, so every update is a change.

When a frame counts as seen: when the last rectangle of a ``FramebufferUpdate`` has
been decoded into the framebuffer; then the marker's centre pixel is classified
with :func:`~bench.stream_marks.palette_slot` and a
:class:`~bench.stream_marks.FrameSeen` stamped with ``time.monotonic()`` is
recorded (:attr:`VncReceiver.wall_clock` is False). The client runs on the
caller's event loop, like the aiortc receivers: a loop that blocks delays these
stamps. :meth:`VncReceiver.bytes_received` counts every byte the socket delivered
(the whole RFB stream: headers and pixel data).

Self-check (Xvfb, x11vnc, a painter changing the marker's colour every 250 ms)::

    .venv/bin/python -m bench.vnc_receiver [--marks 80] [--interval 0.25] [--encoding zlib] [--nothreads]
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from types import ModuleType
from typing import IO, TYPE_CHECKING

import numpy as np

from bench.stream_marks import FrameSeen, marker_centre, palette_slot

if TYPE_CHECKING:
    import asyncvnc2

NAME = "x11vnc -> asyncvnc2"

PACKAGE = "x11vnc"
"""The Debian/Ubuntu package that provides the ``x11vnc`` binary."""

ENCODINGS: dict[str, int] = {"raw": 0, "zlib": 6}
"""The pixel encodings the receiver may prefer, by name, with their RFB numbers."""

COPY_RECT = 1
"""RFB's CopyRect: "move these pixels from there", which x11vnc sends for scrolls and window moves."""

DEFAULT_ENCODING = "zlib"
"""Zlib: compressed as every VNC viewer's preferred encoding is (TigerVNC: Tight, RealVNC: ZRLE;
asyncvnc2 decodes neither fast), lossless, and decoded in C. Raw has lower latency on loopback
(self-check, whole screen changing every 100 ms: p50 26 ms against 54 ms) but at 650 Mbit/s,
a rate no support session's network carries; Zlib needed 0.8 Mbit/s for the same changes."""

STREAM_BUFFER = 16 * 1024 * 1024
"""How much the client's stream reader may hold before it pauses the socket; a full 1920x1080
Raw update is 8 MiB, and pausing every 128 KiB (asyncio's default) costs a loop round trip each."""

Route = Callable[[tuple[str, int]], AbstractContextManager[tuple[str, int]]]
"""Given the address x11vnc listens on, a context yielding the address the receiver connects to."""

_SET_ENCODINGS = 2
"""The RFB client message number of ``SetEncodings``."""


def _asyncvnc2() -> ModuleType:
    """The RFB client library, imported when first needed: the unit tests run without it."""
    try:
        import asyncvnc2
    except ImportError as exc:
        raise RuntimeError(f"the VNC receiver needs asyncvnc2 ({exc}): .venv/bin/pip install -e '.[bench]'") from None
    return asyncvnc2


class X11vncMissing(RuntimeError):
    """x11vnc is not installed and could not be installed; the message names the package."""


class X11vncStartError(RuntimeError):
    """x11vnc is installed but did not come up; the message holds what it said."""


def ensure_vnc_side() -> str:
    """What x11vnc runs need, checked before the first (a network namespace a run enters reaches no
    package registry): the RFB client library, and x11vnc, installed when missing (:func:`ensure_x11vnc`).
    Raises :class:`RuntimeError` (:class:`X11vncMissing` for x11vnc) naming the fix."""
    _asyncvnc2()
    return ensure_x11vnc()


def ensure_x11vnc() -> str:
    """The path of ``x11vnc``, installing Debian's package with apt-get first when it is missing.

    Installs as ``scripts/test`` installs system packages: ``apt-get update`` then
    ``apt-get install -y -qq --no-install-recommends``, as root or through ``sudo``.
    Raises :class:`X11vncMissing`, naming the package, when that is not possible.
    """
    binary = shutil.which("x11vnc")
    if binary is not None:
        return binary
    if shutil.which("apt-get") is None:
        raise X11vncMissing(f"x11vnc is not installed and apt-get is not available: install the {PACKAGE} package")
    if os.geteuid() == 0:
        as_root: list[str] = []
    elif shutil.which("sudo") is not None:
        as_root = ["sudo"]
    else:
        raise X11vncMissing(f"x11vnc is not installed, and installing it needs root: apt-get install {PACKAGE}")
    print(f"installing system package: {PACKAGE}", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for step in (["apt-get", "update", "-qq"],
                 ["apt-get", "install", "-y", "-qq", "--no-install-recommends", PACKAGE]):
        done = subprocess.run([*as_root, *step], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if done.returncode != 0:
            said = (done.stderr or done.stdout).strip()[-2000:] or "(no output)"
            raise X11vncMissing(f"could not install {PACKAGE} ({' '.join(step)} exited {done.returncode}): {said}")
    binary = shutil.which("x11vnc")
    if binary is None:
        raise X11vncMissing(f"apt-get installed {PACKAGE} but there is still no x11vnc on PATH")
    return binary


def x11vnc_command(binary: str, display: str, port: int, *, threads: bool = True, listen: str = "localhost") -> list[str]:
    """The x11vnc command line: the defaults a helpdesk gets, made private to this machine.

    ``-localhost`` accepts only 127.0.0.1 and listens there (``listen`` another address, as
    the link sweep's user namespace does, gives ``-listen`` that address instead), ``-noipv6``
    keeps it off ``::1`` too, ``-rfbport`` is a port chosen free. ``-nopw`` because the connection never leaves the
    machine (without it x11vnc prints a long warning and asks nothing more). ``-forever`` and
    ``-shared``: keep serving after a viewer leaves, let a second viewer in, as a support
    session wants. ``-norc``: no ``~/.x11vncrc`` of whoever runs the benchmark. ``-noncache``:
    the client-side cache, off by default, is spelled out because it makes the framebuffer
    taller than the screen. ``-quiet``: less logging.

    ``-threads`` (unless ``threads`` is False): the one flag that is not a default (the man
    page's default is ``-nothreads``), chosen because it is x11vnc's documented answer to
    exactly this load and makes the comparison fair: a thread per viewer sends updates while
    the main loop keeps polling the screen. Measured with the self-check
    (the whole 1920x1080 screen changing every 100 ms, Zlib, three runs each): ``-nothreads``
    delivered 5.8 updates/s and showed only every other change (p50 67-76 ms, p95 115-144 ms);
    ``-threads`` kept up, 9.9 updates/s and every change (p50 54-55 ms, p95 60-66 ms). The man
    page's caveat (Tight and Zlib with several threaded viewers) is for platforms other than
    Linux.

    Left at their defaults on purpose: X DAMAGE as polling hints (``-xdamage``; x11vnc logs
    "X DAMAGE available on display, using it for polling hints" on Xvfb), ``-wait 20`` and
    ``-defer 20`` ms pacing, ``-scrollcopyrect`` and the ``-wireframe`` window-move outlines
    (both sent as CopyRect, which the receiver accepts).
    """
    where = ["-localhost"] if listen == "localhost" else ["-listen", listen]
    return [binary, "-display", display, "-rfbport", str(port), *where, "-noipv6",
            "-nopw", "-forever", "-shared", "-norc", "-noncache", "-quiet",
            "-threads" if threads else "-nothreads"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


_PORT_LINE = re.compile(rb"^PORT=(\d+)$", re.MULTILINE)


def listening_port(output: bytes) -> int | None:
    """The port in x11vnc's ``PORT=n`` line (printed once it listens, even with ``-quiet``), if any."""
    found = _PORT_LINE.search(output)
    return int(found.group(1)) if found else None


async def _wait_for_port(process: subprocess.Popen[bytes], log: IO[bytes], timeout: float) -> int:
    """The port x11vnc says it listens on: its ``PORT=n`` line comes once the socket is listening."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise X11vncStartError(f"x11vnc exited (code {process.returncode}) before listening: {_tail(log)}")
        log.flush()
        log.seek(0)
        port = listening_port(log.read())
        if port is not None:
            return port
        await asyncio.sleep(0.05)
    raise X11vncStartError(f"x11vnc did not listen within {timeout:g} s: {_tail(log)}")


def _tail(log: IO[bytes], size: int = 2000) -> str:
    log.flush()
    log.seek(0)
    return log.read().decode(errors="replace")[-size:].strip() or "(no output)"


class _CountingProtocol(asyncio.StreamReaderProtocol):
    """A stream reader protocol that counts the bytes the socket delivered."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        super().__init__(reader)
        self.received = 0

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        super().data_received(data)


class VncReceiver:
    """An RFB client on x11vnc that records a :class:`FrameSeen` per framebuffer update.

    Implements :class:`bench.stream_receiver.StreamReceiver`. Made by :func:`vnc_receiver`.
    """

    wall_clock = False

    def __init__(self, client: asyncvnc2.Client, counter: _CountingProtocol, encoding: str, name: str = NAME) -> None:
        self.name = name
        self.encoding = encoding
        self.frames: list[FrameSeen] = []
        self._client = client
        self._counter = counter
        video = client.video
        self.width, self.height = video.width, video.height
        self._sample = marker_centre(video.width, video.height)
        self._rgb = [video.mode.index(channel) for channel in "rgb"]
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Choose the encoding, ask for the first full update and read updates from then on."""
        writer = self._client.writer
        # Like a viewer: the preferred encoding first, then CopyRect, then Raw (always allowed).
        encodings = [ENCODINGS[self.encoding], COPY_RECT, ENCODINGS["raw"]]
        encodings = list(dict.fromkeys(encodings))
        writer.write(bytes([_SET_ENCODINGS, 0]) + len(encodings).to_bytes(2, "big")
                     + b"".join(e.to_bytes(4, "big", signed=True) for e in encodings))
        self._client.video.refresh()  # the framebuffer is empty: a full, non-incremental request
        self._task = asyncio.create_task(self._read_updates(), name="vnc-receiver")

    async def _read_updates(self) -> None:
        video_update = _asyncvnc2().UpdateType.VIDEO
        client, video = self._client, self._client.video
        x, y = self._sample
        while True:
            update = await client.read()
            if update is not video_update:
                continue  # a bell or the server's clipboard
            arrived = time.monotonic()
            video.refresh()  # incremental now that the framebuffer is filled: pipelined at once
            assert video.data is not None
            pixel = video.data[y, x]
            self.frames.append(FrameSeen(arrived, palette_slot([pixel[i] for i in self._rgb])))

    def _check(self) -> None:
        """Raise the reading task's failure, if it failed, naming the receiver."""
        if self._task is not None and self._task.done() and not self._task.cancelled():
            failure = self._task.exception()
            if failure is not None:
                raise RuntimeError(f"{self.name}: reading framebuffer updates failed: {failure!r}") from failure

    async def stop(self) -> None:
        """Stop reading updates; raise if reading had failed."""
        if self._task is None:
            return
        if not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._check()

    async def bytes_received(self) -> int:
        """Bytes taken off the socket since connecting: the whole RFB stream."""
        self._check()
        return self._counter.received

    async def latest_rgb(self) -> np.ndarray:
        """The framebuffer as it stands, as a (height, width, 3) uint8 RGB copy."""
        self._check()
        data = self._client.video.data
        if data is None:
            raise RuntimeError(f"{self.name}: no framebuffer update has arrived yet")
        return np.ascontiguousarray(data[:, :, self._rgb])


async def _connect(address: tuple[str, int]) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, _CountingProtocol]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=STREAM_BUFFER)
    transport, protocol = await loop.create_connection(lambda: _CountingProtocol(reader), *address)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer, protocol


@asynccontextmanager
async def vnc_receiver(
    display_env: Mapping[str, str], width: int, height: int, *,
    encoding: str = DEFAULT_ENCODING, threads: bool = True, timeout: float = 20.0, name: str = NAME,
    listen: str = "localhost", wrap: Sequence[str] = (), route: Route | None = None,
) -> AsyncIterator[tuple[VncReceiver, int]]:
    """x11vnc on ``display_env["DISPLAY"]`` and a :class:`VncReceiver` reading it, for the block.

    By default x11vnc serves 127.0.0.1 and the receiver connects there. Elsewhere (the link
    sweep): x11vnc runs behind the argv prefix ``wrap`` (a network namespace), listens on
    ``listen``, and ``route``, given the address x11vnc listens on, is the context that leads
    there (a relay) and yields the address the receiver connects to.

    Yields the receiver (already reading updates; its first frame is the full framebuffer) and
    x11vnc's pid, for CPU sampling. Installs x11vnc first if needed (:func:`ensure_x11vnc`);
    ``threads`` as in :func:`x11vnc_command`. Raises :class:`X11vncStartError` when x11vnc
    does not come up in ``timeout`` seconds, and :class:`ValueError` for an unknown
    ``encoding``, a ``display_env`` without a ``DISPLAY`` like ``:5``, or a served framebuffer
    that is not ``width`` x ``height``.
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding {encoding!r} is not one of {', '.join(ENCODINGS)}")
    display = display_env.get("DISPLAY", "")
    if not re.fullmatch(r"[A-Za-z0-9.\-]*:\d+(\.\d+)?", display):
        raise ValueError(f"display_env needs DISPLAY like ':5', got {display!r}")
    _asyncvnc2()  # missing: say so before starting anything
    binary = await asyncio.to_thread(ensure_x11vnc)
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [*wrap, *x11vnc_command(binary, display, _free_port(), threads=threads, listen=listen)],
            env={**os.environ, **display_env}, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )
        try:
            port = await _wait_for_port(process, log, timeout)
            served_at = ("127.0.0.1" if listen == "localhost" else listen, port)
            with route(served_at) if route is not None else nullcontext(served_at) as address:
                async with _receiving(address, width, height, encoding, name, timeout) as receiver:
                    yield receiver, process.pid
        finally:
            process.terminate()
            try:
                await asyncio.to_thread(process.wait, 5)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)


@asynccontextmanager
async def _receiving(address: tuple[str, int], width: int, height: int, encoding: str, name: str,
                     timeout: float) -> AsyncIterator[VncReceiver]:
    """A :class:`VncReceiver` connected to ``address`` and reading updates, for the block."""
    receiver: VncReceiver | None = None
    writer: asyncio.StreamWriter | None = None
    try:
        reader, writer, counter = await asyncio.wait_for(_connect(address), timeout)
        client = await asyncio.wait_for(_asyncvnc2().Client.create(reader, writer), timeout)
        served = (client.video.width, client.video.height)
        if served != (width, height):
            raise ValueError(f"x11vnc serves a {served[0]}x{served[1]} framebuffer, expected {width}x{height}")
        receiver = VncReceiver(client, counter, encoding, name)
        receiver.start()
        yield receiver
        await receiver.stop()
    finally:
        if receiver is not None:
            await _quietly(receiver.stop())
        if writer is not None:
            writer.close()
            await _quietly(writer.wait_closed())


async def _quietly(step: Awaitable[object]) -> None:
    """Await a clean-up step whose failure must not hide the error being raised."""
    try:
        await step
    except (Exception, asyncio.CancelledError):  # noqa: BLE001 - clean-up after another failure
        pass


async def self_check(marks: int, interval: float, encoding: str, threads: bool) -> None:
    """Xvfb, x11vnc and a painter that fills the screen with the next marker colour every
    ``interval`` seconds (so the marker's centre shows it); print latency, fps and bitrate."""
    import mss

    from bench.report import percentile
    from bench.stream_marks import MARKER_PALETTE, frames_per_second, match_latencies
    from bench.stream_receiver import paint_marks
    from tests.support.screen_painter import PainterProcess
    from tests.support.xvfb import XvfbServer

    width, height = 1920, 1080
    with XvfbServer.start(width, height) as xvfb, PainterProcess(xvfb.env) as painter:
        painter.fill((0, 0, 0))
        async with vnc_receiver(xvfb.env, width, height, encoding=encoding, threads=threads) as (receiver, server_pid):
            await asyncio.sleep(1.0)  # past the first full update
            bytes_before = await receiver.bytes_received()
            painted_marks = await paint_marks(painter, marks, interval)
            await asyncio.sleep(1.0)
            bytes_after = await receiver.bytes_received()
            snapshot = await receiver.latest_rgb()
            # Pixel for pixel against the X server's own framebuffer: the test pattern, then the last mark.
            await asyncio.to_thread(painter.pattern)
            await asyncio.sleep(1.0)
            with mss.MSS(display=xvfb.display) as grabber:
                shot = np.asarray(grabber.grab(grabber.monitors[1]))[:, :, 2::-1]  # BGRA -> RGB
            received = await receiver.latest_rgb()
            rows, columns = np.nonzero(np.any(received != shot, axis=2))
            latencies, missed = match_latencies(painted_marks, receiver.frames)
            start, end = painted_marks[0].painted, painted_marks[-1].painted
            fps = frames_per_second(receiver.frames, start, end)
            x, y = marker_centre(width, height)
            last = MARKER_PALETTE[(marks - 1) % len(MARKER_PALETTE)]
            flags = x11vnc_command("x11vnc", xvfb.display, 0, threads=threads)[1:]
            print(f"x11vnc pid {server_pid}, run as: x11vnc {' '.join(flags).replace('-rfbport 0', '-rfbport <free port>')}")
            print(f"encoding {encoding}; marks: {marks} every {interval * 1000:.0f} ms, "
                  f"matched {len(latencies)}, missed {missed}")
            if latencies:
                print(f"latency paint -> update decoded: p50 {percentile(latencies, 50):.1f} ms, "
                      f"p95 {percentile(latencies, 95):.1f} ms, min {min(latencies):.1f}, max {max(latencies):.1f} ms")
            print(f"framebuffer updates: {fps:.1f} per second over {end - start:.1f} s")
            print(f"RFB stream: {(bytes_after - bytes_before) * 8 / 1000 / (end - start):.0f} kbit/s")
            where = (f", all within x {columns.min()}-{columns.max()}, y {rows.min()}-{rows.max()}"
                     " (x11vnc paints the pointer into what it serves)" if rows.size else "")
            print(f"test pattern: {rows.size} of {width * height} pixels differ from the X server's framebuffer{where}")
            print(f"latest_rgb: {snapshot.shape} {snapshot.dtype}, marker centre {tuple(int(v) for v in snapshot[y, x])} "
                  f"(last mark {last})")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.vnc_receiver``: the self-check."""
    import argparse

    parser = argparse.ArgumentParser(description="Self-check of the x11vnc receiver of the screen-streaming benchmark")
    parser.add_argument("--marks", type=int, default=80, help="marker changes to paint (default 80)")
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between changes (default 0.25)")
    parser.add_argument("--encoding", choices=sorted(ENCODINGS), default=DEFAULT_ENCODING,
                        help=f"RFB encoding to ask for (default {DEFAULT_ENCODING})")
    parser.add_argument("--nothreads", action="store_true", help="run x11vnc with its default -nothreads")
    args = parser.parse_args(argv)
    if args.marks < 2 or not 0.02 <= args.interval <= 5:
        parser.error("--marks must be at least 2 and --interval between 0.02 and 5 seconds")
    asyncio.run(self_check(args.marks, args.interval, args.encoding, not args.nothreads))
    return 0


if __name__ == "__main__":
    sys.exit(main())
