"""The technician's live view of a remote screen: signalling plus a WebRTC answerer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

import av
from aiortc import MediaStreamTrack, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError

from protocol.ice import IceConfig
from protocol.signalling import (
    Answer,
    End,
    Error,
    IceCandidate,
    Offer,
    PeerInfo,
    PeerJoined,
    PeerLeft,
    Role,
    SessionEnded,
    Welcome,
)
from rtc.ice import rtc_configuration
from rtc.signalling import SignallingChannel, candidate_from, description_from

log = logging.getLogger(__name__)

FrameHook = Callable[[av.VideoFrame, float], None]
"""Called for every decoded frame with the ``time.monotonic()`` of its arrival."""


class ViewError(Exception):
    """The view cannot deliver what was asked; the message says why."""


class RemoteView:
    """Receives the host's screen for one session.

    The host offers; this side answers. Frames are decoded as they arrive and
    only the newest is kept, so a slow consumer never builds a backlog.
    """

    def __init__(self, broker_url: str, path: str, token: str, *, on_frame: FrameHook | None = None) -> None:
        self._broker_url = broker_url
        self._path = path
        self._token = token
        self._on_frame = on_frame
        self._channel: SignallingChannel | None = None
        self._pc: RTCPeerConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._signalling: asyncio.Task[None] | None = None
        self._ice = IceConfig()
        self._frame_event = asyncio.Event()
        self.host: PeerInfo | None = None
        self.ended: SessionEnded | None = None
        self.latest_frame: av.VideoFrame | None = None
        self.latest_frame_at = 0.0
        self.first_frame_at: float | None = None
        self.frames_received = 0

    async def start(self) -> None:
        """Connect to the broker's signalling; media follows when the host offers."""
        self._channel = await SignallingChannel.open(self._broker_url, self._path, self._token)
        self._signalling = asyncio.create_task(self._signalling_loop(), name="console-signalling")

    async def wait_for_frame(self, timeout: float, *, newer_than: float = 0.0) -> av.VideoFrame:
        """The newest frame that arrived after ``newer_than`` (a ``time.monotonic()``)."""
        deadline = time.monotonic() + timeout
        while self.latest_frame is None or self.latest_frame_at <= newer_than:
            if self.ended is not None:
                raise ViewError(f"the session ended ({self.ended.ended_by}: {self.ended.reason or 'no reason'})")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ViewError(f"no video frame arrived within {timeout:g} s")
            self._frame_event.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._frame_event.wait(), min(remaining, 0.5))
        return self.latest_frame

    async def snapshot(self, path: Path, *, timeout: float, settle: float = 1.0) -> av.VideoFrame:
        """Save the current remote screen as a PNG.

        Waits for the first frame, then ``settle`` seconds more so that the
        encoder's first, coarse frames have been refined.
        """
        await self.wait_for_frame(timeout)
        assert self.first_frame_at is not None
        settle_until = self.first_frame_at + settle
        if time.monotonic() < settle_until:
            await asyncio.sleep(settle_until - time.monotonic())
        frame = await self.wait_for_frame(timeout, newer_than=settle_until - 1e-3 if settle else 0.0)
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_image().save(path, format="PNG")
        return frame

    async def end_session(self, reason: str = "") -> None:
        """End the whole session through signalling."""
        if self._channel is not None and not self._channel.closed:
            await self._channel.send(End(reason=reason))

    async def close(self) -> None:
        """Leave the session (it stays open for the host to be viewed again)."""
        for task in (self._signalling, self._reader):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self._close_peer()
        if self._channel is not None:
            await self._channel.close()

    async def _signalling_loop(self) -> None:
        assert self._channel is not None
        async for message in self._channel.messages():
            if isinstance(message, Welcome):
                self._ice = message.ice
                self.host = message.peer
            elif isinstance(message, PeerJoined) and message.peer.role is Role.host:
                self.host = message.peer
            elif isinstance(message, PeerLeft) and message.role is Role.host:
                log.info("the host left; waiting for it to come back")
                await self._close_peer()
            elif isinstance(message, Offer):
                await self._answer(message)
            elif isinstance(message, IceCandidate):
                candidate = candidate_from(message)
                if self._pc is not None and candidate is not None:
                    await self._pc.addIceCandidate(candidate)
            elif isinstance(message, SessionEnded):
                self.ended = message
                self._frame_event.set()
            elif isinstance(message, Error):
                log.warning("the broker reported a problem: %s (%s)", message.message, message.code.value)
        if self.ended is None:
            self.ended = SessionEnded(ended_by="broker", reason="the signalling connection closed")
        self._frame_event.set()

    async def _answer(self, offer: Offer) -> None:
        await self._close_peer()
        assert self._channel is not None
        pc = RTCPeerConnection(rtc_configuration(self._ice))
        self._pc = pc

        @pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video":
                self._reader = asyncio.create_task(self._read_frames(track), name="console-frames")

        await pc.setRemoteDescription(description_from(offer))
        await pc.setLocalDescription(await pc.createAnswer())
        await self._channel.send(Answer(sdp=pc.localDescription.sdp))

    async def _read_frames(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            now = time.monotonic()
            if self.first_frame_at is None:
                self.first_frame_at = now
            self.latest_frame = frame  # type: ignore[assignment]
            self.latest_frame_at = now
            self.frames_received += 1
            if self._on_frame is not None:
                self._on_frame(frame, now)  # type: ignore[arg-type]
            self._frame_event.set()

    async def _close_peer(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        if self._pc is not None:
            pc, self._pc = self._pc, None
            await pc.close()
